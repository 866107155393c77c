"""The gVisor backend's host side: the runsc chain, the wrapper, the base root and the
probe's reasons (no runsc is started here; tests/escape runs real sandboxes)."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.container import bwrap as bw
from nova.sandbox.gvisor import probe as gvisor_probe
from nova.sandbox.gvisor import setup as gvisor_setup
from nova.sandbox.gvisor.setup import (
    GVISOR_WRAPPER,
    GvisorHost,
    GvisorOptions,
    base_root,
    check_interpreter,
    wrapper_argv,
)

LAYOUT = bw.RootLayout((("usr/bin", "/bin"), ("usr/lib", "/lib")), (), ("/etc/ld.so.cache",))
HOST = GvisorHost(
    runsc="/usr/bin/runsc",
    setpriv="/usr/bin/setpriv",
    unshare="/usr/bin/unshare",
    layout=LAYOUT,
    visible_roots=("/usr", "/bin", "/lib"),
    agent_init=Path("/a/nova/__init__.py"),
    agent_dir=Path("/a/nova/agent"),
    base_root=Path("/tmp/nova-gvisor-0/root-x"),
    image_id="host:abc",
)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile (the base root) at a directory of this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_runsc_runs_in_a_pid_namespace_that_dies_with_the_daemon() -> None:
    argv = HOST.runsc_argv("ptrace", Path("/w/runsc"), Path("/w/bundle"), "nova-fn-1")

    assert argv[:4] == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
    unshare = argv.index("/usr/bin/unshare")
    runsc = argv.index("/usr/bin/runsc")
    assert set(argv[unshare + 1 : runsc]) == {"--pid", "--fork", "--kill-child", "--mount-proc"}
    assert argv[-3:] == ["run", "--bundle=/w/bundle", "nova-fn-1"]


def test_runsc_flags_isolate_the_network_and_apply_the_filter_inside() -> None:
    argv = HOST.runsc_argv("ptrace", Path("/w/runsc"), Path("/w/bundle"), "nova-fn-1")
    flags = argv[argv.index("/usr/bin/runsc") + 1 : argv.index("run")]

    assert "--platform=ptrace" in flags
    assert "--network=none" in flags
    assert "--oci-seccomp" in flags  # without it runsc ignores linux.seccomp
    assert "--ignore-cgroups" in flags  # the wrapper joined them already
    assert "--root=/w/runsc" in flags  # per-instance state, removed with the work dir
    assert not any(flag.startswith(("--rootless", "--net-raw", "--host-uds")) for flag in flags)


def test_wrapper_joins_every_group_before_exec_and_keeps_stdin(tmp_path: Path) -> None:
    procs = [tmp_path / "memory.procs", tmp_path / "pids.procs"]
    for path in procs:
        path.write_text("")
    script = "echo $$; readlink /proc/self/fd/0; cat /proc/self/oom_score_adj"
    argv = wrapper_argv([str(p) for p in procs], ["/bin/sh", "-c", script])
    with open(tmp_path / "stdin", "w") as stdin:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=True)

    pid, fd0, oom_score_adj = done.stdout.split()
    assert procs[0].read_text().strip() == procs[1].read_text().strip() == pid  # exec, same pid
    assert fd0 == str(tmp_path / "stdin")  # runsc hands its stdin to the agent
    assert oom_score_adj == "500"


def test_wrapper_stops_before_runsc_if_a_cgroup_cannot_be_joined(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = ["/bin/sh", "-c", GVISOR_WRAPPER, "w", "1", str(tmp_path / "no/procs")]
    argv += ["/bin/sh", "-c", f"touch {marker}"]

    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)

    assert done.returncode != 0
    assert not marker.exists()


def test_base_root_holds_mount_points_and_generated_etc_whatever_the_umask(
    private_tmp: Path,
) -> None:
    old_umask = os.umask(0o077)
    try:
        root = base_root(LAYOUT)
    finally:
        os.umask(old_umask)

    assert root.parent == private_tmp / f"nova-gvisor-{os.geteuid()}"
    assert stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    assert os.readlink(root / "bin") == "usr/bin"
    assert (root / "etc/passwd").read_bytes() == bw.GENERATED_ETC["/etc/passwd"]
    assert not (root / "etc/shadow").exists()
    assert (root / "opt/nova/nova/__init__.py").is_file()
    for directory in ("usr", "code", "tmp", "proc", "dev", "sys", "opt/nova/nova/agent"):
        assert (root / directory).is_dir(), directory
    assert (root / "etc/ld.so.cache").is_file()
    for entry in (root / "opt", root / "etc", root / "etc/passwd"):
        assert stat.S_IMODE(entry.stat().st_mode) in (0o755, 0o644), entry
    assert base_root(LAYOUT) == root  # built once, then reused


def test_base_root_refuses_a_parent_others_could_write(private_tmp: Path) -> None:
    parent = private_tmp / f"nova-gvisor-{os.geteuid()}"
    parent.mkdir(mode=0o777)
    parent.chmod(0o777)
    with pytest.raises(SandboxError, match="not a private directory"):
        base_root(LAYOUT)


def test_interpreter_must_be_visible_inside() -> None:
    check_interpreter("/usr/bin/python3", HOST)
    with pytest.raises(SandboxError, match="outside what a gVisor instance sees"):
        check_interpreter("/root/.pyenv/versions/3.11.7/bin/python3", HOST)
    with pytest.raises(SandboxError, match="outside"):
        check_interpreter("python3", HOST)


def test_probe_says_how_to_install_runsc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gvisor_probe.shutil, "which", lambda _name: None)
    info = gvisor_probe.probe.__wrapped__(GvisorOptions())
    assert not info.available
    assert info.reason == "runsc not installed: apt-get install runsc"
    assert info.name == "gvisor"
    assert info.supports_reload is True  # a capability of the backend, unavailable or not


def test_probe_refuses_a_daemon_that_is_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gvisor_probe.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(gvisor_setup.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(gvisor_setup.os, "geteuid", lambda: 1000)
    info = gvisor_probe.probe.__wrapped__(GvisorOptions())
    assert not info.available
    assert "needs the daemon to run as root" in info.reason
