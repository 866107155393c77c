"""The on-disk copy of each code version that backends mount or copy into instances.

Layout: ``<root>/<function id>/<code_hash>/<files>``: keyed by the function's id, not its name,
so a function created again under a deleted one's name never meets the old one's files. A
version is first written to a staging directory (``<root>/.staging-*``) and then renamed into
place, so a reader never sees a half-written version and two writers of the same hash cannot
corrupt each other. Staging comes first for another reason too: every way writing the files can
fail happens there, before the function is stored (FunctionService stages, stores, then adopts).
A write that fails leaves nothing behind and raises a NovaError: RequestInvalid when the
filesystem refuses a name (the code must change), else CodeStorageFailed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from nova.core.errors import CodeStorageFailed, RequestInvalid
from nova.core.models import CodeBundle

# Errors that say a name in the code cannot exist on this filesystem (too long, an illegal
# character, or one a case-folding or normalising filesystem maps onto another file).
_NAME_ERRORS = frozenset(
    {errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EILSEQ, errno.EINVAL}
)


class CodeCache:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_for(self, function_id: str, code_hash: str) -> Path:
        return self._root / function_id / code_hash

    def materialise(
        self, function_id: str, bundle: CodeBundle, dependencies: Path | None = None
    ) -> Path:
        """Write the bundle once; return its directory (existing copies are reused)."""
        target = self.path_for(function_id, bundle.sha256)
        if target.is_dir():
            return target
        return self.adopt(self.stage(bundle, dependencies), function_id, bundle.sha256)

    def stage(self, bundle: CodeBundle, dependencies: Path | None = None) -> Path:
        """Write the bundle to a new staging directory, for :meth:`adopt` or :meth:`discard`,
        with the files of its built ``dependencies`` beside them (the bundle's own files win;
        the dependencies are decided by the bundle's files, so its hash still names it)."""
        try:
            self._root.mkdir(parents=True, exist_ok=True, mode=0o755)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self._root))
        except OSError as exc:
            raise _storage_failed(exc) from exc
        try:
            # mkdtemp makes 0700; sandboxes run as an unprivileged uid and bind this directory.
            staging.chmod(0o755)
            write_files(staging, bundle)
            if dependencies is not None:
                link_tree(dependencies, staging)
        except OSError as exc:
            self.discard(staging)
            raise _storage_failed(exc) from exc
        return staging

    def adopt(self, staged: Path, function_id: str, code_hash: str) -> Path:
        """Move a staged version into place and return it; a copy already there is kept (same
        hash, same files) and the staged one removed."""
        target = self.path_for(function_id, code_hash)
        try:
            target.parent.mkdir(exist_ok=True, mode=0o755)
            os.rename(staged, target)
        except OSError as exc:
            self.discard(staged)
            if not target.is_dir():  # a concurrent writer winning the rename is fine
                raise _storage_failed(exc) from exc
        return target

    @staticmethod
    def discard(staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def forget(self, function_id: str) -> None:
        """Remove every cached version of a deleted function."""
        shutil.rmtree(self._root / function_id, ignore_errors=True)


class UnwritableName(OSError):
    """A file of the code that the filesystem refused to create, with its relative path."""

    def __init__(self, relative: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.relative = relative


def write_files(directory: Path, bundle: CodeBundle) -> None:
    for relative, item in bundle.files.items():
        path = directory / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": a name the filesystem folds onto an existing one fails instead of overwriting.
            with path.open("xb") as file:
                file.write(item.content)
            path.chmod(0o755 if item.executable else 0o644)
        except OSError as exc:
            raise UnwritableName(relative, exc) from exc


def link_tree(source: Path, target: Path) -> None:
    """Hard-link (else copy) every file under ``source`` into ``target`` where none exists."""
    for directory, subdirectories, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        (target / relative).mkdir(exist_ok=True, mode=0o755)
        for name in files:
            destination = target / relative / name
            if destination.exists() or destination.is_symlink():
                continue
            origin = Path(directory) / name
            if origin.is_symlink():
                destination.symlink_to(os.readlink(origin))
                continue
            try:
                os.link(origin, destination)
            except OSError:
                shutil.copy2(origin, destination)
        kept = []
        for name in subdirectories:
            origin, destination = Path(directory) / name, target / relative / name
            if origin.is_symlink():  # os.walk does not descend into it: keep it a link
                if not (destination.exists() or destination.is_symlink()):
                    destination.symlink_to(os.readlink(origin))
            elif not destination.is_file():  # a bundle file of that name wins
                kept.append(name)
        subdirectories[:] = kept


def _storage_failed(exc: OSError) -> RequestInvalid | CodeStorageFailed:
    if isinstance(exc, UnwritableName) and exc.errno in _NAME_ERRORS:
        return RequestInvalid(
            f"code: {exc.relative!r} cannot be written on the daemon's filesystem "
            f"({exc.strerror}); rename it"
        )
    where = f" ({exc.relative!r})" if isinstance(exc, UnwritableName) else ""
    return CodeStorageFailed(
        f"the daemon could not write the code to its disk{where}: {exc.strerror or exc}; "
        "check the space and permissions of its data directory"
    )
