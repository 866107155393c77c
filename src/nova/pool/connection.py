"""The host end of one agent connection: frames out, replies matched to requests by id.

One reader task per connection dispatches every Resp to the future waiting on its id, so many
requests can be in flight on one instance (instance_concurrency > 1) and pings never queue
behind a slow invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Callable
from typing import Any

import orjson

from nova.agent.protocol import HEADER, MessageTooLarge, MsgType, check_length
from nova.core.errors import AgentProtocolError


class AgentConnectionLost(AgentProtocolError):
    code = "Sandbox.ConnectionLost"


class AgentConnection:
    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._closed_reason: str | None = None
        self._on_lost: Callable[[str], None] | None = None

    async def open(self, sock: socket.socket, on_lost: Callable[[str], None]) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        self._on_lost = on_lost
        self._reader_task = asyncio.create_task(
            self._read_replies(self._reader), name="agent-reader"
        )

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def next_id(self) -> str:
        return f"c{next(self._ids)}"

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send a control message (Init, Ping, Reload, Stop) and wait for its reply."""
        request_id = message.setdefault("id", self.next_id())
        body = orjson.dumps(message)
        return await self.request_raw(request_id, body, timeout_s)

    async def request_raw(self, request_id: str, body: bytes, timeout_s: float) -> dict[str, Any]:
        """Send a pre-encoded body (the invoke hot path splices the event bytes in unparsed)."""
        if self._closed_reason is not None or self._writer is None:
            raise AgentConnectionLost(f"agent connection is closed: {self._closed_reason}")
        if len(body) > self._max:
            raise MessageTooLarge(len(body), self._max)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(HEADER.pack(len(body)) + body)
            if self._writer.transport.get_write_buffer_size() > 65536:
                await self._writer.drain()
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        reason = "agent closed the connection"
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                body = await reader.readexactly(check_length(header, self._max))
                reply = orjson.loads(body)
                future = self._pending.get(str(reply.get("id")))
                if future is not None and not future.done() and reply.get("type") == MsgType.RESP:
                    future.set_result(reply)
        except asyncio.IncompleteReadError:
            pass
        except (OSError, MessageTooLarge, orjson.JSONDecodeError) as exc:
            reason = f"agent connection failed: {exc}"
        self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgentConnectionLost(reason))
        if self._on_lost is not None:
            self._on_lost(reason)

    async def close(self) -> None:
        self._lose("closed by the host")
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await self._writer.wait_closed()
        if self._reader_task is not None and not self._reader_task.done():
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
