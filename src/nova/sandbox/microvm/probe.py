"""Can this host run microVMs, and under which accelerator? Decided once per daemon.

Needs QEMU (qemu-system-x86), the guest kernel (linux-image-cloud-amd64), busybox-static and
e2fsprogs. KVM is used only where :mod:`.accel` allows it *and* a test boot under KVM powers
off cleanly; otherwise TCG. The reason names the accelerator and why, for /health, `nova
runtimes` and the start-up log, with the agent channel (:mod:`.channel`).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.base import BackendInfo
from nova.sandbox.microvm import drives
from nova.sandbox.microvm.accel import Accel, HostFacts, choose_accel, kvm_candidate
from nova.sandbox.microvm.channel import choose_channel, vhost_vsock_present
from nova.sandbox.microvm.guest import BUSYBOX, build_guest, find_kernel
from nova.sandbox.microvm.qemu import MACHINE, QEMU

ISOLATION = "microVM per instance: own guest kernel, QEMU microvm (virtio-mmio), read-only drives"
TEST_BOOT_TIMEOUT_S = 20.0


def missing_tools() -> list[str]:
    """The Debian packages the backend needs that are not installed."""
    missing = []
    if shutil.which(QEMU) is None:
        missing.append("qemu-system-x86")
    try:
        find_kernel()
    except SandboxError:
        missing.append("linux-image-cloud-amd64")
    if not BUSYBOX.is_file():
        missing.append("busybox-static")
    if not (Path(drives.MKFS).exists() and Path(drives.DEBUGFS).exists()):
        missing.append("e2fsprogs")
    return missing


def kvm_test_boot() -> bool:
    """Boot the guest kernel under KVM into busybox's poweroff: True if it powers off."""
    with tempfile.TemporaryDirectory(prefix="nova-kvm-") as scratch:
        try:
            guest = build_guest(Path(scratch))
        except SandboxError:
            return False
        argv = [
            shutil.which(QEMU) or QEMU,
            "-M", MACHINE, "-accel", "kvm", "-cpu", "host", "-m", "128M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
            "-append", "console=ttyS0 panic=-1 rdinit=/bin/busybox -- poweroff -f",
            "-serial", "stdio",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                argv, capture_output=True, timeout=TEST_BOOT_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0 and b"Power down" in result.stdout


def decide_accel(facts: HostFacts) -> Accel:
    return choose_accel(facts, kvm_test_boot() if kvm_candidate(facts) is None else None)


@functools.cache
def probe() -> tuple[BackendInfo, Accel]:
    accel = decide_accel(HostFacts.read())
    missing = missing_tools()
    if missing:
        reason = (
            f"missing packages: {' '.join(missing)} (make system-deps); would run {accel.reason}"
        )
        return BackendInfo("microvm", False, reason, ISOLATION, supports_reload=False), accel
    channel = choose_channel(vhost_vsock_present())
    reason = f"QEMU microvm under {accel.reason}; agent channel {channel.reason}"
    return BackendInfo("microvm", True, reason, ISOLATION, supports_reload=False), accel
