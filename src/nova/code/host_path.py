"""`code_path`: code read from a directory or .zip on the daemon's host.

The daemon usually runs as root, so this would otherwise read anything on the host. It is off
unless the operator lists directories in ``code.allowed_paths``, and a path is accepted only if
it resolves (symlinks followed) below one of them. Sizes are checked from ``stat`` before any
file is read, each file is opened without following a symlink swapped in meanwhile and checked
to still be below the root, and nothing but regular files is read (a FIFO would block forever).
Everything here blocks: call it off the event loop.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nova.code import bundle as bundles
from nova.code.policy import CodePolicy
from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, CodeFile

FIELD = "code_path"
_SKIPPED_DIRS = frozenset({"__pycache__"})


@dataclass(frozen=True, slots=True)
class _Entry:
    relative: str
    path: Path  # the resolved file, below the root
    size: int
    executable: bool


def read_host_path(raw: str, policy: CodePolicy) -> CodeBundle:
    root, path = _allowed(raw, policy)
    try:
        info = path.stat()
    except OSError as exc:
        raise RequestInvalid(f"{FIELD}: cannot read {raw!r}: {exc.strerror}") from None
    if stat.S_ISREG(info.st_mode) and path.suffix == ".zip":
        if info.st_size > policy.max_upload_bytes:
            raise RequestInvalid(
                f"{FIELD}: {raw!r} is {info.st_size} bytes, over the {policy.max_upload_bytes}-"
                "byte limit for archives (the daemon's code.max_upload_bytes)"
            )
        return bundles.from_zip(_read(path, info.st_size, root), policy, FIELD)
    if not stat.S_ISDIR(info.st_mode):
        raise RequestInvalid(f"{FIELD}: {raw!r} is neither a directory nor a .zip file")
    entries = _walk(path, root, policy)
    if not entries:
        raise RequestInvalid(f"{FIELD}: {raw!r} contains no files")
    files = {
        entry.relative: CodeFile(_read(entry.path, entry.size, root), entry.executable)
        for entry in entries
    }
    bundles.check_limits(len(files), sum(len(f.content) for f in files.values()), FIELD, policy)
    bundles.check_tree(files, FIELD)
    return CodeBundle(files)


def _allowed(raw: str, policy: CodePolicy) -> tuple[Path, Path]:
    """(the allowed root, the resolved path below it), or RequestInvalid saying what to do."""
    if not policy.allowed_paths:
        raise RequestInvalid(
            f"{FIELD}: reading code from the daemon's host is turned off; list the directories "
            "it may read in the daemon's code.allowed_paths setting (e.g. "
            "NOVA_CODE__ALLOWED_PATHS='[\"/srv/functions\"]'), or send the code as files or a "
            "zip upload (`nova fn create --dir` does that)"
        )
    if not raw.startswith("/") or "\x00" in raw or ".." in raw.split("/"):
        raise RequestInvalid(f"{FIELD}: {raw!r} must be an absolute path without '..'")
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RequestInvalid(
            f"{FIELD}: {raw!r} cannot be read on the daemon's host: {exc}"
        ) from None
    for allowed in policy.allowed_paths:
        root = allowed.resolve()
        if path.is_relative_to(root):
            return root, path
    roots = ", ".join(str(root) for root in policy.allowed_paths)
    raise RequestInvalid(
        f"{FIELD}: {raw!r} is not below a directory in the daemon's code.allowed_paths ({roots})"
    )


def _walk(directory: Path, root: Path, policy: CodePolicy) -> list[_Entry]:
    """Every file to read, sized from stat, without reading any. Dot-files, __pycache__ and
    symlinked directories are skipped, as `nova fn create --dir` skips them."""
    entries: list[_Entry] = []
    total = 0
    for current, dirnames, filenames in os.walk(directory, onerror=_raise):
        dirnames[:] = sorted(name for name in dirnames if not _skipped(name))
        for name in sorted(filenames):
            if _skipped(name):
                continue
            entry = _entry(Path(current, name), directory, root)
            total += entry.size
            bundles.check_limits(len(entries) + 1, total, FIELD, policy)
            entries.append(entry)
    return entries


def _entry(path: Path, directory: Path, root: Path) -> _Entry:
    relative = bundles.validate_path(path.relative_to(directory).as_posix(), FIELD)
    try:
        resolved = path.resolve(strict=True)
        info = resolved.stat()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RequestInvalid(f"{FIELD}: cannot read {relative!r}: {exc}") from None
    if not resolved.is_relative_to(root):
        raise RequestInvalid(
            f"{FIELD}: {relative!r} is a symlink to {str(resolved)!r}, outside the allowed "
            "directory"
        )
    if not stat.S_ISREG(info.st_mode):
        raise RequestInvalid(f"{FIELD}: {relative!r} is not a regular file")
    return _Entry(relative, resolved, info.st_size, bool(info.st_mode & 0o111))


def _read(path: Path, size: int, root: Path) -> bytes:
    """The file's ``size`` bytes, opened without following a symlink swapped in since it was
    resolved, and only if it is still a regular file below ``root``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RequestInvalid(f"{FIELD}: cannot read {str(path)!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not opened.is_relative_to(root):
            raise RequestInvalid(f"{FIELD}: {str(path)!r} changed while it was being read")
        content = file.read(size + 1)
    if len(content) != size:
        raise RequestInvalid(f"{FIELD}: {str(path)!r} changed while it was being read")
    return content


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_DIRS


def _raise(error: OSError) -> None:
    raise RequestInvalid(f"{FIELD}: cannot read {error.filename!r}: {error.strerror}")
