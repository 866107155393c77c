"""Turning what a user sends (code, files, a zip) into a validated CodeBundle.

Every path is checked before anything touches a disk: relative, POSIX, UTF-8, no ``..``, no
empty components, components and the whole path short enough for any Linux filesystem
(policy.py), and no file where another path needs a directory (``a`` next to ``a/b``). Counts and
sizes are bounded by the daemon's CodePolicy; zip sizes are checked from the central directory
before decompressing, so a zip bomb is refused without being expanded, and the entry count is
read from the archive's end record before zipfile parses the central directory, so an upload of
hundreds of thousands of empty entries is refused without building an object for each.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from nova.code.policy import MAX_NAME_BYTES, MAX_PATH_BYTES, CodePolicy
from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, CodeFile

# `bootstrap` is the custom-runtime entry point: always executable (API.md).
ALWAYS_EXECUTABLE = frozenset({"bootstrap"})
# What zipfile raises for archives it cannot read: a corrupt or truncated stream, an unsupported
# compression method or encryption, a name flagged UTF-8 that is not, a lying size.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    ValueError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
)


def validate_path(raw: str, field: str) -> str:
    """``raw`` if every Linux filesystem can hold it as a path below the code directory."""
    if (
        not raw
        or "\\" in raw
        or "\x00" in raw
        or raw.startswith("/")
        or any(part in ("", ".", "..") for part in raw.split("/"))
    ):
        raise RequestInvalid(
            f"{field}: {raw!r} is not a safe relative path (no '..', no leading '/', no empty "
            "or '.' components, no '\\' or NUL)"
        )
    try:
        size = len(raw.encode())
    except UnicodeEncodeError:
        raise RequestInvalid(f"{field}: {raw!r} is not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise RequestInvalid(
            f"{field}: {raw[:60]!r}... is {size} bytes long; paths may have at most "
            f"{MAX_PATH_BYTES} bytes"
        )
    for part in raw.split("/"):
        if len(part.encode()) > MAX_NAME_BYTES:
            raise RequestInvalid(
                f"{field}: {raw[:60]!r}... has a name of {len(part.encode())} bytes; file and "
                f"directory names may have at most {MAX_NAME_BYTES} bytes"
            )
    return raw


def handler_module(handler: str) -> str:
    """`app.main` -> `app`; `pkg/app.main` -> `pkg/app` (the function name is the agent's to
    check: functions/rules.py validates the whole handler with its pattern)."""
    module, _, function = handler.rpartition(".")
    if not module or not function:
        raise RequestInvalid(
            f"handler: {handler!r} must look like 'module.function', e.g. 'handler.handler'"
        )
    validate_path(module, "handler")
    return module


def from_source(code: str, path: str, policy: CodePolicy) -> CodeBundle:
    """One source file, stored as ``path`` (the handler's module file, or `bootstrap`)."""
    executable = PurePosixPath(path).name in ALWAYS_EXECUTABLE
    file = CodeFile(code.encode(), executable=executable)
    return _checked({validate_path(path, "handler"): file}, "code", policy)


def from_file_map(files: Mapping[str, str], policy: CodePolicy) -> CodeBundle:
    if not files:
        raise RequestInvalid("files: must contain at least one file")
    check_limits(len(files), 0, "files", policy)
    bundle = {
        validate_path(path, "files"): CodeFile(
            content.encode(), executable=PurePosixPath(path).name in ALWAYS_EXECUTABLE
        )
        for path, content in files.items()
    }
    return _checked(bundle, "files", policy)


_END = struct.Struct("<4s4H2LH")  # end of central directory: signature … entries, size, offset
_END_MAX_COMMENT = 0xFFFF
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # right before the end record in a zip64 archive
_ZIP64_END_ENTRIES_AT = 32  # the zip64 end record's total entry count (8 bytes)


def declared_entries(data: bytes) -> int | None:
    """The entry count the archive's end record declares (files and directories), or None when
    there is no readable end record (zipfile then says why the archive is invalid)."""
    start = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - _END_MAX_COMMENT))
    if start < 0 or start + _END.size > len(data):
        return None
    entries = _END.unpack_from(data, start)[4]
    if entries != 0xFFFF:
        return int(entries)
    locator_at = start - _ZIP64_LOCATOR.size
    if locator_at < 0 or data[locator_at : locator_at + 4] != b"PK\x06\x07":
        return int(entries)
    end64_at = _ZIP64_LOCATOR.unpack_from(data, locator_at)[2]
    if end64_at + _ZIP64_END_ENTRIES_AT + 8 > len(data):
        return None
    return int(struct.unpack_from("<Q", data, end64_at + _ZIP64_END_ENTRIES_AT)[0])


def from_zip(data: bytes, policy: CodePolicy, field: str = "zip") -> CodeBundle:
    entries = declared_entries(data)
    # Directories count as entries but not as files: a tree needs at most about as many.
    if entries is not None and entries > 2 * policy.max_files:
        raise RequestInvalid(
            f"{field}: the archive declares {entries} entries, more than twice the limit of "
            f"{policy.max_files} files (the daemon's code.max_files)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise RequestInvalid(f"{field}: not a valid zip archive ({exc})") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        check_limits(len(members), sum(info.file_size for info in members), field, policy)
        files: dict[str, CodeFile] = {}
        for info in members:
            path = validate_path(info.filename, field)
            if path in files:
                raise RequestInvalid(f"{field}: {path!r} appears more than once in the archive")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise RequestInvalid(f"{field}: {path!r} is a symlink; symlinks are not allowed")
            try:
                content = archive.read(info)
            except _ZIP_ERRORS as exc:
                raise RequestInvalid(f"{field}: cannot read {path!r}: {exc}") from None
            executable = bool(mode & 0o111) or PurePosixPath(path).name in ALWAYS_EXECUTABLE
            files[path] = CodeFile(content, executable)
    return _checked(files, field, policy)


def check_limits(count: int, size: int, field: str, policy: CodePolicy) -> None:
    """Refuse more files or unpacked bytes than the policy allows, naming the setting."""
    if count > policy.max_files:
        raise RequestInvalid(
            f"{field}: {count} files is more than the limit of {policy.max_files} "
            "(the daemon's code.max_files)"
        )
    if size > policy.max_unpacked_bytes:
        raise RequestInvalid(
            f"{field}: {size} bytes unpacked is more than the limit of "
            f"{policy.max_unpacked_bytes} bytes (the daemon's code.max_unpacked_bytes)"
        )


def check_tree(paths: Iterable[str], field: str) -> None:
    """Refuse a file that another path needs as a directory: `a` and `a/b` cannot both exist."""
    files = set(paths)
    for path in sorted(files):
        parent = path
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if parent in files:
                raise RequestInvalid(
                    f"{field}: {parent!r} is a file, but {path!r} needs it to be a directory"
                )


def _checked(files: dict[str, CodeFile], field: str, policy: CodePolicy) -> CodeBundle:
    check_limits(len(files), sum(len(item.content) for item in files.values()), field, policy)
    check_tree(files, field)
    return CodeBundle(files)
