"""The second baseline: the least an HTTP front end can do to run a handler in another process.

A bare ASGI app on the same uvicorn as Nova that hands each request body to one of four Python
worker processes over a socketpair (4-byte length + JSON, as Nova's agent protocol) and answers
with the handler's result: one HTTP parse, one process hop each way, one JSON response - and
nothing else (no pool rules, timeouts, isolation, logs or error classification). Nova's warm
path does all of that on top of the same hop, so this measures what the architecture costs
before any of Nova's own code.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
from collections import deque
from typing import Any, cast

import orjson

WORKERS = 4
# The interpreter Nova's Python workers run on (the runtime registry prefers the system one).
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
_LENGTH = struct.Struct(">I")
_WORKER = r"""
import json, os, struct, sys
length = struct.Struct(">I")
fd = int(sys.argv[1])
def handler(event, context):
    return {"message": "Hello, " + event.get("name", "world") + "!"}
while True:
    header = os.read(fd, 4)
    if not header:
        break
    request = json.loads(os.read(fd, length.unpack(header)[0]))
    reply = json.dumps({"id": request["id"], "output": handler(request["event"], None)}).encode()
    os.write(fd, length.pack(len(reply)) + reply)
"""
_HEADERS = [(b"content-type", b"application/json")]


class _Worker(asyncio.Protocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[dict[str, Any]] | None = None
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack_from(self._buffer)
        if len(self._buffer) >= _LENGTH.size + length and self.reply is not None:
            self.reply.set_result(orjson.loads(bytes(self._buffer[_LENGTH.size :])))
            self._buffer.clear()


_idle: list[_Worker] = []
_waiting: deque[asyncio.Future[None]] = deque()
_processes: list[subprocess.Popen[bytes]] = []


def _spawn_worker() -> socket.socket:
    ours, theirs = socket.socketpair()
    _processes.append(
        subprocess.Popen([PYTHON, "-c", _WORKER, str(theirs.fileno())], pass_fds=(theirs.fileno(),))
    )
    theirs.close()
    return ours


async def _start_workers() -> None:
    loop = asyncio.get_running_loop()
    for _ in range(WORKERS):
        ours = _spawn_worker()  # at start-up, before any request: blocking briefly is fine
        worker = _Worker()
        await loop.create_unix_connection(lambda worker=worker: worker, sock=ours)  # type: ignore[misc]
        _idle.append(worker)


async def _call(body: bytes, request_id: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    while not _idle:
        turn = loop.create_future()
        _waiting.append(turn)
        await turn
    worker = _idle.pop()
    try:
        worker.reply = loop.create_future()
        frame = b'{"id":%d,"event":%s}' % (request_id, body or b"{}")
        assert worker.transport is not None
        worker.transport.write(_LENGTH.pack(len(frame)) + frame)
        return await worker.reply
    finally:
        _idle.append(worker)
        if _waiting:
            _waiting.popleft().set_result(None)


_requests = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _requests
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await _start_workers()
            await send({"type": "lifespan.startup.complete"})
        for process in _processes:
            process.kill()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    _requests += 1
    reply = await _call(body, _requests)
    response = orjson.dumps({"request_id": reply["id"], "output": reply["output"], "error": None})
    headers = [*_HEADERS, (b"content-length", b"%d" % len(response))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": response})
