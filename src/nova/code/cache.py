"""The on-disk copy of each code version that backends mount or copy into instances.

Layout: ``<root>/<function id>/<code_hash>/<files>``: keyed by the function's id, not its name,
so a function created again under a deleted one's name never meets the old one's files. A version directory is written to a temporary
sibling and renamed into place, so a reader never sees a half-written version and two writers of
the same hash cannot corrupt each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from nova.core.models import CodeBundle


class CodeCache:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_for(self, function_id: str, code_hash: str) -> Path:
        return self._root / function_id / code_hash

    def materialise(self, function_id: str, bundle: CodeBundle) -> Path:
        """Write the bundle once; return its directory (existing copies are reused)."""
        target = self.path_for(function_id, bundle.sha256)
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        # mkdtemp makes 0700; sandboxes run as an unprivileged uid and bind this directory.
        staging.chmod(0o755)
        try:
            write_files(staging, bundle)
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():  # a concurrent writer winning the rename is fine
                raise
        return target

    def forget(self, function_id: str) -> None:
        """Remove every cached version of a deleted function."""
        shutil.rmtree(self._root / function_id, ignore_errors=True)


def write_files(directory: Path, bundle: CodeBundle) -> None:
    for relative, item in bundle.files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.content)
        path.chmod(0o755 if item.executable else 0o644)
