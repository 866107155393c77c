"""Building zip archives for tests, including ones zipfile would warn about or never write."""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterable, Mapping


def zip_bytes(files: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]) -> bytes:
    """An archive of (name, content) entries, in order; repeated names are kept."""
    entries = files.items() if isinstance(files, Mapping) else files
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries:
                archive.writestr(name, content)
    return buffer.getvalue()


def with_utf8_flag_on_invalid_name(data: bytes, name: bytes) -> bytes:
    """``data`` with the central-directory entry of ``name`` renamed to invalid UTF-8 (its
    first byte 0xff) and flagged as UTF-8, as a broken archiver would write it."""
    patched = bytearray(data)
    entry = patched.find(b"PK\x01\x02")
    while entry != -1:
        name_length = int.from_bytes(patched[entry + 28 : entry + 30], "little")
        start = entry + 46
        if patched[start : start + name_length] == name:
            patched[start] = 0xFF
            flags = int.from_bytes(patched[entry + 8 : entry + 10], "little") | 0x800
            patched[entry + 8 : entry + 10] = flags.to_bytes(2, "little")
            return bytes(patched)
        entry = patched.find(b"PK\x01\x02", entry + 4)
    raise ValueError(f"{name!r} is not in the archive")
