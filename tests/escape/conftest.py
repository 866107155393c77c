"""The escape suite's harness: real container instances driven through the real agent.

A test writes a handler, starts an instance with :class:`Sandbox.start`, and calls
:meth:`AgentSession.exec`; every assertion about isolation is made from *inside* a function.
The suite skips (with the reason) where the container backend is unavailable, except under
CI=true, where an unavailable backend is a failure: CI must not go green by skipping it.
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
from pathlib import Path
from typing import Any

import pytest

from nova.agent.protocol import HEADER, PROTOCOL_VERSION, MsgType, decode_body, encode_message
from nova.sandbox.base import InstanceSpec, SandboxInstance
from nova.sandbox.container import ContainerBackend

MAX_MESSAGE_BYTES = 1 << 20
INTERPRETERS = {"python": "/usr/bin/python3", "node": "/usr/bin/node"}


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
        return await self.request(
            {
                "type": MsgType.INIT,
                "protocol": PROTOCOL_VERSION,
                "runtime": runtime,
                "handler": handler,
                "mode": "persistent",
                "code_dir": self.instance.code_dir,
                "tmp_dir": self.instance.tmp_dir,
                "interpreter": INTERPRETERS[runtime],
                "env": {},
                "function_name": "escape",
                "function_version": "1",
                "memory_mb": memory_mb,
                "timeout_s": timeout_s,
                "concurrency": 1,
            },
            timeout_s=15,
        )

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
    """Starts instances of handler code on the container backend."""

    def __init__(self, backend: ContainerBackend, workspace: Path) -> None:
        self.backend = backend
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

    async def close(self) -> None:
        await asyncio.gather(*(s.instance.kill() for s in self._sessions))


@pytest.fixture(scope="session")
def container_available() -> None:
    info = ContainerBackend.probe()
    if not info.available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the container backend must work in CI: {info.reason}")
        pytest.skip(f"container backend unavailable: {info.reason}")


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A data-dir stand-in the sandbox user can reach (pytest's tmp_path is below a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix="nova-escape-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def sandbox(container_available: None, workspace: Path) -> AsyncIterator[Sandbox]:
    backend = ContainerBackend(MAX_MESSAGE_BYTES)
    box = Sandbox(backend, workspace)
    try:
        yield box
    finally:
        await box.close()
        await backend.close()
