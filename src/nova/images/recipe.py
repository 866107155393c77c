"""What goes into a runtime image, and which kind of image each runtime runs on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ImageKind(StrEnum):
    HOST = "host"  # the host's /usr etc. bound read-only: nothing built, nothing copied
    DEBIAN = "debian"  # a debootstrap'ed minbase root with the runtime's Debian packages


# Debian packages per runtime and the interpreter they provide. Measured: python3-minimal alone
# lacks json, asyncio, dataclasses and shutil, which the agent imports, so every image takes
# `python3` (the whole stdlib, which Python functions expect anyway); the node image needs it
# for the agent too. ca-certificates gives functions with network access the image's own
# trust store instead of the host's.
RUNTIME_PACKAGES: dict[str, tuple[tuple[str, ...], str, int]] = {
    # runtime: (packages, interpreter, packages debootstrap retrieves — for progress only)
    "python": (("python3", "ca-certificates"), "/usr/bin/python3", 112),
    "node": (("nodejs", "python3", "ca-certificates"), "/usr/bin/node", 124),
}

# Removed after debootstrap (paths relative to the root). apt's caches and lists, docs, man
# pages and translations are ~135 MB nobody in a sandbox reads (files named "copyright" are
# always kept: Debian's licences ask for them). The
# rest makes an image look like a host and is never needed by a function: account databases,
# home directories, package manager state (versions are in the manifest), and /dev's device
# nodes (bwrap mounts its own /dev). With them gone, a function sees the same tree on either
# image kind.
TRIM_PATHS: tuple[str, ...] = (
    "var",
    "boot",
    "home",
    "media",
    "mnt",
    "root",
    "run",
    "srv",
    "sys",
    "dev/*",
    "usr/share/doc/*/*",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "etc/shadow",
    "etc/shadow-",
    "etc/gshadow",
    "etc/gshadow-",
    "etc/passwd-",
    "etc/group-",
    # The build host's: its name, and its resolver (the sandbox binds the running host's).
    "etc/hostname",
    "etc/resolv.conf",
)

# Bump whenever what Nova does to a root after debootstrap changes: every image gets a new id.
LAYER_VERSION = 1


@dataclass(frozen=True, slots=True)
class MountPoints:
    """Paths the sandbox mounts over. A read-only root cannot get them created at start-up
    (bwrap would have to mkdir inside the image), so the build creates them, empty."""

    dirs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageRecipe:
    runtime: str
    packages: tuple[str, ...]
    interpreter: str  # absolute path inside the image
    suite: str  # Debian release, e.g. "bookworm"
    variant: str = "minbase"
    mount_points: MountPoints = MountPoints()
    trim: tuple[str, ...] = TRIM_PATHS
    layer: int = LAYER_VERSION
    # Only to show download progress before debootstrap says how many packages it fetches;
    # not part of what the image is, so not part of its identity.
    expected_packages: int = field(default=120, compare=False)

    def identity(self) -> bytes:
        """Everything that decides the image's content except package versions (which the
        build resolves): canonical JSON, so equal recipes hash equally on every host."""
        content = {
            "runtime": self.runtime,
            "packages": sorted(self.packages),
            "interpreter": self.interpreter,
            "suite": self.suite,
            "variant": self.variant,
            "mount_dirs": sorted(self.mount_points.dirs),
            "mount_files": sorted(self.mount_points.files),
            "trim": list(self.trim),
            "layer": self.layer,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.identity()).hexdigest()


def debian_recipes(suite: str, mount_points: MountPoints) -> dict[str, ImageRecipe]:
    """The built-in recipe of every runtime for one Debian release."""
    return {
        runtime: ImageRecipe(
            runtime=runtime,
            packages=packages,
            interpreter=interpreter,
            suite=suite,
            mount_points=mount_points,
            expected_packages=expected,
        )
        for runtime, (packages, interpreter, expected) in RUNTIME_PACKAGES.items()
    }


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    """Which kind of image each runtime's instances run on."""

    default: ImageKind = ImageKind.HOST
    runtimes: tuple[tuple[str, ImageKind], ...] = ()  # per-runtime exceptions to the default

    def kind_for(self, runtime: str) -> ImageKind:
        for name, kind in self.runtimes:
            if name == runtime:
                return kind
        return self.default

    @classmethod
    def parse(cls, default: str, runtimes: Mapping[str, str] | None = None) -> ImagePolicy:
        """From settings values; ValueError names the kinds when one is unknown."""
        return cls(
            _kind(default), tuple(sorted((n, _kind(k)) for n, k in (runtimes or {}).items()))
        )


def _kind(value: str) -> ImageKind:
    try:
        return ImageKind(value)
    except ValueError:
        kinds = ", ".join(kind.value for kind in ImageKind)
        raise ValueError(f"unknown image kind {value!r}; kinds: {kinds}") from None
