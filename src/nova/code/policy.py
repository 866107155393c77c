"""What code the daemon accepts: how much of it, and from which host directories.

The daemon builds one :class:`CodePolicy` from the ``code`` settings; the limits that come from
the filesystem itself are constants here, so validation and the README quote the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# NAME_MAX of Linux filesystems (ext4, xfs, btrfs, tmpfs): one path component, in bytes.
MAX_NAME_BYTES = 255
# A relative path inside the code, in bytes. PATH_MAX is 4096 for the whole path, and the code
# is written under <data_dir>/code/<function>/<sha256>/, so this leaves room for a long data_dir.
MAX_PATH_BYTES = 1024


@dataclass(frozen=True, slots=True)
class CodePolicy:
    max_upload_bytes: int  # a create/update request body or zip archive
    max_files: int
    max_unpacked_bytes: int
    # Roots `code_path` may read below; empty: `code_path` is refused.
    allowed_paths: tuple[Path, ...] = ()
