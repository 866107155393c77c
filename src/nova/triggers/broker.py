"""The port a broker client implements for a trigger's consumer, and the message it hands out.

A broker client is used by one consumer task: ``connect``, then ``fetch`` until it raises
``BrokerUnavailable`` (the consumer then ``close``\\ s it and connects again after a backoff).
Every foreign error of a broker library is translated to ``BrokerUnavailable`` at this
boundary, with a message saying what to check.
"""

from __future__ import annotations

import base64
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
    (subject, headers, ...) and goes into the event of a body that is not JSON."""

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


def event_payload(message: Message, source: str) -> bytes:
    """The event a function gets for ``message``: the body itself when it is JSON (passed on
    unparsed), else a JSON object with the body in base64 and what the broker says about it::

        {"body_base64": "...", "source": "nats", "id": "...", "metadata": {"subject": ...}}
    """
    try:
        orjson.loads(message.body)
    except orjson.JSONDecodeError:
        wrapper = {
            "body_base64": base64.b64encode(message.body).decode("ascii"),
            "source": source,
            "id": message.id,
            "metadata": dict(message.metadata),
        }
        return orjson.dumps(wrapper, default=str)
    return message.body
