"""The escape suite's harness: real instances of every isolating backend, driven through the
real agent.

A test writes a handler, starts an instance with :class:`Sandbox.start`, and calls
:meth:`AgentSession.exec`; every assertion about isolation is made from *inside* a function.
The ``sandbox`` fixture is parametrised over :data:`BACKENDS`, so each escape test runs on the
container backend (on three start paths: a new sandbox, a fork of the function's template,
and a sandbox claimed from a pool of pre-started runtimes) and on gVisor. A backend this host cannot run is skipped with the reason,
except under CI=true, where it is a failure: CI must not go green by skipping it.

Instances are slow to start under gVisor (~0.4 s), so read-only probes share one instance per
backend (``shared_sandbox``); tests that break, fill or kill an instance start their own. Both
kinds run on the session's event loop (``loop_scope="session"``): the shared instance outlives
any one test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from nova.agent.protocol import HEADER, PROTOCOL_VERSION, MsgType, decode_body, encode_message
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.container.backend import ContainerBackend, ContainerOptions
from nova.sandbox.container.forked import ForkedInstance
from nova.sandbox.container.prestart import PrestartKey
from nova.sandbox.container.snapshot_policy import SnapshotPolicy
from nova.sandbox.gvisor.backend import GvisorBackend
from nova.sandbox.linux.cgroups import CgroupLimits

MAX_MESSAGE_BYTES = 1 << 20
INTERPRETERS = {"python": "/usr/bin/python3", "node": "/usr/bin/node"}
# container-snapshot: the container backend, every instance of `Sandbox.start` forked from a
# function template (its snapshot) rather than started the slow way. container-prestarted:
# every instance of `Sandbox.start` claimed from a pool of pre-started runtimes (its sandbox
# started ahead, a Node runtime waiting in it, which the Python Init replaces).
BACKENDS = ("container", "container-snapshot", "container-prestarted", "gvisor")


@dataclass(frozen=True, slots=True)
class Traits:
    """Where a backend's guarantees are the same in effect but differ in form."""

    # gVisor: the function's memory lives in the Sentry, so the host OOM killer ends the whole
    # instance (the invocation still fails as an OOM and the next one gets a new instance).
    oom_ends_instance: bool
    # gVisor: runsc always mounts /sys, so an empty read-only tmpfs hides its sysfs instead.
    empty_sys_mount: bool
    latency_samples: int  # start -> Init measurements (gVisor starts ~10x slower)
    has_network: bool  # network: true works (gVisor refuses it so far)


TRAITS = {
    "container": Traits(
        oom_ends_instance=False, empty_sys_mount=False, latency_samples=20, has_network=True
    ),
    "container-snapshot": Traits(
        oom_ends_instance=False, empty_sys_mount=False, latency_samples=20, has_network=True
    ),
    "container-prestarted": Traits(
        oom_ends_instance=False, empty_sys_mount=False, latency_samples=20, has_network=True
    ),
    "gvisor": Traits(
        oom_ends_instance=True, empty_sys_mount=True, latency_samples=10, has_network=False
    ),
}


def probe(name: str) -> BackendInfo:
    return GvisorBackend.probe() if name == "gvisor" else ContainerBackend.probe()


def make_backend(name: str) -> ContainerBackend | GvisorBackend:
    if name == "container":
        return ContainerBackend(MAX_MESSAGE_BYTES)
    if name == "container-snapshot":
        return ContainerBackend(MAX_MESSAGE_BYTES, snapshots=SnapshotPolicy())
    if name == "container-prestarted":
        return ContainerBackend(MAX_MESSAGE_BYTES, snapshots=SnapshotPolicy(), prestart=1)
    return GvisorBackend(MAX_MESSAGE_BYTES)


