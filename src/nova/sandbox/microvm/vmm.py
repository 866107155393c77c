"""The VMM driver port: what the microVM backend needs from a virtual machine monitor.

Four operations — boot, snapshot, restore, stop — over plain descriptions of a VM, so that a
Firecracker or Cloud Hypervisor driver is one new module beside :mod:`.qemu`. The backend
owns everything else (drives, kernel, the agent channel's protocol, snapshot keys).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Drive:
    path: Path
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class VmConfig:
    """One VM. The order of ``drives`` is the guest's order: /dev/vda, /dev/vdb, ..."""

    kernel: Path
    initrd: Path
    cmdline: str
    memory_mb: int
    vcpus: int
    drives: tuple[Drive, ...]
    channel: Path  # unix socket the VMM serves the agent's port on (virtio-serial or vsock)
    control: Path  # unix socket of the VMM's control interface
    console_log: Path  # the guest's serial console, for diagnostics
    # Guest RAM in this file, shared with the VMM: what makes a snapshot without copying RAM.
    memory_file: Path | None = None
    # A network device with the VMM's user-mode network: only inside a network namespace the
    # backend set up (``wrapper`` enters it; ``inherit_fds`` are the wrapper's).
    network: bool = False
    wrapper: tuple[str, ...] = ()
    inherit_fds: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotFiles:
    """A saved VM: its RAM (the memory file it ran on) and its device state."""

    memory: Path
    state: Path


class Vm(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def config(self) -> VmConfig: ...

    def alive(self) -> bool: ...


class VmmDriver(Protocol):
    @property
    def name(self) -> str:
        """e.g. "qemu-microvm": shown with the backend's availability."""
        ...

    async def boot(self, config: VmConfig) -> Vm:
        """Start the VM; return once the VMM runs and serves ``config.channel``."""
        ...

    async def snapshot(self, vm: Vm, files: SnapshotFiles) -> None:
        """Pause ``vm``, write its device state to ``files.state`` and its RAM (the memory
        file it was booted on) to ``files.memory``, and let it run on."""
        ...

    async def restore(
        self,
        config: VmConfig,
        files: SnapshotFiles,
        before_run: Callable[[Vm], Awaitable[None]],
    ) -> Vm:
        """Start a VM from a snapshot, its RAM mapped copy-on-write from ``files.memory``
        (many restores share one file). ``before_run`` is awaited once the VMM serves the
        channel and before the guest runs: the host connects there, so the restored guest
        never sees its port closed."""
        ...

    async def stop(self, vm: Vm) -> None:
        """Kill the VM at once. Idempotent."""
        ...
