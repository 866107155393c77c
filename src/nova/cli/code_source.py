"""Reading a function's code from the command line's ``--code-file`` / ``--dir`` / ``--zip``.

JSON bodies carry text only, so ``--code-file`` and ``--dir`` refuse binary files (and say to
use ``--zip``, which is uploaded as-is).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nova.cli.errors import UsageProblem

CODE_OPTIONS = "--code-file FILE, --dir DIR or --zip FILE.zip"
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class CodeSource:
    """Either JSON body fields (``code`` or ``files``) or a zip archive to upload."""

    fields: dict[str, Any] = field(default_factory=dict)
    zip_name: str | None = None
    zip_bytes: bytes | None = None


def read_code_source(
    code_file: Path | None, directory: Path | None, zip_file: Path | None
) -> CodeSource | None:
    """The code the options point at; ``None`` when none was given."""
    given = [option for option in (code_file, directory, zip_file) if option is not None]
    if len(given) > 1:
        raise UsageProblem(f"give only one of {CODE_OPTIONS}")
    if code_file is not None:
        return CodeSource(fields={"code": read_text(code_file)})
    if directory is not None:
        return CodeSource(fields={"files": read_directory(directory)})
    if zip_file is not None:
        return CodeSource(zip_name=zip_file.name, zip_bytes=read_zip(zip_file))
    return None


def read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        if b"\x00" in data:
            raise ValueError("NUL byte")
        return data.decode("utf-8")
    except ValueError as exc:
        raise UsageProblem(
            f"{path} is not a UTF-8 text file",
            hint="JSON uploads carry text only; zip the code and pass it with --zip FILE.zip",
        ) from exc


def read_directory(root: Path) -> dict[str, str]:
    """relative POSIX path → text, skipping ``__pycache__``, dot-directories and bytecode."""
    files: dict[str, str] = {}
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            name for name in dirnames if not name.startswith(".") and name not in _SKIPPED_DIRS
        )
        for filename in sorted(filenames):
            if filename.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(current, filename)
            files[path.relative_to(root).as_posix()] = read_text(path)
    if not files:
        raise UsageProblem(f"{root} holds no files to upload")
    return files


def read_zip(path: Path) -> bytes:
    data = _read_bytes(path)
    if not zipfile.is_zipfile(path):
        raise UsageProblem(f"{path} is not a zip archive")
    return data


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
