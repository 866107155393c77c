"""Cgroup layout detection and limit files, on fake cgroup trees (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.linux import cgroups
from nova.sandbox.linux.cgroups import CgroupLayout, CgroupLimits, InstanceCgroup


def _mountinfo(root: Path, *, v1: bool, v2_controllers: str = "") -> str:
    lines = [f"31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755"]
    if v1:
        for n, controllers in enumerate(("cpu,cpuacct", "memory", "pids", "name=systemd")):
            mount = root / controllers.replace("name=", "")
            lines.append(
                f"{40 + n} 31 0:{30 + n} / {mount} rw,relatime - cgroup cgroup rw,{controllers}"
            )
    unified = root / "unified" if v1 else root
    unified.mkdir(parents=True, exist_ok=True)
    (unified / "cgroup.controllers").write_text(v2_controllers + "\n")
    lines.append(f"50 31 0:40 / {unified} rw,relatime - cgroup2 cgroup2 rw")
    return "\n".join(lines) + "\n"


HYBRID_PROC = "4:memory:/process_api/abc\n3:pids:/\n2:cpu,cpuacct:/svc\n1:name=systemd:/\n0::/\n"


@pytest.fixture
def creating_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real cgroupfs creates control files on mkdir; a plain directory does not."""

    def write(path: Path, value: str) -> None:
        path.write_text(value)

    monkeypatch.setattr(cgroups, "_write", write)


def test_hybrid_layout_uses_v1_controllers_under_the_daemons_own_groups(tmp_path: Path) -> None:
    layout = CgroupLayout.detect(_mountinfo(tmp_path, v1=True), HYBRID_PROC)

    assert layout.version == 1
    assert layout.bases == {
        "memory": tmp_path / "memory/process_api/abc/nova",
        "pids": tmp_path / "pids/nova",
        "cpu": tmp_path / "cpu,cpuacct/svc/nova",
    }


def test_v2_layout_needs_memory_and_pids(tmp_path: Path) -> None:
    info = _mountinfo(tmp_path, v1=False, v2_controllers="cpuset cpu io memory pids")
    layout = CgroupLayout.detect(info, "0::/system.slice/nova.service\n")

    assert layout.version == 2
    assert set(layout.bases) == {"memory", "pids", "cpu"}
    assert layout.bases["memory"] == tmp_path / "system.slice/nova.service/nova"

    with pytest.raises(SandboxError, match="pids"):
        CgroupLayout.detect(_mountinfo(tmp_path, v1=False, v2_controllers="memory"), "0::/\n")


def test_no_cgroups_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="memory and pids"):
        CgroupLayout.detect("31 23 0:28 / /sys rw - sysfs sysfs rw\n", "0::/\n")


def test_mount_of_a_subtree_is_joined_relative_to_its_root(tmp_path: Path) -> None:
    info = f"50 31 0:40 /docker/x {tmp_path} rw - cgroup2 cgroup2 rw\n"
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")

    layout = CgroupLayout.detect(info, "0::/docker/x/inner\n")

    assert layout.bases["memory"] == tmp_path / "inner/nova"


def test_cpu_is_proportional_to_memory_with_a_floor_and_a_ceiling() -> None:
    assert CgroupLimits.for_memory(1769, pids_max=64, cpus=2).cpu_quota_us == 100_000
    assert CgroupLimits.for_memory(128, pids_max=64, cpus=2).cpu_quota_us == 10_000  # 10 % floor
    assert CgroupLimits.for_memory(3538, pids_max=64, cpus=2).cpu_quota_us == 200_000
    assert CgroupLimits.for_memory(10240, pids_max=64, cpus=2).cpu_quota_us == 200_000  # 2 CPUs
    assert CgroupLimits.for_memory(128, pids_max=64).memory_bytes == 128 << 20


@pytest.mark.usefixtures("creating_writes")
def test_v1_instance_gets_one_group_per_controller_with_its_limits(tmp_path: Path) -> None:
    layout = CgroupLayout.detect(_mountinfo(tmp_path, v1=True), HYBRID_PROC)
    layout.prepare()

    group = layout.create("fn-1", CgroupLimits(256 << 20, 64, 14_472))

    memory = tmp_path / "memory/process_api/abc/nova/fn-1"
    assert (memory / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (tmp_path / "pids/nova/fn-1/pids.max").read_text() == "64"
    cpu = tmp_path / "cpu,cpuacct/svc/nova/fn-1"
    assert (cpu / "cpu.shares").read_text() == "148"
    assert not (cpu / "cpu.cfs_quota_us").exists()  # init runs unthrottled
    group.limit_cpu(14_472)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "14472"
    assert len(group.procs_files) == 3


@pytest.mark.usefixtures("creating_writes")
def test_v2_instance_gets_one_group_and_delegates_controllers(tmp_path: Path) -> None:
    info = _mountinfo(tmp_path, v1=False, v2_controllers="cpu memory pids")
    layout = CgroupLayout.detect(info, "0::/svc\n")
    layout.prepare()

    group = layout.create("fn-1", CgroupLimits(128 << 20, 32, 10_000))

    base = tmp_path / "svc"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (base / "nova/cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (base / "nova/fn-1/memory.max").read_text() == str(128 << 20)
    assert (base / "nova/fn-1/cpu.weight").read_text() == "10"
    group.limit_cpu(10_000)
    assert (base / "nova/fn-1/cpu.max").read_text() == "10000 100000"
    assert group.procs_files == (base / "nova/fn-1/cgroup.procs",)


def test_oom_kill_counters_are_read_from_v1_and_v2_files(tmp_path: Path) -> None:
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")

    assert InstanceCgroup(1, {"memory": tmp_path, "pids": tmp_path}).oom_kills() == 3
    assert InstanceCgroup(2, {"memory": tmp_path, "pids": tmp_path}).oom_kills() == 2
    assert InstanceCgroup(2, {"memory": tmp_path / "gone", "pids": tmp_path}).oom_kills() == 0


def test_remove_tolerates_groups_that_are_already_gone(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    group = InstanceCgroup(1, {"memory": tmp_path / "a", "pids": tmp_path / "b"})

    group.remove()

    assert not (tmp_path / "a").exists()


def test_pids_lists_members_and_kill_all_skips_processes_that_left(tmp_path: Path) -> None:
    (tmp_path / "cgroup.procs").write_text(f"{os.getpid()}\n")
    group = InstanceCgroup(1, {"memory": tmp_path, "pids": tmp_path})

    assert group.pids() == [os.getpid()]
    (tmp_path / "cgroup.procs").write_text("")
    group.kill_all()  # nothing left: returns at once, and never signals this test
