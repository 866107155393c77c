"""The real brokers tests use - NATS JetStream, RabbitMQ, Redis - at NOVA_TEST_NATS_URL,
NOVA_TEST_RABBITMQ_URL and NOVA_TEST_REDIS_URL (defaults: the local servers). Each test gets
its own stream / queue / stream key, created here and deleted after. An unreachable broker
skips the test saying so, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import nats
import redis.asyncio as redis

from tests.store.backends import _unreachable

SOURCES = ("nats", "rabbitmq", "redis")
DEFAULTS = {
    "nats": "nats://127.0.0.1:4222",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
}


def broker_url(source: str) -> str:
    return os.environ.get(f"NOVA_TEST_{source.upper()}_URL", DEFAULTS[source])


def daemon_env(ack_wait_s: float = 300) -> dict[str, str]:
    """What a test daemon needs to reach the test brokers."""
    return {
        "NOVA_TRIGGERS__NATS_URL": broker_url("nats"),
        "NOVA_TRIGGERS__RABBITMQ_URL": broker_url("rabbitmq"),
        "NOVA_TRIGGERS__REDIS_URL": broker_url("redis"),
        "NOVA_TRIGGERS__ACK_WAIT_S": str(ack_wait_s),
        "NOVA_TRIGGERS__RECONNECT_INITIAL_S": "0.2",
        "NOVA_TRIGGERS__LAG_INTERVAL_S": "0.5",
    }


@dataclass(frozen=True)
class Channel:
    """One test's place on a broker: ``target`` is the subject, queue or stream a trigger
    reads; for NATS, ``stream`` holds the subject."""

    source: str
    target: str
    stream: str
    trigger: str  # the trigger that reads it (its broker-side consumer: nova-<trigger>)

    @property
    def target_field(self) -> str:
        return {"nats": "subject", "rabbitmq": "queue", "redis": "stream"}[self.source]

    def publish(self, *bodies: bytes, **headers: str) -> None:
        asyncio.run(_publish(self, bodies, headers))

    def pending(self) -> int:
        """Messages the broker still holds for the trigger: not delivered, or delivered and
        not acknowledged (the trigger's consumer name is ``nova-<trigger>``)."""
        return asyncio.run(_pending(self))


@contextmanager
def channel(source: str, trigger: str) -> Iterator[Channel]:
    suffix = uuid.uuid4().hex[:10]
    created = Channel(source, f"nova-test-{suffix}", f"NOVA_TEST_{suffix}", trigger)
    try:
        asyncio.run(_create(created))
    except Exception as exc:
        _unreachable(f"{source} at {broker_url(source)} is unreachable: {exc!r}")
    try:
        yield created
    finally:
        asyncio.run(_delete(created))


async def _create(ch: Channel) -> None:
    url = broker_url(ch.source)
    if ch.source == "nats":
        client = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            await client.jetstream().add_stream(name=ch.stream, subjects=[ch.target])
        finally:
            await client.close()
    elif ch.source == "rabbitmq":
        connection = await aio_pika.connect(url, timeout=3)
        async with connection:
            await (await connection.channel()).declare_queue(ch.target, durable=True)
    else:
        client = redis.from_url(url, socket_connect_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()


async def _delete(ch: Channel) -> None:
    url = broker_url(ch.source)
    if ch.source == "nats":
        client = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            await client.jetstream().delete_stream(ch.stream)
        finally:
            await client.close()
    elif ch.source == "rabbitmq":
        connection = await aio_pika.connect(url, timeout=3)
        async with connection:
            await (await connection.channel()).queue_delete(ch.target)
    else:
        client = redis.from_url(url)
        try:
            await client.delete(ch.target)
        finally:
            await client.aclose()


async def _publish(ch: Channel, bodies: tuple[bytes, ...], headers: dict[str, str]) -> None:
    url = broker_url(ch.source)
    if ch.source == "nats":
        client = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            for body in bodies:
                await client.jetstream().publish(ch.target, body, headers=headers or None)
        finally:
            await client.close()
    elif ch.source == "rabbitmq":
        connection = await aio_pika.connect(url, timeout=3)
        async with connection:
            amqp = await connection.channel()
            for body in bodies:
                message = aio_pika.Message(
                    body, message_id=uuid.uuid4().hex, headers=dict(headers) or None
                )
                await amqp.default_exchange.publish(message, routing_key=ch.target)
    else:
        client = redis.from_url(url)
        try:
            for body in bodies:
                await client.xadd(ch.target, {"body": body, **headers})
        finally:
            await client.aclose()


async def _pending(ch: Channel) -> int:
    url = broker_url(ch.source)
    trigger = ch.trigger
    if ch.source == "nats":
        client = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            info = await client.jetstream().consumer_info(ch.stream, f"nova-{trigger}")
        finally:
            await client.close()
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    if ch.source == "rabbitmq":
        connection = await aio_pika.connect(url, timeout=3)
        async with connection:
            queue = await (await connection.channel()).declare_queue(ch.target, passive=True)
            result: Any = queue.declaration_result
            # Unacknowledged messages are not counted as ready: the consumer's counts cover them.
            return int(result.message_count)
    client = redis.from_url(url)
    try:
        summary: Any = await client.xpending(ch.target, f"nova-{trigger}")
        groups: Any = await client.xinfo_groups(ch.target)
    finally:
        await client.aclose()
    lag = sum(int(group.get("lag") or 0) for group in groups)
    return int(summary["pending"]) + lag
