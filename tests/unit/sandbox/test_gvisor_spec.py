"""The OCI spec of a gVisor instance: identity, mounts, rlimits and the seccomp section."""

from __future__ import annotations

from typing import Any

from nova.sandbox.container import bwrap as bw
from nova.sandbox.gvisor.spec import SpecLimits, SpecMounts, oci_spec, seccomp_section
from nova.sandbox.linux.seccomp import CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS

LAYOUT = bw.RootLayout((("usr/bin", "/bin"),), ("/lib",), ("/etc/ld.so.cache", "/etc/ssl/certs"))
MOUNTS = SpecMounts("/data/code/fn/abc", "/src/nova/__init__.py", "/src/nova/agent")
LIMITS = SpecLimits(tmp_bytes=64 << 20, processes=64, open_files=1024)


def _spec() -> dict[str, Any]:
    return oci_spec(
        "/tmp/nova-gvisor-0/root-x",
        LAYOUT,
        MOUNTS,
        LIMITS,
        env={"PYTHONPATH": "/opt/nova"},
        command=["/usr/bin/python3", "-S", "-m", "nova.agent", "--fd", "0"],
    )


def _mounts() -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in _spec()["mounts"]}


def test_the_function_is_nobody_without_capabilities() -> None:
    process = _spec()["process"]
    assert process["user"] == {"uid": 65534, "gid": 65534, "additionalGids": []}
    kinds = ("bounding", "effective", "inheritable", "permitted", "ambient")
    assert process["capabilities"] == {kind: [] for kind in kinds}
    assert process["noNewPrivileges"] is True
    assert process["terminal"] is False
    assert process["env"] == ["PYTHONPATH=/opt/nova"]
    assert process["args"][-2:] == ["--fd", "0"]  # runsc's stdin is the agent socket


def test_root_is_the_shared_base_read_only_and_namespaces_are_new() -> None:
    spec = _spec()
    assert spec["root"] == {"path": "/tmp/nova-gvisor-0/root-x", "readonly": True}
    assert spec["hostname"] == "nova"
    kinds = {n["type"] for n in spec["linux"]["namespaces"]}
    assert kinds == {"pid", "network", "ipc", "uts", "mount"}
    assert "resources" not in spec["linux"]  # cgroups are joined by the wrapper, not by runsc


def test_every_bind_is_read_only_and_nothing_else_of_the_host_is_mounted() -> None:
    mounts = _mounts()
    binds = {d: m["source"] for d, m in mounts.items() if m["type"] == "bind"}
    assert binds == {
        "/usr": "/usr",
        "/lib": "/lib",
        "/etc/ld.so.cache": "/etc/ld.so.cache",
        "/etc/ssl/certs": "/etc/ssl/certs",
        "/opt/nova/nova/__init__.py": "/src/nova/__init__.py",
        "/opt/nova/nova/agent": "/src/nova/agent",
        "/code": "/data/code/fn/abc",
    }
    for destination in binds:
        assert {"ro", "nosuid", "nodev"} <= set(mounts[destination]["options"]), destination
    assert not any(s.startswith(("/root", "/home", "/work", "/var")) for s in binds.values())


def test_only_the_code_mount_is_revalidated_so_a_hot_reload_shows() -> None:
    # runsc runs with --file-access-mounts=exclusive; this hint makes the code mount alone
    # "shared" (FileAccessShared): its files change under a running sandbox.
    assert _spec()["annotations"] == {
        "dev.gvisor.spec.mount.code.source": "/data/code/fn/abc",
        "dev.gvisor.spec.mount.code.type": "bind",
        "dev.gvisor.spec.mount.code.share": "shared",
    }


def test_tmp_and_shm_are_sized_tmpfs_and_sys_is_hidden() -> None:
    mounts = _mounts()
    assert mounts["/tmp"]["type"] == "tmpfs"
    assert f"size={64 << 20}" in mounts["/tmp"]["options"]
    assert "mode=1777" in mounts["/tmp"]["options"]
    assert f"size={bw.SHM_MAX_BYTES}" in mounts["/dev/shm"]["options"]
    # runsc always mounts its synthetic sysfs unless the spec mounts something at /sys.
    assert mounts["/sys"]["type"] == "tmpfs"
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/proc"]["type"] == "proc"


def test_rlimits_bind_processes_files_and_file_size_hard_and_soft() -> None:
    rlimits = {r["type"]: (r["soft"], r["hard"]) for r in _spec()["process"]["rlimits"]}
    assert rlimits == {
        "RLIMIT_NPROC": (64, 64),
        "RLIMIT_NOFILE": (1024, 1024),
        "RLIMIT_FSIZE": (64 << 20, 64 << 20),
        "RLIMIT_CORE": (0, 0),
    }


def test_seccomp_refuses_the_deny_list_with_eperm_but_leaves_clone3_to_gvisor() -> None:
    section = seccomp_section()
    assert section["defaultAction"] == "SCMP_ACT_ALLOW"
    refused = {name for rule in section["syscalls"] if "args" not in rule for name in rule["names"]}
    assert set(DENIED_SYSCALLS) <= refused
    assert {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= refused
    # EPERM from clone3 would stop glibc's fallback to clone: every new thread would fail.
    assert "clone3" not in refused
    assert {rule["errnoRet"] for rule in section["syscalls"]} == {1}


def test_seccomp_refuses_clone_with_any_namespace_flag() -> None:
    rules = [rule for rule in seccomp_section()["syscalls"] if "args" in rule]
    assert all(rule["names"] == ["clone"] for rule in rules)
    flags = {rule["args"][0]["value"] for rule in rules}
    assert flags == set(CLONE_NAMESPACE_FLAGS)
    for rule in rules:
        (arg,) = rule["args"]
        assert arg["index"] == 0
        assert arg["op"] == "SCMP_CMP_MASKED_EQ"
        assert arg["value"] == arg["valueTwo"]
