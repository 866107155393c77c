"""The two ports of the image layer: how a store builds a root, how a backend finds one."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nova.images.progress import ProgressSink
from nova.images.recipe import ImageRecipe


@dataclass(frozen=True, slots=True)
class ImageRoot:
    """A built image a sandbox can mount read-only as its root."""

    id: str
    rootfs: Path
    interpreter: str  # the recipe's interpreter, inside the image


class RuntimeImages(Protocol):
    """What a sandbox backend asks before starting an instance of ``runtime``."""

    async def resolve(self, runtime: str) -> ImageRoot | None:
        """The image to run on, or None for the host's own root. Raises ImageNotReady (a
        SandboxError) while the image the runtime needs is not built."""
        ...

    async def resolve_debian(self, runtime: str) -> ImageRoot:
        """The runtime's debian image whatever the policy (VMs need a root of their own);
        ImageNotReady while it is not built."""
        ...


class VmDrives(Protocol):
    """Builds what a microVM of an image boots from (the microvm backend implements it)."""

    def build_drives(self, image: ImageRoot, progress: ProgressSink) -> str:
        """Blocking: the guest kernel + initramfs and the image's rootfs drive, each cached by
        content (a no-op when built). Returns one line naming what was built."""
        ...


class ImageBuilder(Protocol):
    """Makes a root filesystem from a recipe (debootstrap; a fake in tests)."""

    @property
    def source(self) -> str:
        """Where packages come from (the mirror URL), for the manifest."""
        ...

    def build(
        self,
        recipe: ImageRecipe,
        rootfs: Path,
        progress: ProgressSink,
        cancel: threading.Event,
    ) -> dict[str, str]:
        """Create ``rootfs`` (it does not exist yet) and return every installed package's
        version. Blocking; raises ImageBuildFailed, and stops early once ``cancel`` is set."""
        ...
