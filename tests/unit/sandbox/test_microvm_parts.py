"""The microVM backend's pure parts: the KVM/TCG choice from host facts, QEMU's command line,
the initramfs archive and the sizing rules."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.microvm import drives, guest
from nova.sandbox.microvm.accel import HostFacts, choose_accel
from nova.sandbox.microvm.channel import choose_channel, vhost_vsock_present
from nova.sandbox.microvm.layout import MicrovmOptions, vcpus_for, vm_config
from nova.sandbox.microvm.qemu import QemuDriver
from nova.sandbox.microvm.snapshots import SnapshotStore
from nova.sandbox.microvm.vmm import SnapshotFiles

INTEL = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse2\n\nprocessor\t: 1\n"
NO_VIRT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse2 hypervisor\n"


def fake_host(tmp_path: Path, cpuinfo: str, *, kvm: bool, pvm: bool) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    (tmp_path / "dev").mkdir()
    if kvm:
        (tmp_path / "dev/kvm").touch()
    if pvm:
        (tmp_path / "sys/module/kvm_pvm").mkdir(parents=True)
    return tmp_path


def test_hardware_kvm_with_a_good_test_boot_is_kvm(tmp_path: Path) -> None:
    facts = HostFacts.read(fake_host(tmp_path, INTEL, kvm=True, pvm=False))
    assert "vmx" in facts.cpu_flags
    accel = choose_accel(facts, kvm_boots=True)
    assert accel.name == "kvm"
    assert "vmx" in accel.reason


def test_a_failed_test_boot_falls_back_to_tcg(tmp_path: Path) -> None:
    facts = HostFacts.read(fake_host(tmp_path, INTEL, kvm=True, pvm=False))
    accel = choose_accel(facts, kvm_boots=False)
    assert accel.name == "tcg"
    assert "test boot" in accel.reason


def test_pvm_is_not_kvm_even_with_vmx(tmp_path: Path) -> None:
    facts = HostFacts.read(fake_host(tmp_path, INTEL, kvm=True, pvm=True))
    accel = choose_accel(facts, kvm_boots=True)
    assert accel.name == "tcg"
    assert "PVM" in accel.reason


@pytest.mark.parametrize(
    ("cpuinfo", "kvm", "why"),
    [(NO_VIRT, True, "vmx/svm"), (INTEL, False, "no /dev/kvm")],
)
def test_without_hardware_virtualisation_tcg(
    tmp_path: Path, cpuinfo: str, kvm: bool, why: str
) -> None:
    facts = HostFacts.read(fake_host(tmp_path, cpuinfo, kvm=kvm, pvm=False))
    accel = choose_accel(facts, kvm_boots=None)
    assert (accel.name, why in accel.reason) == ("tcg", True)


def _config(tmp_path: Path, memory_mb: int = 128):
    spec = InstanceSpec(
        "i1", "fn", "python", "/usr/bin/python3", tmp_path, tmp_path / "w", memory_mb, 3, False
    )
    boot = guest.GuestBoot("vm-x", tmp_path / "k", tmp_path / "i", "6.1")
    options = MicrovmOptions(tmp_path, overhead_mb=64, tmp_mb=512)
    return vm_config(options, spec, boot, tmp_path / "root.ext4", tmp_path / "code.ext4")


def test_qemu_command_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    argv = QemuDriver("tcg", qemu="qemu").argv(config)
    joined = " ".join(argv)
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-m") + 1] == "192M"  # memory_mb + overhead
    assert "nova_tmp_mb=64" in config.cmdline  # half of memory_mb at most
    assert "nova_pids=64" in config.cmdline  # the guest cgroup's pids.max
    # serial port before the drives (QEMU 7.2 microvm's ACPI table), root before code
    assert joined.index("virtio-serial-device") < joined.index("virtio-blk-device")
    assert joined.index("root.ext4") < joined.index("code.ext4")
    assert "readonly=on" in joined
    assert "-netdev" not in argv  # no network device
    assert "-incoming" not in argv
    assert QemuDriver("kvm", qemu="qemu").argv(config)[4:6] == ["kvm", "-cpu"]


def test_a_networked_vm_gets_a_nic_and_runs_under_its_wrapper(tmp_path: Path) -> None:
    spec = InstanceSpec(
        "i1", "fn", "python", "/usr/bin/python3", tmp_path, tmp_path / "w", 128, 3, True
    )
    boot = guest.GuestBoot("vm-x", tmp_path / "k", tmp_path / "i", "6.1")
    config = vm_config(MicrovmOptions(tmp_path), spec, boot, tmp_path / "r", tmp_path / "c")
    assert config.cmdline.endswith(" nova_net=1")  # /init configures eth0
    argv = QemuDriver("tcg", qemu="qemu").argv(replace(config, network=True))
    assert argv[argv.index("-netdev") + 1].startswith("user,")
    assert "virtio-net-device,netdev=net0" in argv
    plain = _config(tmp_path)
    assert "nova_net" not in plain.cmdline


def test_restore_maps_the_snapshot_private(tmp_path: Path) -> None:
    config = _config(tmp_path)
    files = SnapshotFiles(tmp_path / "ram", tmp_path / "state")
    argv = QemuDriver("tcg", qemu="qemu").argv(config, restore_from=files)
    backend = argv[argv.index("-object") + 1]
    assert f"mem-path={tmp_path / 'ram'}" in backend
    assert "share=off" in backend
    assert argv[-2:] == ["-incoming", "defer"]


def test_vcpus_follow_memory() -> None:
    assert (vcpus_for(128), vcpus_for(2048)) == (1, 2)


def test_initramfs_is_a_newc_archive() -> None:
    archive = guest.cpio_newc([("init", 0o100755, b"#!/bin/sh\n"), ("dev", 0o40755, b"")])
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    names = []
    offset = 0
    while offset < len(archive):
        header = archive[offset : offset + 110]
        size, name_size = int(header[54:62], 16), int(header[94:102], 16)
        name_at = offset + 110
        names.append(archive[name_at : name_at + name_size - 1].decode())
        data_at = name_at + name_size + (-(110 + name_size) % 4)
        offset = data_at + size + (-size % 4)
    assert names == ["init", "dev", "TRAILER!!!"]


def test_the_init_script_loads_modules_in_dependency_order() -> None:
    line = next(x for x in guest.INIT_SCRIPT.splitlines() if x.startswith("for m in"))
    order = line.split(" in ")[1].split(";")[0].split()
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_mmio")
    assert "switch_root /newroot /usr/bin/python3 -S -m nova.agent" in guest.INIT_SCRIPT


@pytest.mark.parametrize("present", [False, True])
def test_the_channel_is_virtio_serial_and_says_why_not_vsock(tmp_path: Path, present: bool) -> None:
    (tmp_path / "dev").mkdir()
    if present:
        (tmp_path / "dev/vhost-vsock").touch()
    channel = choose_channel(vhost_vsock_present(tmp_path))
    assert channel.name == "virtio-serial"
    assert ("/dev/vhost-vsock exists" in channel.reason) is present
    assert ("no /dev/vhost-vsock" in channel.reason) is not present


def _publish(store: SnapshotStore, function: str, key: str) -> None:
    staging = store.staging(function, key, "i1")
    for name in ("ram", "state", "code.ext4"):
        (staging / name).write_bytes(name.encode() * 100)
    assert store.publish(staging, function, key) is not None


def test_snapshot_store_lists_verifies_and_evicts(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    for key in ("k1", "k2"):
        _publish(store, "fn-a", key)
    # a second key of the same function replaced the first
    assert [(e.function, e.key) for e in store.entries()] == [("fn-a", "k2")]
    assert store.find("fn-a", "k1") is None
    assert store.find("fn-a", "k2") is not None
    with (tmp_path / "snapshots/fn-a-k2/state").open("r+b") as state:
        state.write(b"corrupt")
    with pytest.raises(SandboxError, match="checksum"):
        store.find("fn-a", "k2")
    assert [e.key for e in store.evict("fn-a")] == ["k2"]
    assert store.entries() == []


def test_snapshots_over_the_disk_cap_go_least_recently_used_first(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    _publish(SnapshotStore(root), "a", "k")
    [one] = SnapshotStore(root).entries()
    store = SnapshotStore(root, max_bytes=one.disk_bytes * 5 // 2)  # room for two
    _publish(store, "b", "k")
    os.utime(root / "a-k", (1000, 1000))
    os.utime(root / "b-k", (2000, 2000))
    assert store.find("a", "k") is not None  # a restore: "a" is now the most recently used
    _publish(store, "c", "k")
    assert sorted(e.function for e in store.entries()) == ["a", "c"]


def test_the_rootfs_drive_carries_the_agent_and_its_bytecode(tmp_path: Path) -> None:
    if not (Path(drives.MKFS).exists() and Path(drives.DEBUGFS).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("e2fsprogs must be installed in CI (make system-deps)")
        pytest.skip("e2fsprogs is not installed (make system-deps)")
    root = tmp_path / "root"
    (root / "opt/nova").mkdir(parents=True)
    drive = drives.rootfs_drive("debian:test", root, tmp_path / "cache")
    listing = subprocess.run(
        [drives.DEBUGFS, "-R", "ls /opt/nova/nova/agent/__pycache__", str(drive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"agent.{sys.implementation.cache_tag}.pyc" in listing
    assert f"protocol.{sys.implementation.cache_tag}.pyc" in listing
