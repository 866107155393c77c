"""Redis Streams: the consumer group ``nova-<trigger>`` on the trigger's stream.

Every daemon reads the stream as its own consumer of the one group (``XREADGROUP``), so each
entry goes to one of them; ``XACK`` acknowledges it. Entries a consumer took and did not
acknowledge stay pending: a daemon that died leaves them there, and the others take them over
with ``XAUTOCLAIM`` once they were idle for ``ack_wait_s`` (a live consumer resets that idle
time while it works on an entry). The stream and the group are created when missing.

An entry's ``body`` field is the message; an entry without one becomes a JSON object of its
fields.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from nova.triggers.broker import BrokerUnavailable, Message

CONNECT_TIMEOUT_S = 5
BODY_FIELD = b"body"


class RedisBroker:
    def __init__(self, url: str, stream: str, group: str, consumer: str, ack_wait_s: float) -> None:
        self._url = url
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = int(ack_wait_s * 1000)
        self._last_claim = 0.0
        self._client: redis.Redis | None = None

    async def connect(self) -> None:
        # No retries: Nova reconnects itself (with its backoff, and shows it in /health).
        self._client = redis.from_url(
            self._url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            client_name=self._consumer,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            await self._client.ping()
            try:
                await self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        except (OSError, TimeoutError, RedisError) as exc:
            raise BrokerUnavailable(f"Redis: {exc or type(exc).__name__}") from exc

    async def fetch(self, limit: int, timeout_s: float) -> list[Message]:
        client = self._live()
        try:
            if time.monotonic() - self._last_claim > self._claim_idle_ms / 2000:
                self._last_claim = time.monotonic()
                claimed: Any = await client.xautoclaim(
                    self._stream, self._group, self._consumer, self._claim_idle_ms, "0-0", limit
                )
                if claimed[1]:
                    return [self._message(entry_id, fields) for entry_id, fields in claimed[1]]
            answer: Any = await client.xreadgroup(
                self._group,
                self._consumer,
                {self._stream: ">"},
                count=limit,
                block=max(1, int(timeout_s * 1000)),
            )
        except (OSError, TimeoutError, RedisError) as exc:
            raise BrokerUnavailable(f"Redis: {exc or type(exc).__name__}") from exc
        return [
            self._message(entry_id, fields)
            for _, entries in answer or []
            for entry_id, fields in entries
        ]

    async def lag(self) -> int | None:
        client = self._live()
        try:
            groups = await client.xinfo_groups(self._stream)
        except (OSError, TimeoutError, RedisError):
            return None
        for group in groups:
            if _text(group.get("name")) == self._group:
                lag = group.get("lag")
                return int(lag) if lag is not None else None
        return None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):  # a broken connection: the name stays behind
            await self._forget(client)
        with contextlib.suppress(Exception):  # closing a broken connection may fail
            await client.aclose()

    async def _forget(self, client: redis.Redis) -> None:
        """Remove this consumer's name from the group when it holds no pending entry, so
        daemon restarts do not pile names up (one with pending entries stays: deleting it
        would make them unclaimable)."""
        consumers: Any = await client.xinfo_consumers(self._stream, self._group)
        for consumer in consumers:
            if _text(consumer.get("name")) == self._consumer and not consumer.get("pending"):
                await client.xgroup_delconsumer(self._stream, self._group, self._consumer)

    def _live(self) -> redis.Redis:
        if self._client is None:
            raise BrokerUnavailable("Redis: not connected")
        return self._client

    def _message(self, entry_id: Any, fields: dict[bytes, bytes]) -> Message:
        entry = _text(entry_id)
        client = self._live()
        if BODY_FIELD in fields:
            body = fields[BODY_FIELD]
        else:
            body = orjson.dumps({_text(key): _text(value) for key, value in fields.items()})

        async def ack() -> None:
            try:
                await client.xack(self._stream, self._group, entry)
            except (OSError, TimeoutError, RedisError) as exc:
                raise BrokerUnavailable(f"Redis: {exc}") from exc

        async def keepalive() -> None:
            # Claiming it for ourselves again resets its idle time: no one else takes it.
            with contextlib.suppress(OSError, TimeoutError, RedisError):
                await client.xclaim(
                    self._stream, self._group, self._consumer, 0, [entry], justid=True
                )

        other = {_text(k): _text(v) for k, v in fields.items() if k != BODY_FIELD}
        return Message(
            id=entry,
            body=body,
            metadata={"stream": self._stream, "entry_id": entry, "fields": other},
            ack=ack,
            keepalive=keepalive,
        )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
