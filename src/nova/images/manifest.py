"""What a built image records about itself (manifest.json next to its rootfs), and its id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nova.images.recipe import ImageKind, ImageRecipe

MANIFEST_FILE = "manifest.json"
ROOTFS_DIR = "rootfs"
# Inside every debian image: which image an instance runs on, readable by the function.
MARKER_PATH = "etc/nova-image"
ID_HEX_CHARS = 12


def debian_image_id(recipe: ImageRecipe, packages: Mapping[str, str]) -> str:
    """``debian:<12 hex>`` over the recipe and the resolved package versions: rebuilding the
    same recipe against an unchanged archive gives the same id; any upgraded package, added
    package or recipe change gives a new one."""
    digest = hashlib.sha256(recipe.identity())
    for name in sorted(packages):
        digest.update(f"\n{name}={packages[name]}".encode())
    return f"{ImageKind.DEBIAN.value}:{digest.hexdigest()[:ID_HEX_CHARS]}"


def image_dir_name(image_id: str) -> str:
    """The directory an image lives in: its id with ``-`` for ``:`` (a colon in a path breaks
    PATH-like lists, scp and make)."""
    return image_id.replace(":", "-")


@dataclass(frozen=True, slots=True)
class ImageManifest:
    id: str
    runtime: str
    kind: str
    suite: str
    recipe_digest: str  # ImageRecipe.digest: finds the image of the *current* recipe
    requested: tuple[str, ...]  # the recipe's packages
    packages: Mapping[str, str]  # every installed package -> version
    interpreter: str
    size_bytes: int
    built_at: str  # ISO 8601, UTC
    build_s: float
    mirror: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requested"] = list(self.requested)
        data["packages"] = dict(sorted(self.packages.items()))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageManifest:
        """Parse a manifest; ValueError (with the field) when it is not one."""
        try:
            return cls(
                id=str(data["id"]),
                runtime=str(data["runtime"]),
                kind=str(data["kind"]),
                suite=str(data["suite"]),
                recipe_digest=str(data["recipe_digest"]),
                requested=tuple(str(p) for p in data["requested"]),
                packages={str(k): str(v) for k, v in dict(data["packages"]).items()},
                interpreter=str(data["interpreter"]),
                size_bytes=int(data["size_bytes"]),
                built_at=str(data["built_at"]),
                build_s=float(data["build_s"]),
                mirror=str(data["mirror"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an image manifest: {exc!r}") from exc


def write_manifest(image_dir: Path, manifest: ImageManifest) -> None:
    path = image_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    path.chmod(0o644)


def read_manifest(image_dir: Path) -> ImageManifest:
    """OSError when unreadable, ValueError when it is not a manifest."""
    try:
        data = json.loads((image_dir / MANIFEST_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{image_dir / MANIFEST_FILE} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{image_dir / MANIFEST_FILE} is not a JSON object")
    return ImageManifest.from_json(data)
