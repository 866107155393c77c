"""What one instance's VM is made of: its sizes, its files and the VmConfig the driver boots.

Memory: the guest gets memory_mb plus ``overhead_mb`` for its kernel and the agent; QEMU's own
~30 MB come on top on the host. vCPUs: one, two from 2 GiB (the host has 2). /tmp is a tmpfs in
guest RAM, so it is capped at half of memory_mb.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nova.sandbox.base import InstanceSpec
from nova.sandbox.microvm import guest as guest_boot
from nova.sandbox.microvm.vmm import Drive, VmConfig


@dataclass(frozen=True, slots=True)
class MicrovmOptions:
    cache_dir: Path  # kernels, initramfs and rootfs drives (content-addressed)
    overhead_mb: int = 64  # guest RAM beyond memory_mb: the guest kernel and the agent
    tmp_mb: int = 512  # /tmp cap; at most half of memory_mb (tmpfs lives in guest RAM)
    pids_max: int = 64  # processes + threads in the guest per invocation it runs at once
    max_message_bytes: int = 8 * 1024 * 1024
    snapshots: bool = True  # save initialised VMs and restore later starts from them
    snapshots_max_bytes: int = 4 << 30  # disk for snapshots; the least recently used go past it
    resume_timeout_s: float = 10.0  # a restored agent's answer to Resume


def guest_memory_mb(memory_mb: int, overhead_mb: int) -> int:
    return memory_mb + overhead_mb


def vcpus_for(memory_mb: int) -> int:
    return 2 if memory_mb >= 2048 else 1


def tmp_mb_for(tmp_mb: int, memory_mb: int) -> int:
    return max(1, min(tmp_mb, memory_mb // 2))


def memory_file(spec: InstanceSpec) -> Path:
    """Guest RAM of a VM that will be snapshotted: in /dev/shm where it exists, so the guest's
    writes never go to disk."""
    shm = Path("/dev/shm")
    directory = shm / "nova-vm" if shm.is_dir() else spec.work_dir
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"{spec.instance_id}.ram"


def discard(spec: InstanceSpec, config: VmConfig) -> None:
    if config.memory_file is not None:
        config.memory_file.unlink(missing_ok=True)
    shutil.rmtree(spec.work_dir, ignore_errors=True)


def vm_config(
    options: MicrovmOptions,
    spec: InstanceSpec,
    boot: guest_boot.GuestBoot,
    rootfs: Path,
    code: Path,
    memory_file: Path | None = None,
) -> VmConfig:
    tmp_mb = tmp_mb_for(options.tmp_mb, spec.memory_mb)
    cmdline = (
        f"{guest_boot.KERNEL_ARGS} nova_tmp_mb={tmp_mb} "
        f"nova_pids={options.pids_max * spec.concurrency} "
        f"nova_max_message={options.max_message_bytes}"
        f"{' nova_net=1' if spec.network else ''}"
    )
    work = spec.work_dir
    return VmConfig(
        kernel=boot.kernel,
        initrd=boot.initrd,
        cmdline=cmdline,
        memory_mb=guest_memory_mb(spec.memory_mb, options.overhead_mb),
        vcpus=vcpus_for(spec.memory_mb),
        drives=(Drive(rootfs), Drive(code)),
        channel=work / "agent.sock",
        control=work / "qmp.sock",
        console_log=work / "console.log",
        memory_file=memory_file,
    )
