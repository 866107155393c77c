"""Turning what a user sends (code, files, a zip, a host path) into a validated CodeBundle.

Every path is checked before anything touches a disk: relative, POSIX, no ``..``, no empty or
hidden-traversal components, bounded count and size (zip sizes are checked from the central
directory before decompressing, so a zip bomb is refused without being expanded).
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, CodeFile

MAX_FILES = 1000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
# `bootstrap` is the custom-runtime entry point: always executable (API.md).
ALWAYS_EXECUTABLE = frozenset({"bootstrap"})


def validate_path(raw: str, field: str) -> str:
    path = PurePosixPath(raw)
    if (
        not raw
        or "\\" in raw
        or "\x00" in raw
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in raw.split("/"))
    ):
        raise RequestInvalid(
            f"{field}: {raw!r} is not a safe relative path (no '..', no leading '/')"
        )
    return path.as_posix()


def handler_module(handler: str) -> str:
    """`app.main` -> `app`; `pkg/app.main` -> `pkg/app`."""
    module, _, function = handler.rpartition(".")
    if not module or not function or not function.isidentifier():
        raise RequestInvalid(
            f"handler: {handler!r} must look like 'module.function', e.g. 'handler.handler'"
        )
    validate_path(module, "handler")
    return module


def from_source(code: str, handler: str, extension: str) -> CodeBundle:
    return _checked({handler_module(handler) + extension: CodeFile(code.encode())})


def from_file_map(files: Mapping[str, str]) -> CodeBundle:
    if not files:
        raise RequestInvalid("files: must contain at least one file")
    bundle = {
        validate_path(path, "files"): CodeFile(
            content.encode(), executable=PurePosixPath(path).name in ALWAYS_EXECUTABLE
        )
        for path, content in files.items()
    }
    return _checked(bundle)


def from_zip(data: bytes) -> CodeBundle:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise RequestInvalid(f"zip: not a valid zip archive ({exc})") from exc
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _check_limits(len(members), sum(info.file_size for info in members), "zip")
        files = {}
        for info in members:
            path = validate_path(info.filename, "zip")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise RequestInvalid(
                    f"zip: {info.filename!r} is a symlink; symlinks are not allowed"
                )
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, OSError) as exc:
                raise RequestInvalid(f"zip: cannot read {info.filename!r}: {exc}") from exc
            executable = bool(mode & 0o111) or PurePosixPath(path).name in ALWAYS_EXECUTABLE
            files[path] = CodeFile(content, executable)
    return _checked(files)


def from_host_path(raw: str) -> CodeBundle:
    """`code_path`: a directory or .zip on the daemon's host."""
    path = Path(raw)
    if not path.is_absolute():
        raise RequestInvalid(f"code_path: {raw!r} must be an absolute path on the daemon's host")
    if path.is_file() and path.suffix == ".zip":
        return from_zip(path.read_bytes())
    if not path.is_dir():
        raise RequestInvalid(
            f"code_path: {raw!r} is neither a directory nor a .zip file on the daemon's host"
        )
    files = {}
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if item.is_file() and not item.is_symlink():
            files[relative.as_posix()] = CodeFile(
                item.read_bytes(), bool(item.stat().st_mode & 0o111)
            )
            _check_limits(len(files), sum(len(f.content) for f in files.values()), "code_path")
    if not files:
        raise RequestInvalid(f"code_path: {raw!r} contains no files")
    return _checked(files)


def require_handler_file(bundle: CodeBundle, handler: str, extensions: tuple[str, ...]) -> None:
    """Refuse a deploy whose handler module is missing, naming what was looked for."""
    module = handler_module(handler)
    if not any(module + extension in bundle.files for extension in extensions):
        wanted = " or ".join(module + extension for extension in extensions)
        present = ", ".join(sorted(bundle.files)[:10])
        raise RequestInvalid(
            f"handler: {handler!r} needs the file {wanted}, but the code has: {present}"
        )


def _check_limits(count: int, size: int, field: str) -> None:
    if count > MAX_FILES:
        raise RequestInvalid(f"{field}: {count} files is more than the limit of {MAX_FILES}")
    if size > MAX_UNPACKED_BYTES:
        raise RequestInvalid(
            f"{field}: {size} bytes unpacked is more than the limit of {MAX_UNPACKED_BYTES} bytes"
        )


def _checked(files: dict[str, CodeFile]) -> CodeBundle:
    _check_limits(len(files), sum(len(item.content) for item in files.values()), "code")
    return CodeBundle(files)
