"""NATS JetStream: a durable pull consumer (``nova-<trigger>``) on the trigger's subject.

Every daemon pulls from the same durable consumer, so JetStream hands each message to one of
them. A message not acknowledged within ``ack_wait_s`` is delivered again (the consumer keeps
the ones it works on alive with ``in_progress``). The stream holding the subject must exist;
Nova does not create streams (their limits and retention are the operator's choice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext

from nova.triggers.broker import BrokerUnavailable, Message

CONNECT_TIMEOUT_S = 5


class NatsBroker:
    def __init__(self, url: str, subject: str, durable: str, ack_wait_s: float) -> None:
        self._url = url
        self._subject = subject
        self._durable = durable
        self._ack_wait_s = ack_wait_s
        self._client: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def connect(self) -> None:
        try:
            # Nova reconnects itself (with its backoff, and shows it in /health).
            self._client = await nats.connect(
                self._url,
                allow_reconnect=False,
                connect_timeout=CONNECT_TIMEOUT_S,
                name=f"nova-{self._durable}",
                error_cb=_ignore,
            )
            jetstream = self._client.jetstream()
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self._ack_wait_s)
            self._subscription = await jetstream.pull_subscribe(
                self._subject, durable=self._durable, config=config
            )
        except nats.js.errors.NotFoundError as exc:
            raise BrokerUnavailable(
                f"no JetStream stream holds subject {self._subject!r}: create one "
                f"(`nats stream add --subjects {self._subject!r}`) ({exc})"
            ) from exc
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise BrokerUnavailable(f"NATS at {self._url}: {exc or type(exc).__name__}") from exc

    async def fetch(self, limit: int, timeout_s: float) -> list[Message]:
        subscription = self._live()
        try:
            received = await subscription.fetch(limit, timeout=timeout_s)
        except nats.errors.TimeoutError:
            return []
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise BrokerUnavailable(f"NATS at {self._url}: {exc or type(exc).__name__}") from exc
        return [self._message(msg) for msg in received]

    async def lag(self) -> int | None:
        try:
            info = await self._live().consumer_info()
        except (OSError, TimeoutError, nats.errors.Error):
            return None
        return int(info.num_pending or 0)

    async def close(self) -> None:
        client, self._client, self._subscription = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                await client.close()

    def _live(self) -> JetStreamContext.PullSubscription:
        if self._client is None or self._subscription is None or not self._client.is_connected:
            raise BrokerUnavailable(f"NATS at {self._url}: the connection was closed")
        return self._subscription

    def _message(self, msg: Msg) -> Message:
        meta = msg.metadata
        return Message(
            id=f"{meta.stream}:{meta.sequence.stream}:{meta.timestamp.timestamp():.6f}",
            body=msg.data,
            metadata={
                "subject": msg.subject,
                "headers": dict(msg.headers or {}),
                "stream": meta.stream,
                "sequence": meta.sequence.stream,
                "delivered": meta.num_delivered,
            },
            ack=self._guard(msg.ack),
            nak=self._guard(msg.nak),
            keepalive=self._guard(msg.in_progress),
        )

    def _guard(self, call: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        async def guarded() -> None:
            try:
                await call()
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                raise BrokerUnavailable(f"NATS at {self._url}: {exc}") from exc

        return guarded


async def _ignore(_: Exception) -> None:
    """The client reports errors here too; the consumer sees them as failed calls."""
