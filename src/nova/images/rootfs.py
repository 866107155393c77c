"""Filesystem work on a root: Nova's layer over what the builder made, its size, its removal."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import shutil
import subprocess
from pathlib import Path

from nova.images.recipe import ImageRecipe

# Debian's licences ask for these to ship with the binaries: never trimmed.
_KEPT_NAMES = frozenset({"copyright"})


def apply_layer(rootfs: Path, recipe: ImageRecipe) -> None:
    """Trim what a sandbox never needs, then create the mount points it binds over."""
    for pattern in recipe.trim:
        for match in matches(rootfs, pattern):
            if match.name not in _KEPT_NAMES:
                _remove(match)
    for directory in recipe.mount_points.dirs:
        _make_dirs(rootfs, directory)
    for file in recipe.mount_points.files:
        target = _make_dirs(rootfs, os.path.dirname(file)) / os.path.basename(file)
        if target.is_symlink():  # e.g. resolv.conf -> ../run/...: dangling once /run is gone
            target.unlink()
        if not target.exists():
            target.touch(mode=0o644)
            target.chmod(0o644)


def matches(rootfs: Path, pattern: str) -> list[Path]:
    """The paths under ``rootfs`` matching a relative glob, deepest first, *never following a
    symlink*: the root holds absolute links that would resolve on the host, and
    :func:`glob.glob` follows them."""
    current = [rootfs]
    parts = Path(pattern).parts
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        found: list[Path] = []
        for directory in current:
            if glob.has_magic(part):
                try:
                    entries = sorted(os.scandir(directory), key=lambda e: e.name)
                except OSError:
                    continue
                candidates = [
                    Path(e.path)
                    for e in entries
                    if not e.name.startswith(".") and fnmatch.fnmatchcase(e.name, part)
                ]
            else:
                candidates = [directory / part]
            # The last part may be anything that exists; every part before it must be a real
            # directory, not a symlink to one.
            keep = os.path.lexists if last else _real_dir
            found += [candidate for candidate in candidates if keep(candidate)]
        current = found
    return sorted(current, key=lambda p: len(p.parts), reverse=True)


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _make_dirs(rootfs: Path, path: str) -> Path:
    """mkdir -p inside the root, 0755 whatever the umask, refusing to pass through a symlink
    (which could point out of the root)."""
    if ".." in Path(path).parts:
        raise ValueError(f"mount point {path!r} leaves the root")
    target = rootfs
    for part in Path(path.lstrip("/")).parts:
        target = target / part
        if target.is_symlink():
            raise ValueError(f"mount point {path!r} passes through the symlink {target}")
        if not target.exists():
            target.mkdir()
            target.chmod(0o755)
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk, each hard-linked inode counted once (what ``du -s`` says)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def mounts_below(path: Path) -> list[str]:
    """Mount points under ``path`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point.startswith(prefix):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def remove_tree(path: Path) -> None:
    """Delete a (partial) root. A debootstrap that died mid-way can leave /proc or /sys
    mounted inside it, and rmtree would then walk into the host's: detach those first, and
    refuse to delete anything while a mount remains."""
    if not path.exists():
        return
    for point in mounts_below(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    remaining = mounts_below(path)
    if remaining:
        raise OSError(f"cannot remove {path}: still mounted below it: {', '.join(remaining)}")
    shutil.rmtree(path, ignore_errors=True)