def init_message(
    code_dir: str,
    tmp_dir: str,
    memory_mb: int,
    timeout_s: float,
    *,
    runtime: str = "python",
    handler: str = "handler.handler",
) -> dict[str, Any]:
    return {
        "type": MsgType.INIT,
        "protocol": PROTOCOL_VERSION,
        "runtime": runtime,
        "handler": handler,
        "mode": "persistent",
        "code_dir": code_dir,
        "tmp_dir": tmp_dir,
        "interpreter": INTERPRETERS[runtime],
        "env": {},
        "function_name": "escape",
        "function_version": "1",
        "memory_mb": memory_mb,
        "timeout_s": timeout_s,
        "concurrency": 1,
    }


class AgentSession:
    """One started instance and a frame-level client of its agent."""

    def __init__(self, instance: SandboxInstance) -> None:
        self.instance = instance
        self._next_id = 0

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self._next_id += 1
        message = {**message, "id": self._next_id}
        loop = asyncio.get_running_loop()
        sock = self.instance.sock
        async with asyncio.timeout(timeout_s):
            await loop.sock_sendall(sock, encode_message(message, MAX_MESSAGE_BYTES))
            while True:
                (length,) = HEADER.unpack(await self._read(HEADER.size))
                reply = decode_body(await self._read(length))
                if reply.get("id") == self._next_id:
                    return reply

    async def _read(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        data = b""
        while len(data) < size:
            chunk = await loop.sock_recv(self.instance.sock, size - len(data))
            if not chunk:
                raise ConnectionError(f"agent closed the connection ({self.instance.instance_id})")
            data += chunk
        return data

    async def init(
        self,
        memory_mb: int,
        timeout_s: float,
        *,
        runtime: str = "python",
        handler: str = "handler.handler",
    ) -> dict[str, Any]:
        instance = self.instance
        message = init_message(
            instance.code_dir,
            instance.tmp_dir,
            memory_mb,
            timeout_s,
            runtime=runtime,
            handler=handler,
        )
        return await self.request(message, timeout_s=15)

    async def exec(self, event: Any, timeout_s: float = 20) -> dict[str, Any]:
        deadline_ms = (time.time() + timeout_s) * 1000  # epoch milliseconds
        message = {"type": MsgType.EXEC, "event": event, "deadline_ms": deadline_ms}
        return await self.request(message, timeout_s=timeout_s + 10)

    async def output(self, event: Any, timeout_s: float = 20) -> Any:
        """Run the handler and return its output, failing the test on any error."""
        reply = await self.exec(event, timeout_s)
        assert reply.get("ok"), reply
        assert reply.get("error") is None, reply
        return reply["output"]


class Sandbox:
    """Starts instances of handler code on one backend."""

    def __init__(
        self, backend: ContainerBackend | GvisorBackend, workspace: Path, kind: str | None = None
    ) -> None:
        self.backend = backend
        self.name = backend.info.name
        self.kind = kind or self.name  # one of BACKENDS
        self.traits = TRAITS[self.kind]
        self.workspace = workspace  # stands in for the daemon's data dir
        self._sessions: list[AgentSession] = []

    def write_code(self, source: str) -> Path:
        code_dir = self.workspace / "code" / uuid.uuid4().hex[:8]
        code_dir.mkdir(parents=True)
        (code_dir / "handler.py").write_text(textwrap.dedent(source))
        return code_dir

    async def start(
        self, source: str, *, memory_mb: int = 128, timeout_s: float = 20
    ) -> AgentSession:
        if self.kind == "container-snapshot":
            return await self.start_forked(self.write_code(source), memory_mb, timeout_s)
        if self.kind == "container-prestarted":
            session = await self.start_prestarted(self.write_code(source), memory_mb, timeout_s)
        else:
            session = await self.start_raw(self.write_code(source), memory_mb=memory_mb)
        reply = await session.init(memory_mb, timeout_s)
        assert reply.get("ok"), reply
        return session

    async def start_raw(
        self, code_dir: Path, *, memory_mb: int = 128, runtime: str = "python"
    ) -> AgentSession:
        instance_id = f"escape-{uuid.uuid4().hex[:10]}"
        spec = InstanceSpec(
            instance_id=instance_id,
            function_name="escape",
            runtime=runtime,
            interpreter=INTERPRETERS[runtime],
            code_dir=code_dir,
            work_dir=self.workspace / "instances" / instance_id,
            memory_mb=memory_mb,
            timeout_s=20,
            network=False,
        )
        session = AgentSession(await self.backend.start(spec))
        self._sessions.append(session)
        return session

    async def start_forked(
        self, code_dir: Path, memory_mb: int = 128, timeout_s: float = 20
    ) -> AgentSession:
        """An instance forked from the code's template, built first (Init came with the fork)."""
        assert isinstance(self.backend, ContainerBackend)
        assert self.backend.function_snapshots is not None
        spec = self.snapshot_spec(code_dir, memory_mb, timeout_s)
        await self.backend.function_snapshots.create(spec)
        instance = await self.backend.start(spec)
        assert isinstance(instance, ForkedInstance), "the start did not fork the template"
        session = AgentSession(instance)
        self._sessions.append(session)
        return session

    async def start_prestarted(
        self, code_dir: Path, memory_mb: int, timeout_s: float
    ) -> AgentSession:
        """An instance claimed from the pool of pre-started Node runtimes of its memory size
        (filled by the first claim, a miss), with the code's limits; Init still to come."""
        assert isinstance(self.backend, ContainerBackend)
        manager = self.backend.function_snapshots
        assert manager is not None
        assert manager.prestarted is not None
        spec = self.snapshot_spec(code_dir, memory_mb, timeout_s)
        image_id = self.backend.host_image_id or ""
        key = PrestartKey("node", INTERPRETERS["node"], image_id, memory_mb)
        limits = CgroupLimits.for_memory(memory_mb, pids_max=ContainerOptions().pids_for(spec))
        for _ in range(600):
            claimed = await manager.claim_prestarted(spec, key, limits)
            if claimed is not None:
                session = AgentSession(cast(SandboxInstance, claimed))
                self._sessions.append(session)
                return session
            await asyncio.sleep(0.05)
        raise AssertionError("no pre-started runtime came up")

    def snapshot_spec(self, code_dir: Path, memory_mb: int, timeout_s: float) -> InstanceSpec:
        instance_id = f"escape-{uuid.uuid4().hex[:10]}"
        return InstanceSpec(
            instance_id=instance_id,
            function_name="escape",
            runtime="python",
            interpreter=INTERPRETERS["python"],
            code_dir=code_dir,
            work_dir=self.workspace / "instances" / instance_id,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            network=False,
            init_key=f"{code_dir}:{memory_mb}:{timeout_s}",
            init=init_message("", "", memory_mb, timeout_s),
        )

    async def close(self) -> None:
        await asyncio.gather(*(s.instance.kill() for s in self._sessions))


def _require(name: str) -> None:
    info = probe(name)
    if not info.available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the {name} backend must work in CI: {info.reason}")
        pytest.skip(f"{name} backend unavailable: {info.reason}")


@pytest.fixture(scope="session")
def container_available() -> None:
    _require("container")


@pytest.fixture(scope="session", params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    _require(name)
    return name


def reachable_dir() -> Path:
    """A data-dir stand-in the sandbox user can reach (pytest's tmp_path is below a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix="nova-escape-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def workspace() -> Iterator[Path]:
    path = reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def sandbox(backend_name: str, workspace: Path) -> AsyncIterator[Sandbox]:
    """A fresh backend for one test, on each backend in turn."""
    backend = make_backend(backend_name)
    box = Sandbox(backend, workspace, backend_name)
    try:
        yield box
    finally:
        await box.close()
        await backend.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_sandbox(backend_name: str) -> AsyncIterator[Sandbox]:
    """One backend per session for instances that tests share (see the module docstring)."""
    path = reachable_dir()
    backend = make_backend(backend_name)
    box = Sandbox(backend, path, backend_name)
    try:
        yield box
    finally:
        await box.close()
        await backend.close()
        shutil.rmtree(path, ignore_errors=True)
