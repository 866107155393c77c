"""The port a broker client implements for a trigger's consumer, and the message it hands out.

A broker client is used by one consumer task: ``connect``, then ``fetch`` until it raises
``BrokerUnavailable`` (the consumer then ``close``\\ s it and connects again after a backoff).
Every foreign error of a broker library is translated to ``BrokerUnavailable`` at this
boundary, with a message saying what to check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson


class BrokerUnavailable(Exception):
    """The broker cannot be reached, refused us, or the connection went away."""


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery. ``id`` is unique per message of the source (stream sequence, entry id,
    message id) and stable across redeliveries; ``metadata`` is what the broker says about it
    (subject, headers, ...), shown in the trigger's logs and tests."""

    id: str
    body: bytes
    metadata: Mapping[str, object]
    ack: Callable[[], Awaitable[None]]
    # Hand it back for another consumer now (the daemon is stopping); brokers without such a
    # call redeliver it after ack_wait_s.
    nak: Callable[[], Awaitable[None]] = _nothing
    # Tell the broker it is still being worked on, so it is not redelivered meanwhile.
    keepalive: Callable[[], Awaitable[None]] = _nothing


class Broker(Protocol):
    async def connect(self) -> None:
        """Connect and make sure the durable consumer / queue / consumer group exists."""
        ...

    async def fetch(self, limit: int, timeout_s: float) -> list[Message]:
        """Up to ``limit`` messages, waiting at most ``timeout_s`` for the first ([] then)."""
        ...

    async def lag(self) -> int | None:
        """Messages not yet delivered to any consumer, when the broker tells it."""
        ...

    async def close(self) -> None:
        """Drop the connection; never raises. Unacknowledged messages go back to the broker."""
        ...


def is_json(body: bytes) -> bool:
    """Whether a message body can be an event (it is then passed on unparsed)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True
