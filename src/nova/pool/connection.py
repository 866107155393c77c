"""The host end of one agent connection: frames out, replies matched to requests by id.

An asyncio Protocol parses reply frames as bytes arrive and resolves the future waiting on each
reply's id, so many requests can be in flight on one instance (instance_concurrency > 1) and
pings never queue behind a slow invocation. Parsing in ``data_received`` (rather than in a
reader task over a StreamReader) saves a task switch on every invocation.

Requests time out by a sweep rather than a timer each: one timer per connection, armed for the
earliest deadline that has none, expires what is due and re-arms for what is left. A request
whose deadline is later than the armed one (the usual case: each call is answered long before
the previous call's deadline) costs a dict entry, not a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable
from typing import Any, cast

import orjson

from nova.agent.protocol import HEADER, MessageTooLarge, MsgType, check_length
from nova.core.errors import AgentProtocolError

_HIGH_WATER = 1 << 16  # past this much unsent data, a sender waits for the agent to read
# Replies that answer nothing pending: a few are legitimate (one that arrives just after its
# request timed out), a stream of them is an instance flooding the daemon — in direct mode user
# code holds the connection — and closes it.
_UNSOLICITED_BUDGET = 16


class AgentConnectionLost(AgentProtocolError):
    code = "Sandbox.ConnectionLost"


class AgentConnection(asyncio.Protocol):
    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        # frame id -> (the future its reply resolves, the loop time it times out at)
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        self._ids = itertools.count(1)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._closed_reason: str | None = None
        self._on_lost: Callable[[str], None] | None = None
        self._writable: asyncio.Event | None = None
        self._unsolicited = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None

    async def open(self, sock: socket.socket, on_lost: Callable[[str], None]) -> None:
        self._on_lost = on_lost
        self._writable = asyncio.Event()
        self._writable.set()
        self._loop = loop = asyncio.get_running_loop()
        await loop.create_unix_connection(lambda: self, sock=sock)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def next_id(self) -> str:
        """A frame id no other request on this connection has (replies are matched by it)."""
        return f"c{next(self._ids)}"

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send a control message (Init, Ping, Reload, Stop) and wait for its reply."""
        frame_id = message.setdefault("id", self.next_id())
        body = orjson.dumps(message)
        return await self.request_raw(frame_id, body, timeout_s)

    async def request_raw(self, frame_id: str, body: bytes, timeout_s: float) -> dict[str, Any]:
        """Send a pre-encoded body whose ``id`` is ``frame_id`` (from :meth:`next_id`); the
        invoke hot path splices the event bytes in unparsed.

        TimeoutError when no reply came within ``timeout_s``."""
        transport, loop, writable = self._transport, self._loop, self._writable
        if self._closed_reason is not None or transport is None or loop is None or not writable:
            raise AgentConnectionLost(f"agent connection is closed: {self._closed_reason}")
        if len(body) > self._max:
            raise MessageTooLarge(len(body), self._max)
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        deadline = loop.time() + timeout_s
        self._pending[frame_id] = (future, deadline)
        if self._sweep is None or deadline < self._sweep.when():
            self._arm_sweep(deadline)
        try:
            if not writable.is_set():
                await writable.wait()
            transport.write(HEADER.pack(len(body)) + body)
            return await future
        finally:
            del self._pending[frame_id]

    def _arm_sweep(self, when: float) -> None:
        assert self._loop is not None
        self._cancel_sweep()
        self._sweep = self._loop.call_at(when, self._expire_due)

    def _cancel_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _expire_due(self) -> None:
        assert self._loop is not None
        self._sweep = None
        now = self._loop.time()
        waiting = []
        for future, deadline in self._pending.values():
            if future.done():
                continue
            if deadline <= now:
                future.set_exception(TimeoutError())
            else:
                waiting.append(deadline)
        if waiting:
            self._arm_sweep(min(waiting))

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a unix stream transport
        self._transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer and len(data) > HEADER.size:
            # The usual case: exactly one whole reply, parsed without copying it into the buffer.
            (length,) = HEADER.unpack_from(data)
            if length + HEADER.size == len(data) and length <= self._max:
                self._deliver(memoryview(data)[HEADER.size :])
                return
        buffer += data
        while len(buffer) >= HEADER.size and not self.closed:
            try:
                length = check_length(bytes(buffer[: HEADER.size]), self._max)
            except MessageTooLarge as exc:
                self._fail(f"agent connection failed: {exc}")
                return
            end = HEADER.size + length
            if len(buffer) < end:
                return
            body = bytes(buffer[HEADER.size : end])
            del buffer[:end]
            self._deliver(body)

    def _deliver(self, body: bytes | memoryview) -> None:
        """Resolve the request a reply frame answers, or count it as unsolicited."""
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self._fail(f"agent connection failed: {exc}")
            return
        if not isinstance(reply, dict):
            self._fail("agent connection failed: a reply is not a JSON object")
            return
        pending = self._pending.get(str(reply.get("id")))
        if pending is not None and not pending[0].done() and reply.get("type") == MsgType.RESP:
            pending[0].set_result(reply)
            return
        self._unsolicited += 1
        if self._unsolicited > _UNSOLICITED_BUDGET:
            self._fail(
                f"agent connection failed: the instance sent {self._unsolicited} replies "
                "to requests that were not pending"
            )

    def pause_writing(self) -> None:
        if self._writable is not None:
            self._writable.clear()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"agent connection failed: {exc}" if exc else "agent closed the connection")

    # -- closing ------------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self._lose(reason)
        if self._transport is not None:
            self._transport.abort()

    def _lose(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self._cancel_sweep()  # every pending request fails now
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(AgentConnectionLost(reason))
        if self._writable is not None:
            self._writable.set()  # wake blocked senders: they will see the connection closed
        if self._on_lost is not None:
            self._on_lost(reason)

    async def close(self) -> None:
        self._lose("closed by the host")
        if self._transport is not None:
            self._transport.close()
