"""KVM or TCG: which accelerator QEMU gets, decided from the host's facts.

``/dev/kvm`` alone proves little: on a host that is itself a VM it may be PVM, a software
virtualiser (``/sys/module/kvm_pvm``) under which only kernels built for it run; a stock
Debian guest kernel there crawls and dies with an emulation failure. So KVM is chosen only
when the CPU reports hardware virtualisation (vmx or svm), no PVM module is loaded, and a test
boot under KVM succeeds; everything else runs under TCG, QEMU's software emulation (the same
microVM, ~10-50x slower per instruction).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the choice depends on, read once (tests build their own)."""

    cpu_flags: frozenset[str]
    dev_kvm: bool
    pvm_module: bool

    @classmethod
    def read(cls, root: Path = Path("/")) -> HostFacts:
        flags: set[str] = set()
        try:
            text = (root / "proc/cpuinfo").read_text()
        except OSError:
            text = ""
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "flags":
                flags.update(value.split())
                break  # every CPU reports the same flags
        return cls(
            cpu_flags=frozenset(flags),
            dev_kvm=os.path.exists(root / "dev/kvm"),
            pvm_module=os.path.isdir(root / "sys/module/kvm_pvm"),
        )


@dataclass(frozen=True, slots=True)
class Accel:
    name: str  # "kvm" or "tcg": QEMU's -accel value
    reason: str  # one line, shown by /health, `nova runtimes` and the start-up log


def kvm_candidate(facts: HostFacts) -> str | None:
    """None when KVM may be tried; otherwise why not."""
    if not facts.dev_kvm:
        return "no /dev/kvm"
    if facts.pvm_module:
        return (
            "/dev/kvm is PVM (kvm_pvm), a software virtualiser stock guest kernels cannot run under"
        )
    if not facts.cpu_flags & {"vmx", "svm"}:
        return "the CPU reports no hardware virtualisation (vmx/svm)"
    return None


def choose_accel(facts: HostFacts, kvm_boots: bool | None) -> Accel:
    """``kvm_boots``: the outcome of a test boot under KVM (None when not tried)."""
    why_not = kvm_candidate(facts)
    if why_not is not None:
        return Accel("tcg", f"TCG (software emulation): {why_not}")
    if not kvm_boots:
        return Accel("tcg", "TCG (software emulation): a test boot under KVM failed")
    flag = "vmx" if "vmx" in facts.cpu_flags else "svm"
    return Accel("kvm", f"KVM (hardware virtualisation: {flag}, test boot succeeded)")
