"""VM snapshots on disk: one per initialised function version, verified before use.

A snapshot is a directory ``<function>-<key>`` holding the guest's RAM (``ram``), QEMU's
device state (``state``), the code drive the guest had mounted (``code.ext4``: the guest's page
cache holds its blocks, so a restore must see the very same image, not a rebuilt one) and
``manifest.json`` with the files' SHA-256. The key digests everything the guest's state
depends on: the Init message (function version, handler, env, memory, limits), the runtime
image and agent (the rootfs drive's name) and the guest kernel + initramfs.

Saving a new snapshot of a function removes its older ones (a code or config change gives a
new key, so the old snapshot can never be used again), and, when all snapshots together take
more disk than the store's cap, the least recently used ones (a restore marks its snapshot
used: the directory's mtime, which the checksum stamps ignore). Removing a snapshot running
VMs were restored from is safe: QEMU holds its files open. Checksums are verified the first time
this process restores from a snapshot and again whenever a file's size or mtime changes; a
snapshot that fails is deleted and the start boots instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.microvm.vmm import SnapshotFiles

logger = logging.getLogger(__name__)

_FILES = ("ram", "state", "code.ext4")


@dataclass(frozen=True, slots=True)
class Snapshot:
    directory: Path

    @property
    def files(self) -> SnapshotFiles:
        return SnapshotFiles(self.directory / "ram", self.directory / "state")

    @property
    def code_drive(self) -> Path:
        return self.directory / "code.ext4"


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    name: str  # the directory: <function>-<key>
    function: str
    key: str
    disk_bytes: int  # allocated on disk (the RAM file is sparse: pages the guest never touched)
    created_at: float  # epoch seconds
    last_used_at: float  # the last restore from it (or its creation)


def snapshot_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class SnapshotStore:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self._max_bytes = max_bytes
        self._verified: dict[Path, tuple[tuple[int, int], ...]] = {}

    def _dir(self, function: str, key: str) -> Path:
        return self.root / f"{function}-{key}"

    def find(self, function: str, key: str) -> Snapshot | None:
        """The snapshot for this key if it exists and its checksums hold (SandboxError if it
        exists but is corrupt: the caller counts the failed restore and boots)."""
        directory = self._dir(function, key)
        if not (directory / "manifest.json").is_file():
            return None
        try:
            stamp = _stamp(directory)
        except OSError as exc:
            raise SandboxError(f"snapshot {directory.name} is incomplete: {exc}") from exc
        if self._verified.get(directory) != stamp:
            self._verify(directory)
            self._verified[directory] = stamp
        with contextlib.suppress(OSError):
            os.utime(directory)  # used now: the last to be evicted
        return Snapshot(directory)

    def _verify(self, directory: Path) -> None:
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            for name in _FILES:
                if _sha256(directory / name) != manifest["sha256"][name]:
                    raise SandboxError(f"snapshot {directory.name}: {name} fails its checksum")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SandboxError(f"snapshot {directory.name} is unreadable: {exc}") from exc

    def staging(self, function: str, key: str, instance_id: str) -> Path:
        """An empty directory to save a new snapshot into (published by :meth:`publish`)."""
        staging = self.root / f".{function}-{key}.{instance_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def publish(self, staging: Path, function: str, key: str) -> Snapshot | None:
        """Checksum the staged files and make them the function's snapshot; older snapshots
        of the function go. None if another instance published the same key first."""
        manifest = {"key": key, "sha256": {name: _sha256(staging / name) for name in _FILES}}
        (staging / "manifest.json").write_text(json.dumps(manifest))
        target = self._dir(function, key)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return None
        self._verified[target] = _stamp(target)
        for old in self.root.glob(f"{function}-*"):
            if old != target and len(old.name) == len(target.name):
                shutil.rmtree(old, ignore_errors=True)
        self._evict_over_cap(keep=target.name)
        return Snapshot(target)

    def _evict_over_cap(self, keep: str) -> None:
        if self._max_bytes is None:
            return
        entries = sorted(self.entries(), key=lambda entry: entry.last_used_at)
        total = sum(entry.disk_bytes for entry in entries)
        for entry in entries:
            if total <= self._max_bytes:
                break
            if entry.name == keep:
                continue
            logger.info("evicting VM snapshot %s: snapshots exceed their disk cap", entry.name)
            self.remove(entry.function, entry.key)
            total -= entry.disk_bytes

    def remove(self, function: str, key: str) -> None:
        directory = self._dir(function, key)
        self._verified.pop(directory, None)
        shutil.rmtree(directory, ignore_errors=True)

    def directories(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*") if not p.name.startswith("."))

    def entries(self) -> list[SnapshotEntry]:
        """Every published snapshot, for listing (GET /vm-snapshots)."""
        found = []
        for directory in self.directories():
            try:
                manifest = json.loads((directory / "manifest.json").read_text())
                stats = [os.stat(directory / name) for name in _FILES]
                used = os.stat(directory).st_mtime
            except (OSError, ValueError):
                continue  # being removed or published right now
            key = str(manifest.get("key", ""))
            found.append(
                SnapshotEntry(
                    name=directory.name,
                    function=directory.name.removesuffix(f"-{key}"),
                    key=key,
                    disk_bytes=sum(st.st_blocks * 512 for st in stats),
                    created_at=max(st.st_mtime for st in stats),
                    last_used_at=used,
                )
            )
        return found

    def evict(self, function: str) -> list[SnapshotEntry]:
        """Remove every snapshot of ``function``; the next start of each boots."""
        removed = [entry for entry in self.entries() if entry.function == function]
        for entry in removed:
            self.remove(function, entry.key)
        return removed


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a RAM file keeping its holes (never-touched guest pages stay unallocated)."""
    result = subprocess.run(
        ["cp", "--sparse=always", str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(f"copying the VM's RAM failed: {result.stderr.strip()}")


def _stamp(directory: Path) -> tuple[tuple[int, int], ...]:
    stats = [os.stat(directory / name) for name in (*_FILES, "manifest.json")]
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
