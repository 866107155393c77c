"""RabbitMQ: a consumer on the trigger's durable queue (declared if missing).

Every daemon consumes the same queue, so RabbitMQ gives each message to one of them; at most
``prefetch`` unacknowledged messages are with a daemon at once. Messages a daemon did not
acknowledge go back to the queue when its connection closes, so one that died loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aio_pika
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import AMQPError

from nova.triggers.broker import BrokerUnavailable, Message

CONNECT_TIMEOUT_S = 5
_ERRORS = (OSError, TimeoutError, AMQPError, aiormq.exceptions.AMQPError, asyncio.CancelledError)


class RabbitBroker:
    def __init__(self, url: str, queue: str, prefetch: int, name: str) -> None:
        self._url = url
        self._queue_name = queue
        self._prefetch = prefetch
        self._name = name
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def connect(self) -> None:
        try:
            # Not connect_robust: Nova reconnects itself (with its backoff, shown in /health).
            connection = await aio_pika.connect(
                self._url,
                timeout=CONNECT_TIMEOUT_S,
                client_properties={"connection_name": self._name},
            )
            self._connection = connection
            self._channel = await connection.channel()
            await self._channel.set_qos(prefetch_count=self._prefetch)
            self._queue = await self._channel.declare_queue(self._queue_name, durable=True)
            self._received = asyncio.Queue()
            await self._queue.consume(self._received.put)
        except _ERRORS as exc:
            raise BrokerUnavailable(f"RabbitMQ: {exc or type(exc).__name__}") from exc

    async def fetch(self, limit: int, timeout_s: float) -> list[Message]:
        self._live()
        try:
            first = await asyncio.wait_for(self._received.get(), timeout_s)
        except TimeoutError:
            self._live()
            return []
        batch = [first]
        while len(batch) < limit and not self._received.empty():
            batch.append(self._received.get_nowait())
        return [self._message(message) for message in batch]

    async def lag(self) -> int | None:
        channel = self._channel
        if channel is None or channel.is_closed:
            return None
        try:
            queue = await channel.declare_queue(self._queue_name, passive=True)
        except _ERRORS:
            return None
        result = queue.declaration_result
        return int(result.message_count or 0) if result is not None else None

    async def close(self) -> None:
        connection, self._connection, self._channel, self._queue = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                await connection.close()

    def _live(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise BrokerUnavailable("RabbitMQ: the connection was closed")
        if self._channel is None or self._channel.is_closed:
            raise BrokerUnavailable("RabbitMQ: the channel was closed")

    def _message(self, message: AbstractIncomingMessage) -> Message:
        async def ack() -> None:
            try:
                await message.ack()
            except _ERRORS as exc:
                raise BrokerUnavailable(f"RabbitMQ: {exc}") from exc

        async def nak() -> None:
            with contextlib.suppress(*_ERRORS):
                await message.nack(requeue=True)

        # Without a publisher's message id nothing names a message across redeliveries.
        key = message.message_id or str(uuid.uuid4())
        return Message(
            id=f"{key}:{message.timestamp.timestamp() if message.timestamp else ''}",
            body=message.body,
            metadata={
                "queue": self._queue_name,
                "exchange": message.exchange,
                "routing_key": message.routing_key,
                "headers": {k: str(v) for k, v in (message.headers or {}).items()},
                "content_type": message.content_type,
                "message_id": message.message_id,
                "redelivered": message.redelivered,
            },
            ack=ack,
            nak=nak,
        )
