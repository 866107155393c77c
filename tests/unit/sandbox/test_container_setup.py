"""The container command line, the wrapper script, host checks and the seccomp program."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.backend import tmp_size_bytes
from nova.sandbox.container.setup import (
    WRAPPER_SCRIPT,
    HostPaths,
    check_interpreter,
    check_reachable,
    wrapper_argv,
)
from nova.sandbox.linux.seccomp import deny_filter

LAYOUT = bw.RootLayout((("usr/bin", "/bin"), ("usr/lib", "/lib")), (), ("/etc/ld.so.cache",))
HOST = HostPaths(
    "/usr/bin/bwrap",
    LAYOUT,
    ("/usr", "/bin", "/lib"),
    65534,
    Path("/a/nova/__init__.py"),
    Path("/a/nova/agent"),
)


def _argv() -> list[str]:
    mounts = bw.InstanceMounts(
        "/data/code/fn/abc", "/src/nova/__init__.py", "/src/nova/agent", 11, {"/etc/passwd": 12}
    )
    return bw.bwrap_argv(
        "/usr/bin/bwrap",
        LAYOUT,
        mounts,
        tmp_bytes=64 << 20,
        env={"PYTHONPATH": "/opt/nova"},
        command=["/usr/bin/python3", "-S"],
    )


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_argv_isolates_every_namespace_and_drops_privileges() -> None:
    argv = _argv()
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in argv
    assert _pairs(argv, "--uid") == ["65534"]
    assert _pairs(argv, "--cap-drop") == ["ALL"]
    assert _pairs(argv, "--seccomp") == ["11"]
    assert argv[argv.index("--") + 1 :] == ["/usr/bin/python3", "-S"]


def test_argv_shows_only_usr_the_agent_the_code_and_a_sized_tmp() -> None:
    argv = _argv()
    binds = _pairs(argv, "--ro-bind")
    assert binds == ["/usr", "/src/nova/__init__.py", "/src/nova/agent", "/data/code/fn/abc"]
    assert argv[argv.index("/data/code/fn/abc") + 1] == "/code"
    assert _pairs(argv, "--bind") == []  # nothing of the host is writable
    assert _pairs(argv, "--size") == [str(16 << 20), str(64 << 20)]
    assert _pairs(argv, "--tmpfs") == ["/dev/shm", "/tmp"]
    assert _pairs(argv, "--ro-bind-data") == ["12"]
    assert _pairs(argv, "--remount-ro") == ["/dev", "/"]
    assert not any(a.startswith(("/root", "/home", "/work")) for a in argv)


def test_generated_etc_has_no_shadow_and_no_host_accounts() -> None:
    assert "/etc/shadow" not in bw.GENERATED_ETC
    assert "/etc/shadow" not in bw.HOST_ETC_FILES
    assert bw.GENERATED_ETC["/etc/passwd"].count(b"\n") == 2


def test_tmp_is_capped_at_half_the_memory() -> None:
    assert tmp_size_bytes(64, 128) == 64 << 20
    assert tmp_size_bytes(512, 128) == 64 << 20
    assert tmp_size_bytes(64, 1) == 1 << 20


def test_interpreter_must_be_visible_inside() -> None:
    check_interpreter("/usr/bin/python3", HOST)
    with pytest.raises(SandboxError, match="outside what a container instance sees"):
        check_interpreter("/root/.pyenv/versions/3.11.7/bin/python3", HOST)
    with pytest.raises(SandboxError, match="outside"):
        check_interpreter("python3", HOST)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory uid 65534 can reach (pytest's tmp_path sits below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="nova-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_reachability_names_the_directory_in_the_way(open_tmp: Path) -> None:
    hidden = open_tmp / "private"
    (hidden / "code").mkdir(parents=True)
    hidden.chmod(0o700)
    with pytest.raises(SandboxError, match=f"{hidden} is not searchable"):
        check_reachable(hidden / "code", 65534, directory=True)
    hidden.chmod(0o711)
    check_reachable(hidden / "code", 65534, directory=True)
    check_reachable(hidden / "code", None, directory=True)  # not dropping privileges: no check


def test_wrapper_joins_groups_sets_limits_and_moves_stdin_to_fd_3(tmp_path: Path) -> None:
    procs = [tmp_path / "memory.procs", tmp_path / "pids.procs"]
    for path in procs:
        path.write_text("")
    host = HostPaths(
        "/usr/bin/bwrap",
        LAYOUT,
        ("/usr",),
        None,
        Path("/a/nova/__init__.py"),
        Path("/a/nova/agent"),
    )
    script = "cat /proc/self/limits; ls -l /proc/self/fd/3; cat /proc/self/oom_score_adj"
    argv = wrapper_argv(
        host,
        open_files=256,
        fsize_bytes=1 << 20,
        procs_files=[str(p) for p in procs],
        sandbox=["/bin/sh", "-c", script],
    )
    with open(tmp_path / "stdin", "w") as stdin:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=True)

    assert procs[0].read_text().strip() == procs[1].read_text().strip()
    assert int(procs[0].read_text()) > 0
    limits = {line[:26].strip(): line[26:].split() for line in done.stdout.splitlines()[1:17]}
    assert limits["Max open files"][:2] == ["256", "256"]
    assert limits["Max file size"][:2] == [str(1 << 20), str(1 << 20)]
    assert limits["Max core file size"][:2] == ["0", "0"]
    assert str(tmp_path / "stdin") in done.stdout
    assert done.stdout.splitlines()[-1] == "500"


def test_wrapper_stops_before_the_sandbox_if_a_cgroup_cannot_be_joined(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = [
        "/bin/sh",
        "-c",
        WRAPPER_SCRIPT,
        "w",
        "64",
        "2048",
        "1",
        str(tmp_path / "no/procs"),
        "/bin/sh",
        "-c",
        f"touch {marker}",
    ]

    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)

    assert done.returncode != 0
    assert not marker.exists()


def test_seccomp_program_checks_the_architecture_first() -> None:
    program = deny_filter()
    assert len(program) % 8 == 0
    assert 16 < len(program) // 8 < 4096
    code, _, _, k = struct.unpack_from("=HBBI", program, 0)
    assert (code, k) == (0x20, 4)  # ld [4]: seccomp_data.arch
    if os.uname().machine == "x86_64":
        _, _, _, arch = struct.unpack_from("=HBBI", program, 8)
        assert arch == 0xC000003E  # AUDIT_ARCH_X86_64; anything else is killed


def test_agent_package_is_bound_in_place_when_reachable() -> None:
    from nova.sandbox.agent_launch import AGENT_PACKAGE_DIR
    from nova.sandbox.container.setup import agent_package

    init_file, agent_dir = agent_package(None)  # no privilege drop: the daemon's own files
    assert agent_dir == AGENT_PACKAGE_DIR
    assert init_file.name == "__init__.py"


def test_unreachable_agent_package_is_staged_world_readable() -> None:
    import stat

    from nova.sandbox.agent_launch import AGENT_PACKAGE_DIR, PACKAGE_PARENT
    from nova.sandbox.container.setup import _stage_agent_package

    staged = _stage_agent_package(PACKAGE_PARENT / "nova" / "__init__.py", AGENT_PACKAGE_DIR)
    assert staged == _stage_agent_package(
        PACKAGE_PARENT / "nova" / "__init__.py", AGENT_PACKAGE_DIR
    )
    protocol = staged / "nova" / "agent" / "protocol.py"
    assert protocol.read_bytes() == (AGENT_PACKAGE_DIR / "protocol.py").read_bytes()
    assert stat.S_IMODE(protocol.stat().st_mode) == 0o644
    assert stat.S_IMODE((staged / "nova" / "agent").stat().st_mode) == 0o755
    assert not list(staged.rglob("__pycache__"))
