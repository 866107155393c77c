"""What this host offers a microVM backend, reported honestly until that backend exists.

Nova has no microVM backend yet. The report still tells an operator what the host could do:
whether /dev/kvm exists, whether it is hardware KVM or a software virtualiser (PVM, which stock
guest kernels cannot use), and whether QEMU is installed (Firecracker has no Debian package).
"""

from __future__ import annotations

import functools
import os
import shutil

from nova.sandbox.base import BackendInfo

ISOLATION = "KVM microVM per instance (hardware virtualisation)"


def _kvm_status() -> str:
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm on this host"
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "/dev/kvm is PVM, a software virtualiser stock guest kernels cannot use (QEMU would need TCG)"
    with open("/proc/cpuinfo") as cpuinfo:
        flags = cpuinfo.read()
    if " vmx" in flags or " svm" in flags:
        return "hardware KVM present"
    return "/dev/kvm present but the CPU reports no vmx/svm"


@functools.cache
def probe() -> BackendInfo:
    qemu = shutil.which("qemu-system-x86_64")
    firecracker = shutil.which("firecracker")
    vmm = (
        f"firecracker at {firecracker}"
        if firecracker
        else (f"qemu at {qemu}" if qemu else "no VMM installed")
    )
    reason = f"not implemented in this version of Nova; host: {_kvm_status()}; {vmm}"
    return BackendInfo("microvm", False, reason, ISOLATION, supports_reload=True)
