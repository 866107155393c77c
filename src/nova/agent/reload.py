"""Reload: validate a new file map completely, then replace the contents of code_dir with it.

Every path is checked and every file decoded before anything on disk changes, so a bad Reload
leaves the running code untouched. The code directory itself is kept (it may be a mount point);
only what is inside it is replaced.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
from dataclasses import dataclass

from nova.agent.errors import AgentError, ErrorType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any, NoReturn


@dataclass(frozen=True, slots=True)
class NewFile:
    path: str  # relative, normalised, POSIX
    content: bytes
    executable: bool


def parse_files(files: Any) -> list[NewFile]:
    if not isinstance(files, dict) or not files:
        _invalid("files must be a non-empty object of relative path -> {data, executable}")
    parsed = []
    for path, item in files.items():
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            _invalid(f"file {path!r} must be an object with base64 'data'")
        try:
            content = base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError):
            _invalid(f"file {path!r}: data is not valid base64")
        parsed.append(NewFile(safe_relative_path(path), content, bool(item.get("executable"))))
    paths = {item.path for item in parsed}
    folders = {
        path.rsplit("/", depth)[0] for path in paths for depth in range(1, path.count("/") + 1)
    }
    if len(paths) != len(parsed) or paths & folders:
        _invalid("two files have the same path, or a file has the path of a directory")
    return parsed


def safe_relative_path(path: Any) -> str:
    """The path as a clean relative path, or InvalidReload for anything that could escape."""
    if not isinstance(path, str) or not path or "\x00" in path:
        _invalid(f"file path {path!r} is empty or not a string")
    if path.startswith("/") or os.path.isabs(path):
        _invalid(f"file path {path!r} is absolute; paths must be relative to the code directory")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        _invalid(f"file path {path!r} contains '..' or names no file")
    return "/".join(parts)


def replace_code(code_dir: str, files: list[NewFile]) -> None:
    """Empty code_dir, then write ``files`` into it. Workers must be stopped first."""
    try:
        with os.scandir(code_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        for item in files:
            target = os.path.join(code_dir, item.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            mode = 0o755 if item.executable else 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as file:
                file.write(item.content)
            os.chmod(target, mode)
    except OSError as exc:
        raise AgentError(ErrorType.RELOAD_FAILED, f"cannot rewrite {code_dir}: {exc}") from exc


def _invalid(message: str) -> NoReturn:
    raise AgentError(ErrorType.INVALID_RELOAD, f"Reload: {message}")
