"""An in-process SandboxBackend for unit tests: a fake agent task speaking the real protocol.

The fake agent echoes events and obeys a few instructions in them, so pool and executor tests
exercise real framing, id matching and failure paths without starting processes:
``{"sleep": s}`` waits before answering, ``{"crash": true}`` drops the connection,
``{"fail": "Type"}`` returns a user error of that type.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from pathlib import Path
from typing import Any

import orjson

from nova.agent.protocol import HEADER, PROTOCOL_VERSION, MsgType
from nova.core.errors import SandboxError
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance


class FakeInstance:
    def __init__(
        self,
        spec: InstanceSpec,
        sock: socket.socket,
        agent_sock: socket.socket,
        supports_reload: bool,
    ) -> None:
        self.spec = spec
        self._sock = sock
        self._agent_sock = agent_sock
        self._supports_reload = supports_reload
        self.code_ms: float | None = None
        self.code_hash = "initial"  # what the agent's workers run, as its last Reload said
        self.code_source = spec.code_dir  # the host directory the instance's code came from
        self.drained = False  # between Drain and Reload
        self.disk_full = False  # when set, replace_code fails as writing to a full disk would
        self.killed = False
        self.oom = 0
        self.hung = False  # when set, the agent reads requests but never answers
        self.init_env: dict[str, str] | None = None  # the env its Init carried
        self.trace_parents: list[str | None] = []  # what each Exec carried, in order
        self.task: asyncio.Task[None] | None = None

    @property
    def instance_id(self) -> str:
        return self.spec.instance_id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return None

    @property
    def code_dir(self) -> str:
        return "/code"

    @property
    def tmp_dir(self) -> str:
        return "/tmp"

    @property
    def image_id(self) -> str:
        return "fake"

    def alive(self) -> bool:
        return not self.killed

    def oom_kills(self) -> int:
        return self.oom

    async def replace_code(self, source: Path) -> None:
        if not self._supports_reload:
            raise SandboxError("the fake backend was made without reload")
        if not self.drained:  # the pool broke the Drain -> replace -> Reload order
            raise SandboxError("the code was replaced while the agent's workers ran")
        if self.disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.code_source = source

    async def kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self._agent_sock.close()
        self._sock.close()


class FakeBackend:
    def __init__(
        self,
        start_delay_s: float = 0.0,
        fail_starts: int = 0,
        supports_reload: bool = True,
        supports_network: bool = False,
    ) -> None:
        self.start_delay_s = start_delay_s
        self.fail_starts = fail_starts
        self.supports_reload = supports_reload
        self.supports_network = supports_network
        self.started: list[FakeInstance] = []

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            "fake", True, "test double", "none", self.supports_reload, self.supports_network
        )

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        await asyncio.sleep(self.start_delay_s)
        if self.fail_starts:
            self.fail_starts -= 1
            raise SandboxError("fake start failure")
        host, agent = socket.socketpair()
        host.setblocking(False)
        agent.setblocking(False)
        instance = FakeInstance(spec, host, agent, self.supports_reload)
        instance.task = asyncio.create_task(_serve(instance, agent))
        self.started.append(instance)
        return instance

    @property
    def live(self) -> list[FakeInstance]:
        return [i for i in self.started if not i.killed]

    async def close(self) -> None:
        await asyncio.gather(*(i.kill() for i in self.started))


async def _serve(instance: FakeInstance, sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    handlers: set[asyncio.Task[None]] = set()

    async def reply(message: dict[str, Any]) -> None:
        body = orjson.dumps({"type": MsgType.RESP, "ok": True, **message})
        writer.write(HEADER.pack(len(body)) + body)

    async def execute(message: dict[str, Any]) -> None:
        instance.trace_parents.append(message.get("trace_parent"))
        event = message.get("event")
        if isinstance(event, dict):
            await asyncio.sleep(float(event.get("sleep", 0)))
            if event.get("crash"):
                if event.get("oom"):
                    instance.oom += 1
                writer.close()
                return
            if "fail" in event:
                error = {"type": event["fail"], "message": "failed on request", "stack": []}
                await reply(
                    {
                        "id": message["id"],
                        "output": None,
                        "error": error,
                        "stdout": "",
                        "stderr": "",
                        "duration_ms": 0.1,
                    }
                )
                return
        output = {"event": event, "instance": instance.instance_id, "code_hash": instance.code_hash}
        await reply(
            {
                "id": message["id"],
                "output": output,
                "error": None,
                "stdout": "out",
                "stderr": "",
                "duration_ms": 0.1,
            }
        )

    try:
        while True:
            header = await reader.readexactly(HEADER.size)
            message = orjson.loads(await reader.readexactly(HEADER.unpack(header)[0]))
            kind = message["type"]
            if instance.hung:
                continue
            if kind == MsgType.INIT:
                instance.init_env = message.get("env")
                await reply(
                    {
                        "id": message["id"],
                        "protocol": PROTOCOL_VERSION,
                        "agent_version": "fake",
                        "pid": 0,
                        "init_ms": 0.0,  # as the real agent does: its own Init time
                    }
                )
            elif kind == MsgType.EXEC:
                task = asyncio.create_task(execute(message))
                handlers.add(task)
                task.add_done_callback(handlers.discard)
            elif kind == MsgType.DRAIN:
                instance.drained = True
                await reply({"id": message["id"]})
            elif kind == MsgType.RELOAD:
                instance.drained = False
                instance.code_hash = message["code_hash"]
                await reply({"id": message["id"], "code_hash": message["code_hash"]})
            else:
                await reply({"id": message["id"]})
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        for task in handlers:
            task.cancel()
        writer.close()
