"""The container backend's escape suite, inside a microVM: its payloads (``PROBES``) run as
the function in one VM (a TCG boot takes seconds), and each attempt must stay inside it.

What differs from a container, on purpose: the function runs as root *inside its own kernel*
(the VM is the boundary, not uid/seccomp), so the checks are what the guest can reach, not
which syscalls it may make.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from nova.sandbox.microvm.backend import MicrovmBackend
from tests.escape.conftest import AgentSession
from tests.escape.test_container_escape import PROBES, REPO, _host_can_fork
from tests.microvm.test_microvm_backend import start

# The session fixtures build runtime images and boot QEMU under TCG: minutes on a cold host.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

# What the guest kernel says it is (the host's kernel is not a cloud kernel here).
KERNEL = """

def kernel(event):
    return open("/proc/version").read()
"""


@pytest.fixture(scope="module")
def vm_workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nova-vm-escape-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def vm(vm_backend: MicrovmBackend, vm_workspace: Path) -> AsyncIterator[AgentSession]:
    session = await start(vm_backend, vm_workspace, {"handler.py": PROBES + KERNEL})
    yield session
    await session.instance.kill()


async def test_the_function_runs_on_the_guest_kernel(vm: AgentSession) -> None:
    assert vm.instance.pid is not None
    assert "cloud-amd64" in await vm.output({"probe": "kernel"})


async def test_host_files_and_directories_are_invisible(
    vm: AgentSession, vm_workspace: Path
) -> None:
    marker = Path("/tmp") / f"nova-host-marker-{uuid.uuid4().hex[:8]}"
    marker.write_text("host only")
    try:
        hidden = [str(marker), "/work", REPO, str(vm_workspace)]
        assert await vm.output({"probe": "exists", "paths": hidden}) == dict.fromkeys(hidden, False)
        assert await vm.output({"probe": "read", "path": str(marker)}) == "ENOENT"
    finally:
        marker.unlink()
    assert await vm.output({"probe": "read", "path": "/code/handler.py"}) == "ok"


async def test_only_tmp_is_writable(vm: AgentSession) -> None:
    for path in ("/code/x", "/x", "/usr/x", "/opt/nova/x"):
        assert await vm.output({"probe": "write", "path": path}) == "EROFS", path
    assert await vm.output({"probe": "write", "path": "/tmp/x"}) == "ok"


async def test_no_route_to_the_daemon_s_port(vm: AgentSession) -> None:
    """The daemon listens on the host; the guest has no network device to reach it by."""
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    try:
        assert await vm.output({"probe": "interfaces"}) == ["lo"]
        to_loopback = await vm.output({"probe": "connect", "host": "127.0.0.1", "port": port})
        assert to_loopback == "ECONNREFUSED"  # the guest's own loopback, not the host's
        for host in ("10.0.2.2", "1.1.1.1"):  # QEMU's usual host alias; the internet
            result = await vm.output({"probe": "connect", "host": host, "port": port})
            assert result in ("ENETUNREACH", "EHOSTUNREACH"), (host, result)
    finally:
        listener.close()


async def test_fork_bomb_fails_inside_and_the_next_exec_works(vm: AgentSession) -> None:
    result = await vm.output({"probe": "fork_bomb"}, timeout_s=90)

    assert result["failure"] == "EAGAIN"
    assert result["forked"] < 64
    assert _host_can_fork()
    assert await vm.output({"probe": "hello"}) == "hello"


async def test_memory_bomb_fails_the_invocation_only(vm: AgentSession) -> None:
    reply = await vm.exec({"probe": "allocate", "mb": 2048}, timeout_s=90)

    assert reply["error"] is not None, reply
    assert vm.instance.alive()
    assert await vm.output({"probe": "hello"}, timeout_s=60) == "hello"


async def test_tmp_is_size_limited(vm: AgentSession) -> None:
    result = await vm.output({"probe": "fill_tmp", "mb": 1024}, timeout_s=60)

    assert result["error"] == "ENOSPC", result
    assert result["written_mb"] <= 64  # half of memory_mb
    assert await vm.output({"probe": "hello"}) == "hello"


async def test_kill_removes_the_vm_and_its_files(vm: AgentSession, vm_workspace: Path) -> None:
    await vm.instance.kill()

    assert not vm.instance.alive()
    assert not (vm_workspace / "instances" / vm.instance.instance_id).exists()
