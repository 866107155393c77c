"""The root filesystem of a container instance: the host's (/usr and the system directories
bound read-only) or a runtime image's (:mod:`nova.images`, bound read-only as ``/``), and the
checks that the instance can run on it.

Kept apart from :mod:`nova.sandbox.container.backend` so the lifecycle module only asks "which root?".
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from nova.core.errors import SandboxError
from nova.images.ports import ImageRoot, RuntimeImages
from nova.images.recipe import MountPoints
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.setup import HostPaths, check_interpreter, check_reachable

# From the host, even on an image: DNS settings belong to the host's network, not the image.
IMAGE_HOST_ETC_FILES = ("/etc/resolv.conf",)


def image_mount_points() -> MountPoints:
    """Everything bwrap binds over inside an image root (see :func:`bw.bwrap_argv`). The image
    build creates them: bwrap cannot mkdir in a read-only root."""
    files = (
        f"{bw.AGENT_ROOT}/nova/__init__.py",
        *bw.GENERATED_ETC,
        *IMAGE_HOST_ETC_FILES,
    )
    dirs = (bw.CODE_DIR, f"{bw.AGENT_ROOT}/nova/agent", bw.TMP_DIR, "/proc", "/dev")
    return MountPoints(dirs=dirs, files=tuple(sorted(set(files))))


def image_layout(image: ImageRoot) -> bw.RootLayout:
    return bw.RootLayout((), (), IMAGE_HOST_ETC_FILES, rootfs=str(image.rootfs))


class InstanceRoots:
    """Picks the root of each instance: the host's unless ``images`` names one for the
    runtime. An image is checked once (reachable by the sandbox user, runs the agent)."""

    def __init__(self, agent_python: str, images: RuntimeImages | None = None) -> None:
        self._agent_python = agent_python
        self._images = images
        self._checked: dict[str, bw.RootLayout] = {}

    async def resolve(self, spec: InstanceSpec, host: HostPaths) -> tuple[bw.RootLayout, str]:
        """(the bwrap layout, the image id for the instance record); SandboxError when the
        instance could not run on it (or ImageNotReady while the image is building)."""
        image = await self._images.resolve(spec.runtime) if self._images is not None else None
        if image is None:
            check_interpreter(spec.interpreter, host)
            return host.layout, host.image_id
        layout = self._checked.get(image.id)
        if layout is None:
            check_reachable(image.rootfs, host.drop_to_uid, directory=True)
            check_image_executable(image, self._agent_python, "the agent's interpreter")
            layout = self._checked[image.id] = image_layout(image)
        # A few lstat calls: cheap enough per start, and the interpreter is per function.
        check_image_executable(image, spec.interpreter, "interpreter")
        return layout, image.id


def check_image_executable(image: ImageRoot, path: str, what: str) -> None:
    resolved = resolve_in_root(image.rootfs, path)
    if resolved is None or not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise SandboxError(
            f"{what} {path} is outside what a container instance sees: image {image.id} has "
            f"no executable there (it provides {image.interpreter}); runtimes on debian "
            "images need the distribution's interpreter path (apt-get install python3 nodejs)"
        )


def resolve_in_root(rootfs: Path, path: str, max_links: int = 40) -> Path | None:
    """Where ``path`` leads inside ``rootfs``, following symlinks as if ``rootfs`` were ``/``
    (an absolute link target restarts at the root, ``..`` stops at it); None if it leads
    nowhere. os.path.realpath would follow absolute links on the host instead."""
    if not path.startswith("/"):
        return None
    pending = list(PurePosixPath(path).parts[1:])
    current = rootfs
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        candidate = current / part
        if candidate.is_symlink():
            links += 1
            if links > max_links:
                return None
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                current, pending = rootfs, [*target.parts[1:], *pending]
            else:
                pending = [*target.parts, *pending]
            continue
        if not candidate.exists():
            return None
        current = candidate
    return current
