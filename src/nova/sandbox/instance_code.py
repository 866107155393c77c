"""Each instance's own copy of its function's code, and its replacement for a hot reload.

Container, gVisor and process instances run on a private host directory filled from the code
cache, never on the cache itself: the host can then replace one instance's code while its
sandbox keeps running, without touching any other instance. Container and gVisor instances
bind the directory read-only at /code (the function and the agent cannot change it, only the
daemon can); the process backend hands its path to the agent.

A hot reload (pool/instance.py) runs in three steps: the agent stops its workers (Drain), the
host replaces the directory's contents (:func:`replace_code_dir`), the agent starts workers on
the new code (Reload). No worker runs while the files change, so none can import a half-written
tree, and no invocation is running: the pool reloads an instance only once it is idle.

Files are hard links to the cache where the file system allows (the cache's files are never
modified: a new code version is a new directory), else copies. Either way every directory is
0755 and every file 0644 or 0755, so the sandbox user (uid 65534) may read them and nothing
more; symlinks are never followed or copied.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path


def instance_code_dir(instance_id: str) -> Path:
    """Where a container or gVisor instance's code lives on the host: under the system temp dir,
    which the sandbox user can reach even when the daemon's data dir is private (/root/...)."""
    return Path(tempfile.gettempdir()) / "nova-code" / instance_id


def create_instance_code_dir(instance_id: str, source: Path) -> Path:
    """:func:`instance_code_dir`, filled with ``source``'s files."""
    target = instance_code_dir(instance_id)
    target.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    target.parent.chmod(0o711)  # searchable, not listable: instances cannot see each other's
    fill_code_dir(source, target)
    return target


def remove_instance_code(instance_id: str) -> None:
    shutil.rmtree(instance_code_dir(instance_id), ignore_errors=True)


def fill_code_dir(source: Path, target: Path) -> None:
    """Put ``source``'s files into ``target`` (created if missing, expected empty)."""
    target.mkdir(mode=0o755, exist_ok=True)
    target.chmod(0o755)
    _fill(source, target)


def replace_code_dir(source: Path, target: Path) -> None:
    """Replace everything inside ``target`` with ``source``'s files. ``target`` itself stays:
    it is the source of a running sandbox's bind mount, which a new directory would not be."""
    with os.scandir(target) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    _fill(source, target)


def _fill(source: Path, target: Path) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            destination = target / entry.name
            if entry.is_dir(follow_symlinks=False):
                destination.mkdir(mode=0o755)
                destination.chmod(0o755)  # whatever the daemon's umask
                _fill(Path(entry.path), destination)
            elif entry.is_file(follow_symlinks=False):
                _link_or_copy(Path(entry.path), destination, entry.stat(follow_symlinks=False))


def _link_or_copy(source: Path, destination: Path, st: os.stat_result) -> None:
    mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    if stat.S_IMODE(st.st_mode) == mode:  # a link shares the mode: only when it is right already
        try:
            os.link(source, destination, follow_symlinks=False)
            return
        except OSError:
            pass  # another file system (EXDEV) or protected_hardlinks: copy instead
    shutil.copyfile(source, destination, follow_symlinks=False)
    destination.chmod(mode)
