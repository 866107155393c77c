"""The host end of an agent connection against a peer that breaks the protocol. In direct mode
user code holds the other end, so whatever it writes must cost the daemon little and end the
instance rather than the daemon."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio

from nova.agent.protocol import HEADER, MsgType
from nova.pool.connection import AgentConnection, AgentConnectionLost


class Peer:
    def __init__(self) -> None:
        self.host, self.sandbox = socket.socketpair()
        self.connection = AgentConnection(max_message_bytes=1 << 16)
        self.lost: list[str] = []

    async def open(self) -> None:
        await self.connection.open(self.host, self.lost.append)

    def write(self, body: bytes) -> None:
        self.sandbox.sendall(HEADER.pack(len(body)) + body)

    def reply(self, request_id: str, **fields: object) -> None:
        self.write(orjson.dumps({"type": MsgType.RESP, "id": request_id, "ok": True, **fields}))


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Peer]:
    made = Peer()
    await made.open()
    yield made
    await made.connection.close()
    made.sandbox.close()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_reply_resolves_its_request(peer: Peer) -> None:
    pending = asyncio.ensure_future(peer.connection.request_raw("r1", b'{"type":2,"id":"r1"}', 5))
    await settle()
    peer.reply("r1", output=42)
    assert (await pending)["output"] == 42


async def test_a_flood_of_unsolicited_replies_closes_the_connection(peer: Peer) -> None:
    for number in range(16):
        peer.reply(f"nobody-{number}")  # a few stray replies are tolerated (late, timed out)
    await settle()
    assert not peer.connection.closed

    peer.reply("one-too-many")
    await settle()

    assert peer.connection.closed
    assert "not pending" in peer.lost[0]
    with pytest.raises(AgentConnectionLost):
        await peer.connection.request_raw("r2", b'{"type":2,"id":"r2"}', 5)


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b"42"])
async def test_a_reply_that_is_not_an_object_closes_the_connection(peer: Peer, body: bytes) -> None:
    pending = asyncio.ensure_future(peer.connection.request_raw("r1", b'{"type":2,"id":"r1"}', 5))
    await settle()
    peer.write(body)

    with pytest.raises(AgentConnectionLost):
        await pending
    assert peer.connection.closed


async def test_a_request_without_a_reply_times_out(peer: Peer) -> None:
    with pytest.raises(TimeoutError):
        await peer.connection.request_raw("r1", b'{"type":2,"id":"r1"}', 0.05)
    assert not peer.connection.closed


async def test_requests_time_out_in_deadline_order(peer: Peer) -> None:
    """One sweep timer serves every pending request, whatever order their deadlines come in."""
    slow = asyncio.ensure_future(peer.connection.request_raw("slow", b"{}", 0.6))
    await settle()
    fast = asyncio.ensure_future(peer.connection.request_raw("fast", b"{}", 0.1))
    answered = asyncio.ensure_future(peer.connection.request_raw("answered", b"{}", 0.05))
    await settle()
    peer.reply("answered", output=3)
    assert (await answered)["output"] == 3
    with pytest.raises(TimeoutError):
        await fast
    assert not slow.done()
    with pytest.raises(TimeoutError):
        await slow
    later = asyncio.ensure_future(peer.connection.request_raw("later", b"{}", 5))
    await settle()
    peer.reply("later", output=4)
    assert (await later)["output"] == 4
