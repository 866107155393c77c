"""Built images on disk, one directory each, and how a build gets there atomically.

Layout under ``<data_dir>/images/``::

    debian-1a2b3c4d5e6f/          one image (its id with "-" for ":")
        manifest.json             id, runtime, recipe digest, package versions, size, build time
        rootfs/                   the root instances mount read-only; etc/nova-image names it
    .build-python-k3j2/           a build in progress (same filesystem, so the rename is atomic)
    .lock-python                  held (flock) while python's image builds, across processes

A build writes everything into a ``.build-*`` directory and renames it into place as the last
step, so a reader sees a whole image or none. The id is only known once the build has resolved
package versions; if an image with that id exists already (a rebuild against an unchanged
archive) the new copy is dropped and the existing one, which instances may be running on,
stays. Blocking throughout: the service calls it from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from nova.images.errors import ImageBuildFailed, ImageNotFound
from nova.images.manifest import (
    MANIFEST_FILE,
    MARKER_PATH,
    ROOTFS_DIR,
    ImageManifest,
    debian_image_id,
    image_dir_name,
    read_manifest,
    write_manifest,
)
from nova.images.ports import ImageBuilder
from nova.images.progress import BuildProgress, ProgressSink
from nova.images.recipe import ImageKind, ImageRecipe
from nova.images.rootfs import apply_layer, disk_usage, remove_tree

logger = logging.getLogger(__name__)


class ImageStore:
    def __init__(
        self, root: Path, recipes: Mapping[str, ImageRecipe], builder: ImageBuilder
    ) -> None:
        self.root = root
        self._recipes = dict(recipes)
        self._builder = builder
        # The sandbox user resolves the rootfs path itself (bwrap binds as that user): every
        # directory Nova creates on the way must be searchable by others.
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        root.chmod(0o755)

    @property
    def runtimes(self) -> list[str]:
        return sorted(self._recipes)

    def recipe(self, runtime: str) -> ImageRecipe:
        try:
            return self._recipes[runtime]
        except KeyError:
            known = ", ".join(self.runtimes)
            raise ImageNotFound(
                f"no image recipe for runtime {runtime!r}; images exist for: {known}"
            ) from None

    def rootfs(self, image_id: str) -> Path:
        return self.root / image_dir_name(image_id) / ROOTFS_DIR

    def manifests(self) -> list[ImageManifest]:
        """Every complete image on disk, newest first (unreadable ones are skipped, logged)."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.root):
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    found.append(read_manifest(Path(entry.path)))
                except FileNotFoundError:
                    continue  # not an image directory
                except (OSError, ValueError) as exc:
                    logger.warning("ignoring image directory %s: %s", entry.path, exc)
        return sorted(found, key=lambda m: m.built_at, reverse=True)

    def current(self, runtime: str) -> ImageManifest | None:
        """The newest image built from the runtime's *current* recipe (an older recipe's
        images stay listed but are not used)."""
        digest = self.recipe(runtime).digest
        for manifest in self.manifests():
            if manifest.runtime == runtime and manifest.recipe_digest == digest:
                return manifest
        return None

    def build(
        self,
        runtime: str,
        *,
        rebuild: bool = False,
        progress: ProgressSink | None = None,
        cancel: threading.Event | None = None,
    ) -> ImageManifest:
        """The runtime's image: the cached one unless ``rebuild``, else built now."""
        recipe = self.recipe(runtime)
        sink = progress or _ignore
        with self._lock(runtime):
            # Checked under the lock: another process may have built it while we waited.
            existing = self.current(runtime)
            if existing is not None and not rebuild:
                return existing
            self._remove_stale_builds(runtime)
            staging = Path(tempfile.mkdtemp(prefix=f".build-{runtime}-", dir=self.root))
            try:
                manifest = self._build_into(staging, recipe, sink, cancel or threading.Event())
                return self._publish(staging, manifest)
            finally:
                remove_tree(staging)  # gone after a rename; a failed build's leftovers

    def remove(self, image_id: str) -> None:
        """Delete an image. It is renamed out of sight first, so a reader sees it whole or not
        at all, never a root half deleted."""
        image_dir = self.root / image_dir_name(image_id)
        doomed = Path(tempfile.mkdtemp(prefix=".prune-", dir=self.root))
        try:
            os.rename(image_dir, doomed / "image")
        except FileNotFoundError:
            raise ImageNotFound(f"no image {image_id!r} on disk") from None
        finally:
            remove_tree(doomed)
        logger.info("removed image %s", image_id)

    def _build_into(
        self, staging: Path, recipe: ImageRecipe, sink: ProgressSink, cancel: threading.Event
    ) -> ImageManifest:
        started = time.monotonic()
        rootfs = staging / ROOTFS_DIR
        packages = self._builder.build(recipe, rootfs, sink, cancel)
        if cancel.is_set():
            raise ImageBuildFailed("the build was cancelled")
        sink(BuildProgress("finish", 0.98, "trimming and recording versions"))
        try:
            apply_layer(rootfs, recipe)
        except (OSError, ValueError) as exc:
            raise ImageBuildFailed(f"cannot finish the root at {rootfs}: {exc}") from exc
        image_id = debian_image_id(recipe, packages)
        marker = {"id": image_id, "runtime": recipe.runtime, "recipe": recipe.digest}
        (rootfs / MARKER_PATH).write_text(json.dumps(marker) + "\n")
        (rootfs / MARKER_PATH).chmod(0o644)
        manifest = ImageManifest(
            id=image_id,
            runtime=recipe.runtime,
            kind=ImageKind.DEBIAN.value,
            suite=recipe.suite,
            recipe_digest=recipe.digest,
            requested=recipe.packages,
            packages=packages,
            interpreter=recipe.interpreter,
            size_bytes=disk_usage(rootfs),
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_s=round(time.monotonic() - started, 1),
            mirror=self._builder.source,
        )
        write_manifest(staging, manifest)
        staging.chmod(0o755)  # mkdtemp made it 0700
        rootfs.chmod(0o755)
        return manifest

    def _publish(self, staging: Path, manifest: ImageManifest) -> ImageManifest:
        final = self.root / image_dir_name(manifest.id)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MANIFEST_FILE).is_file():
                raise
            # Same id: same recipe and the same package versions, so the same content. Keep
            # the image in place (instances may run on it) and drop the new copy.
            logger.info("image %s is unchanged by the rebuild", manifest.id)
            return read_manifest(final)
        logger.info("built image %s for %s at %s", manifest.id, manifest.runtime, final)
        return manifest

    @contextlib.contextmanager
    def _lock(self, runtime: str) -> Iterator[None]:
        fd = os.open(self.root / f".lock-{runtime}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _remove_stale_builds(self, runtime: str) -> None:
        # Only while holding the runtime's lock: no other build of it can be running, so any
        # .build-<runtime>-* left is from a build that crashed or was killed.
        for entry in self.root.glob(f".build-{runtime}-*"):
            logger.info("removing an interrupted image build at %s", entry)
            remove_tree(entry)


def _ignore(_: BuildProgress) -> None:
    return None
