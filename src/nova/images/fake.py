"""An in-process ImageBuilder for tests: a tiny root in milliseconds, failures on request."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from nova.images.errors import ImageBuildFailed
from nova.images.progress import BuildProgress, ProgressSink
from nova.images.recipe import ImageRecipe

FAKE_VERSIONS = {"libc6": "2.36-9", "python3": "3.11.2-1", "base-files": "12.4"}


class FakeBuilder:
    """Writes the recipe's interpreter (an executable script) and a few files a debootstrap
    root has, including some the layer trims. ``gate``, when given, holds the build until it
    is set (or the build is cancelled); ``fail`` makes the build raise ImageBuildFailed."""

    source = "fake://mirror"

    def __init__(
        self,
        versions: Mapping[str, str] = FAKE_VERSIONS,
        *,
        fail: str | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.versions = dict(versions)
        self.fail = fail
        self.gate = gate
        self.calls: list[str] = []
        self.seen_image_dirs: list[list[str]] = []  # what the store's root held mid-build

    def build(
        self,
        recipe: ImageRecipe,
        rootfs: Path,
        progress: ProgressSink,
        cancel: threading.Event,
    ) -> dict[str, str]:
        self.calls.append(recipe.runtime)
        self.seen_image_dirs.append(sorted(p.name for p in rootfs.parent.parent.iterdir()))
        progress(BuildProgress("download", 0.3, "downloading packages", 1, 3))
        while self.gate is not None and not self.gate.wait(0.01):
            if cancel.is_set():
                raise ImageBuildFailed("the build was cancelled")
        if self.fail is not None:
            raise ImageBuildFailed(self.fail)
        files = {
            recipe.interpreter.lstrip("/"): "#!/bin/sh\nexit 0\n",
            "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
            "etc/shadow": "root:*:19000::::::\n",
            "etc/hostname": "build-host\n",
            "var/lib/dpkg/status": "Package: libc6\nStatus: install ok installed\n",
            "usr/share/doc/libc6/copyright": "licence\n",
            "usr/share/doc/libc6/changelog.gz": "x",
            "dev/null": "",
        }
        for relative, content in files.items():
            path = rootfs / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        (rootfs / recipe.interpreter.lstrip("/")).chmod(0o755)
        (rootfs / "tmp").mkdir(mode=0o1777)
        progress(BuildProgress("finish", 0.9, "finishing"))
        return dict(self.versions)
