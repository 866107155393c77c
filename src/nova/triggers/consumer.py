"""One trigger's consumer: fetch from the broker, run the function per message, acknowledge.

A message is acknowledged only once its invocation succeeded or it reached the dead letters,
so a daemon that dies mid-message leaves it to the broker, which delivers it again (at least
once). A failed invocation is retried in place by the function's retry policy (attempts and
backoff per kind of error, ``async_max_age_s``; see :mod:`nova.events.policy`); after the last
attempt the event goes to the dead letters with every attempt's error, where ``nova dlq
replay`` runs it again through the asynchronous queue.

Up to ``concurrency`` messages run at once, fetched ``batch_size`` at a time (the next batch
as soon as a slot is free). When the broker goes away the consumer reconnects after an
exponential backoff with jitter; its state (connected / reconnecting and the last error) is
what ``/health`` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from nova.core import ids
from nova.core.errors import (
    AliasNotFound,
    FunctionNotFound,
    NovaError,
    ShuttingDown,
    VersionNotFound,
)
from nova.core.events import AttemptError
from nova.core.queue_triggers import QueueTrigger
from nova.events.invocations import AsyncInvocations
from nova.events.policy import DEFAULT_RULES, RetryPolicy
from nova.events.worker import ConfigOf, Invoker
from nova.triggers.broker import Broker, BrokerUnavailable, Message, is_json

logger = logging.getLogger(__name__)

_MISSING = (FunctionNotFound, VersionNotFound, AliasNotFound)
# The retry policy of a function whose config could not be read (the store was away): the
# default rules and async_max_age_s.
_FALLBACK_POLICY = RetryPolicy(DEFAULT_RULES, 6 * 3600.0)
FETCH_WAIT_S = 1.0  # how long one fetch waits: also how soon a stop is noticed


class ConsumerState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the broker went away or refused: waiting to try again
    STOPPED = "stopped"


@dataclass(slots=True)
class ConsumerStats:
    received: int = 0
    acked: int = 0
    failed: int = 0  # attempts that failed (retried or not)
    dead_lettered: int = 0
    reconnects: int = 0
    lag: int | None = None  # not yet delivered, as the broker last said


@dataclass(frozen=True, slots=True)
class ConsumerTiming:
    ack_wait_s: float
    reconnect_initial_s: float
    reconnect_max_s: float
    lag_interval_s: float


class TriggerConsumer:
    def __init__(
        self,
        trigger: QueueTrigger,
        broker: Broker,
        invoker: Invoker,
        config_of: ConfigOf,
        invocations: AsyncInvocations,
        max_payload_bytes: int,
        timing: ConsumerTiming,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.trigger = trigger
        self._broker = broker
        self._invoker = invoker
        self._config_of = config_of
        self._invocations = invocations
        self._max_payload_bytes = max_payload_bytes
        self._timing = timing
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.state = ConsumerState.CONNECTING
        self.last_error: str | None = None
        self.stats = ConsumerStats()
        self._held: dict[asyncio.Task[None], Message] = {}  # fetched, not yet settled
        self._slots = asyncio.Semaphore(trigger.concurrency)  # messages running at once
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def source(self) -> str:
        return f"trigger:{self.trigger.name}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"trigger-{self.trigger.name}")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop fetching, give the messages in flight ``timeout_s`` to finish (those still
        running are handed back, unacknowledged), and disconnect."""
        self._stopping = True
        if self._task is not None:
            # A fetch notices the stop within FETCH_WAIT_S; a reconnect backoff may be long.
            _, running = await asyncio.wait({self._task}, timeout=2 * FETCH_WAIT_S)
            for task in running:
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        tasks = list(self._held)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._broker.close()
        self.state = ConsumerState.STOPPED

    async def _run(self) -> None:
        delay_s = self._timing.reconnect_initial_s
        while not self._stopping:
            try:
                await self._broker.connect()
                self.state, self.last_error = ConsumerState.CONNECTED, None
                delay_s = self._timing.reconnect_initial_s
                await self._consume()
                # Stopping: the connection stays up for the messages still running to be
                # acknowledged; close() disconnects after them.
                return
            except BrokerUnavailable as exc:
                self._lost(str(exc))
            except Exception as exc:  # a broker library failing in a way it does not document
                logger.exception("trigger %s: consumer failed", self.trigger.name)
                self._lost(f"{type(exc).__name__}: {exc}")
            await self._broker.close()
            if self._stopping:
                return
            # Equal jitter: daemons that lost the broker together do not come back together.
            await self._sleep(delay_s / 2 + self._rng.uniform(0, delay_s / 2))
            delay_s = min(self._timing.reconnect_max_s, delay_s * 2)

    def _lost(self, error: str) -> None:
        if self.state is ConsumerState.CONNECTED:
            self.stats.reconnects += 1
        if self.state is not ConsumerState.RECONNECTING or error != self.last_error:
            logger.warning("trigger %s: %s (reconnecting)", self.trigger.name, error)
        self.state, self.last_error = ConsumerState.RECONNECTING, error

    async def _consume(self) -> None:
        trigger = self.trigger
        last_lag = last_keepalive = 0.0
        while not self._stopping:
            now = time.monotonic()
            if now - last_lag >= self._timing.lag_interval_s:
                last_lag = now
                self.stats.lag = await self._broker.lag()
            if now - last_keepalive >= self._timing.ack_wait_s / 3:
                last_keepalive = now
                for message in list(self._held.values()):
                    await message.keepalive()
            # The next batch is fetched once a slot is free, so up to concurrency - 1 +
            # batch_size messages are held, and a slot never waits for a round trip.
            if len(self._held) >= trigger.concurrency:
                await asyncio.wait(list(self._held), timeout=FETCH_WAIT_S)
                continue
            for message in await self._broker.fetch(trigger.batch_size, FETCH_WAIT_S):
                self.stats.received += 1
                task = asyncio.create_task(self._handle(message), name=f"msg-{message.id}")
                self._held[task] = message
                task.add_done_callback(self._held.pop)

    async def _handle(self, message: Message) -> None:
        try:
            async with self._slots:
                done = await self._outcome(message)
            if done:
                await message.ack()
                self.stats.acked += 1
            else:
                # The daemon is draining: fetch nothing more (every message would come back
                # the same way) and hand this one to another daemon, or to the next start.
                self._stopping = True
                await message.nak()
        except BrokerUnavailable as exc:
            # Not acknowledged: the broker delivers it again (to us after the reconnect, or to
            # another daemon).
            logger.warning(
                "trigger %s: cannot acknowledge %s: %s", self.trigger.name, message.id, exc
            )
        except NovaError as exc:
            # The dead letter could not be stored: hand the message back rather than hold it
            # (RabbitMQ would never redeliver it while this connection lives).
            logger.warning(
                "trigger %s: message %s handed back: %s", self.trigger.name, message.id, exc.message
            )
            with contextlib.suppress(BrokerUnavailable):  # gone with the connection anyway
                await message.nak()
        except Exception:
            logger.exception("trigger %s: message %s failed", self.trigger.name, message.id)

    async def _outcome(self, message: Message) -> bool:
        """Run the message until it succeeded or is in the dead letters (True: acknowledge
        it), or the daemon is stopping (False: hand it back). Raises NovaError when the dead
        letter could not be stored (then it must not be acknowledged)."""
        trigger = self.trigger
        payload = message.body
        key = f"{trigger.name}:{message.id}"[:256]
        if not is_json(payload):  # it could never run: a dead letter with the reason at once
            await self._invocations.reject(
                trigger.function,
                trigger.qualifier or None,
                payload,
                "Event.InvalidJson",
                f"the message body is not JSON ({len(payload)} bytes): queue triggers pass "
                "JSON events; publish JSON (binary data base64 in a field)",
                source=self.source,
                idempotency_key=key,
            )
            self.stats.dead_lettered += 1
            return True
        if len(payload) > self._max_payload_bytes:
            await self._invocations.reject(
                trigger.function,
                trigger.qualifier or None,
                payload,
                "Event.TooLarge",
                f"the message is {len(payload)} bytes as an event, over the "
                f"{self._max_payload_bytes}-byte daemon.max_payload_bytes",
                source=self.source,
                idempotency_key=key,
            )
            self.stats.dead_lettered += 1
            return True
        started = datetime.now(UTC)
        errors: list[AttemptError] = []
        while True:
            attempt = len(errors) + 1
            policy = _FALLBACK_POLICY  # until the function's config is read
            try:
                config = await self._config_of(trigger.function, trigger.qualifier or None)
                policy = RetryPolicy.of(config)
                result = await self._invoker.invoke(
                    trigger.function,
                    payload,
                    qualifier=trigger.qualifier or None,
                    request_id=ids.request_id(),
                )
            except ShuttingDown:
                return False
            except _MISSING as exc:  # retrying cannot help: straight to the dead letters
                errors.append(AttemptError(attempt, exc.code, exc.message, datetime.now(UTC)))
                self.stats.failed += 1
                return await self._bury(payload, errors, key)
            except NovaError as exc:  # no instance, the sandbox failed to start, ...
                error = AttemptError(attempt, exc.code, exc.message, datetime.now(UTC))
            else:
                if result.error is None:
                    return True
                error = AttemptError(
                    attempt, result.error.type, result.error.message, datetime.now(UTC)
                )
            errors.append(error)
            self.stats.failed += 1
            rule = policy.rule(error.type)
            delay_s = rule.delay_s(attempt, self._rng)
            age_s = (datetime.now(UTC) - started).total_seconds() + delay_s
            if attempt >= rule.attempts or age_s > policy.max_age_s or self._stopping:
                return await self._bury(payload, errors, key)
            await self._sleep(delay_s)

    async def _bury(self, payload: bytes, errors: list[AttemptError], key: str) -> bool:
        trigger = self.trigger
        await self._invocations.bury(
            trigger.function,
            trigger.qualifier or None,
            payload,
            errors,
            source=self.source,
            idempotency_key=key,
        )
        self.stats.dead_lettered += 1
        logger.info(
            "trigger %s: message dead after %d attempt(s): %s",
            trigger.name,
            len(errors),
            errors[-1].type,
        )
        return True
