"""The guest's block devices, built as ext4 image files without mounting anything.

* the rootfs drive, one per runtime image and agent version: the image's root
  (``mkfs.ext4 -d``) with the Nova agent written in by ``debugfs``, read-only to every VM;
  with the agent's bytecode, compiled here: the guest cannot cache its own compile on a
  read-only drive (measured under TCG: boot to first reply 3.80 s instead of 3.93 s);
* the code drive, one per instance: the function's files (``mkfs.ext4 -d``), read-only too.

Neither has a journal: the guest never writes to them. Both are built in a temporary file
and renamed into place, so a crash never leaves a half-written drive under its final name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import py_compile
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from nova.core.errors import SandboxError
from nova.images.rootfs import disk_usage
from nova.sandbox.agent_launch import AGENT_PACKAGE_DIR

AGENT_ROOT = "/opt/nova"  # the image's mount point for the agent (PYTHONPATH in the guest)
MKFS = "/usr/sbin/mkfs.ext4"
DEBUGFS = "/usr/sbin/debugfs"
MIB = 1024 * 1024
# debugfs messages that are no failure: mkdir of a directory the image has, rm of a file it
# has not.
_EXPECTED = re.compile(r"already exists|File not found by ext2_lookup")
_MKFS_OPTIONS = ["-q", "-F", "-O", "^has_journal", "-E", "root_owner=0:0", "-m", "0"]


def agent_files() -> list[tuple[str, Path]]:
    """(path inside the guest, host file) of every file the agent needs."""
    files = [(f"{AGENT_ROOT}/nova/__init__.py", AGENT_PACKAGE_DIR.parent / "__init__.py")]
    for path in sorted(AGENT_PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(AGENT_PACKAGE_DIR)
            files.append((f"{AGENT_ROOT}/nova/agent/{relative.as_posix()}", path))
    return files


def agent_digest() -> str:
    digest = hashlib.sha256(importlib.util.MAGIC_NUMBER)  # the bytecode's format
    for guest_path, host_path in agent_files():
        digest.update(guest_path.encode() + b"\0" + host_path.read_bytes())
    return digest.hexdigest()[:16]


def rootfs_drive(image_id: str, image_rootfs: Path, cache: Path) -> Path:
    """The read-only rootfs drive of one image (cached: built once per image and agent)."""
    name = f"{image_id.replace(':', '-')}-agent-{agent_digest()}.ext4"
    target = cache / name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    size = disk_usage(image_rootfs) * 5 // 4 + 64 * MIB
    with _staging(cache, target) as staging:
        make_ext4(staging, image_rootfs, size, "nova-root")
        _write_agent(staging)
    return target


def code_drive(code_dir: Path, target: Path) -> Path:
    """The function's files as an ext4 image at ``target`` (the instance's own)."""
    size = disk_usage(code_dir) * 3 // 2 + 4 * MIB
    with _staging(target.parent, target) as staging:
        make_ext4(staging, code_dir, size, "nova-code")
    return target


def make_ext4(path: Path, source: Path, size_bytes: int, label: str) -> None:
    with path.open("wb") as file:
        file.truncate(size_bytes)
    _run([MKFS, *_MKFS_OPTIONS, "-L", label, "-d", str(source), str(path)], f"mkfs.ext4 {path}")
    # mkfs adds lost+found; the function would see it in /code. fsck never runs on these.
    _run([DEBUGFS, "-w", "-R", "rmdir /lost+found", str(path)], f"debugfs {path}")


def _compiled(files: list[tuple[str, Path]], scratch: Path) -> list[tuple[str, Path]]:
    """(guest path, host file) of the bytecode of every module in ``files``. Unchecked hash
    pycs: the drive is named after the sources' digest, so they never go stale. A guest
    Python of another version ignores them (another magic number) and compiles in memory."""
    compiled: list[tuple[str, Path]] = []
    for guest_path, host_path in files:
        if host_path.suffix != ".py":
            continue
        directory, name = os.path.split(guest_path)
        tag = sys.implementation.cache_tag
        target = scratch / f"{len(compiled)}.pyc"
        py_compile.compile(
            str(host_path),
            cfile=str(target),
            dfile=guest_path,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        compiled.append((f"{directory}/__pycache__/{name[:-3]}.{tag}.pyc", target))
    return compiled


def _write_agent(drive: Path) -> None:
    """Write the agent into the drive with debugfs: the image's root stays untouched."""
    with tempfile.TemporaryDirectory(prefix="nova-agent-pyc-") as scratch:
        sources = agent_files()
        _write_files(drive, [*sources, *_compiled(sources, Path(scratch))])


def _write_files(drive: Path, files: list[tuple[str, Path]]) -> None:
    directories: set[str] = set()
    for guest_path, _ in files:
        parent = os.path.dirname(guest_path)
        while parent != "/":
            directories.add(parent)
            parent = os.path.dirname(parent)
    commands = [f'mkdir "{d}"' for d in sorted(directories, key=lambda d: (d.count("/"), d))]
    for guest_path, host_path in files:
        commands.append(f'rm "{guest_path}"')  # the image's empty mount-point file, if any
        commands.append(f'write "{host_path}" "{guest_path}"')
        commands.append(f'sif "{guest_path}" mode 0100644')
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        _run([DEBUGFS, "-w", "-f", script.name, str(drive)], f"debugfs {drive}")


class _staging:
    """A temporary file beside ``target``, renamed onto it when the block succeeds."""

    def __init__(self, directory: Path, target: Path) -> None:
        self._path = directory / f".{target.name}.{os.getpid()}.tmp"
        self._target = target

    def __enter__(self) -> Path:
        self._path.unlink(missing_ok=True)
        return self._path

    def __exit__(self, kind: object, _value: object, _tb: object) -> None:
        if kind is None:
            os.rename(self._path, self._target)
        else:
            self._path.unlink(missing_ok=True)


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{what} failed: {exc}") from exc
    # debugfs reports a failed command on stderr but exits 0: "rm" of a missing file is
    # expected, anything else is not.
    errors = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ") and not _EXPECTED.search(line)
    ]
    if result.returncode != 0 or (argv[0] == DEBUGFS and errors):
        raise SandboxError(f"{what} failed: {(result.stderr or result.stdout).strip()[-500:]}")
