"""The worker that runs stored asynchronous events: claim under a lease, invoke, settle.

One loop claims due events while this daemon has room (``events.concurrency`` at once, and per
function no more than its instances can run: ``max_replicas * instance_concurrency``, so async
work never fills a pool's wait queue ahead of synchronous callers). Each claimed event runs in
its own task; a heartbeat renews the leases of every event held, every third of
``events.lease_s``, so only a worker that stopped (crashed, lost the store) loses them. A
settled event is one store write: succeeded, retried later, or dead - with its destination's
event in the same transaction.

Order: events are claimed oldest-due first, but run concurrently and retried after a backoff,
so no order between events is kept, not even for one function.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson

from nova.core import ids
from nova.core.counters import DaemonCounters
from nova.core.errors import (
    AliasNotFound,
    FunctionNotFound,
    NovaError,
    ShuttingDown,
    TooManyRequests,
    VersionNotFound,
)
from nova.core.events import AsyncEvent, AttemptError, NewEvent
from nova.core.models import FunctionConfig
from nova.core.periodic import Periodic
from nova.events.destinations import Destination
from nova.events.invocations import Signals
from nova.events.policy import RetryPolicy
from nova.executor.result import InvocationResult
from nova.store.ports import EventQueue

logger = logging.getLogger(__name__)

_MISSING = (FunctionNotFound, VersionNotFound, AliasNotFound)


class Invoker(Protocol):
    """The executor, as the worker uses it."""

    async def invoke(
        self,
        name: str,
        event: bytes,
        *,
        qualifier: str | None = None,
        routing_key: str | None = None,
        request_id: str | None = None,
        trace_parent: str | None = None,
    ) -> InvocationResult: ...


# The config of what ``name[:qualifier]`` runs now (its retry policy, destinations, scaling).
ConfigOf = Callable[[str, str | None], Awaitable[FunctionConfig]]


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    concurrency: int  # events run at once by this daemon
    lease_s: float
    poll_s: float  # how often the store is asked when nothing woke the worker
    retention_s: float  # succeeded events are deleted this long after finishing (0: kept)
    retention_interval_s: float = 3600.0


class AsyncWorker:
    def __init__(
        self,
        queue: EventQueue,
        invoker: Invoker,
        config_of: ConfigOf,
        signals: Signals,
        limits: WorkerLimits,
        counters: DaemonCounters,
        is_closing: Callable[[], bool] = lambda: False,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._invoker = invoker
        self._config_of = config_of
        self._signals = signals
        self._limits = limits
        self._counters = counters
        self._is_closing = is_closing
        self._rng = rng or random.Random()
        self.owner = f"worker-{ids.request_id()}"
        self._held: dict[str, asyncio.Task[None]] = {}
        self._per_function: collections.Counter[str] = collections.Counter()  # claimed
        self._active: collections.Counter[str] = collections.Counter()  # invoking now
        self._caps: dict[str, int] = {}
        self._room = asyncio.Condition()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat = Periodic(
            "async-lease-heartbeat",
            limits.lease_s / 3,
            self._extend_leases,
            logger,
            "cannot renew the leases of running async events",
        )
        self._retention = Periodic(
            "async-event-retention",
            limits.retention_interval_s,
            self.delete_old,
            logger,
            "cannot delete old async events",
        )
        self._stopping = False

    @property
    def running(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._claim_loop(), name="async-worker")
        self._heartbeat.start()
        if self._limits.retention_s > 0:
            self._retention.start()

    async def close(self, timeout_s: float) -> None:
        """Stop claiming and wait up to ``timeout_s`` for the events running now; those still
        running after it keep their leases, which expire, and run again elsewhere or later."""
        self._stopping = True
        self._signals.submitted.set()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        tasks = list(self._held.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._heartbeat.close()
        await self._retention.close()

    async def _claim_loop(self) -> None:
        submitted = self._signals.submitted
        while not self._stopping:
            submitted.clear()
            full = await self.claim_once()
            if full:
                continue  # a full batch: more may be due now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(submitted.wait(), self._limits.poll_s)

    async def claim_once(self) -> bool:
        """Claim what this daemon has room for and start running it; True when the claim
        filled all the room (more events may be due)."""
        room = self._limits.concurrency - len(self._held)
        if room <= 0 or self._is_closing():
            await self._wait_for_room()
            return False
        saturated = [name for name, count in self._per_function.items() if count >= self._cap(name)]
        try:
            events = await self._queue.claim(self.owner, room, self._limits.lease_s, saturated)
        except NovaError as exc:
            logger.warning("cannot claim async events: %s", exc.message)
            return False
        for event in events:
            self._per_function[event.function] += 1
            self._held[event.id] = asyncio.create_task(self._run(event), name=f"async-{event.id}")
        return len(events) == room

    async def _wait_for_room(self) -> None:
        async with self._room:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), self._limits.poll_s)

    def _cap(self, function: str) -> int:
        return self._caps.get(function, self._limits.concurrency)

    @contextlib.asynccontextmanager
    async def _slot(self, function: str) -> AsyncIterator[None]:
        """Run at most the function's cap of its events at once; the others wait here (their
        leases renewed) rather than in the pool's queue, where they would time out."""
        async with self._room:
            await self._room.wait_for(lambda: self._active[function] < self._cap(function))
            self._active[function] += 1
        try:
            yield
        finally:
            self._active[function] -= 1
            if self._active[function] <= 0:
                del self._active[function]
            async with self._room:
                self._room.notify_all()

    async def _extend_leases(self) -> None:
        await self._queue.extend(self.owner, list(self._held), self._limits.lease_s)

    async def delete_old(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._limits.retention_s)
        total = 0
        while (deleted := await self._queue.delete_finished_before(cutoff, 1000)) > 0:
            total += deleted
        return total

    async def _run(self, event: AsyncEvent) -> None:
        try:
            await self._settle(event)
        except NovaError as exc:
            # The store is away: the lease expires and the event runs again.
            logger.warning("async event %s not settled: %s", event.id, exc.message)
        except Exception:
            logger.exception("async event %s failed in the worker", event.id)
        finally:
            del self._held[event.id]
            self._per_function[event.function] -= 1
            if self._per_function[event.function] <= 0:
                del self._per_function[event.function]
            self._signals.finished(event.id)
            async with self._room:
                self._room.notify_all()
            self._signals.submitted.set()  # room for another claim

    async def _settle(self, event: AsyncEvent) -> None:
        qualifier = event.qualifier or None
        try:
            config = await self._config_of(event.function, qualifier)
        except _MISSING as exc:
            await self._bury_missing(event, exc)
            return
        self._caps[event.function] = config.max_replicas * config.instance_concurrency
        policy = RetryPolicy.of(config)
        age_s = (datetime.now(UTC) - event.created_at).total_seconds()
        if age_s > policy.max_age_s:
            error = self._error(
                event,
                "Event.Expired",
                f"the event waited {age_s:.0f}s, over the function's async_max_age_s "
                f"({policy.max_age_s:g}s)",
            )
            await self._bury(event, config, error, None, "EventAgeExceeded")
            return
        try:
            async with self._slot(event.function):
                result = await self._invoker.invoke(
                    event.function, event.payload, qualifier=qualifier, request_id=event.id
                )
        except ShuttingDown:
            await self._queue.release(event.id, self.owner)
            return
        except _MISSING as exc:
            await self._bury_missing(event, exc)
            return
        except TooManyRequests as exc:
            await self._failed(event, config, policy, self._error(event, exc.code, exc.message))
            return
        except NovaError as exc:  # the sandbox would not start, the store was away, ...
            await self._failed(event, config, policy, self._error(event, exc.code, exc.message))
            return
        response = result.to_response()
        body = orjson.dumps(response)
        if result.error is None:
            follow_up = self._follow_up(config.on_success, event, "Success", response)
            if await self._queue.succeed(event.id, self.owner, body, follow_up):
                self._counters.async_succeeded += 1
            return
        error = self._error(event, result.error.type, result.error.message)
        await self._failed(event, config, policy, error, body, response)

    async def _failed(
        self,
        event: AsyncEvent,
        config: FunctionConfig,
        policy: RetryPolicy,
        error: AttemptError,
        body: bytes | None = None,
        response: dict[str, object] | None = None,
    ) -> None:
        rule = policy.rule(error.type)
        delay_s = rule.delay_s(event.attempts, self._rng)
        next_at = datetime.now(UTC) + timedelta(seconds=delay_s)
        too_old = (next_at - event.created_at).total_seconds() > policy.max_age_s
        if event.attempts < rule.attempts and not too_old:
            if await self._queue.retry(event.id, self.owner, error, body or b"null", next_at):
                self._counters.async_retries += 1
            return
        condition = "RetriesExhausted" if not too_old else "EventAgeExceeded"
        await self._bury(event, config, error, body, condition, response)

    async def _bury(
        self,
        event: AsyncEvent,
        config: FunctionConfig | None,
        error: AttemptError,
        body: bytes | None,
        condition: str,
        response: dict[str, object] | None = None,
    ) -> None:
        target = config.on_failure if config is not None else ""
        if response is None:
            response = {"error": {"type": error.type, "message": error.message, "stack": []}}
        follow_up = self._follow_up(target, event, condition, response)
        if await self._queue.bury(event.id, self.owner, error, body, follow_up):
            self._counters.async_dead_lettered += 1
            logger.info(
                "async event %s of %s dead after %d attempt(s): %s",
                event.id,
                event.function,
                event.attempts,
                error.type,
            )

    async def _bury_missing(self, event: AsyncEvent, exc: NovaError) -> None:
        error = self._error(event, exc.code, exc.message)
        await self._bury(event, None, error, None, "FunctionMissing")

    @staticmethod
    def _follow_up(
        target: str, event: AsyncEvent, condition: str, response: dict[str, object]
    ) -> NewEvent | None:
        destination = Destination.parse("destination", target) if target else None
        return destination.event(event, condition, response) if destination else None

    @staticmethod
    def _error(event: AsyncEvent, error_type: str, message: str) -> AttemptError:
        return AttemptError(event.attempts, error_type, message, datetime.now(UTC))
