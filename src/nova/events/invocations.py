"""The submit side of asynchronous invocation, and what callers may ask about an event.

Sources of asynchronous events (the invoke API with ``X-Nova-Invocation-Type: Event``, cron)
hand them to :meth:`AsyncInvocations.submit`, which returns once the event is durably stored.
Queue triggers run their messages themselves (nova.triggers) and store only those that failed
every attempt, with :meth:`AsyncInvocations.bury`. The outcome is read with
:meth:`AsyncInvocations.get`, or awaited with :meth:`AsyncInvocations.wait`::

    request_id = await invocations.submit("resize", None, b'{"key": "a.png"}',
                                          idempotency_key="a.png", source="queue:uploads")
    event = await invocations.wait(request_id, timeout_s=60)
    if event.status is EventStatus.SUCCEEDED: ...  # event.result: the invoke response JSON
    elif event.status is EventStatus.DEAD: ...     # event.errors: one entry per failed attempt

An event runs at least once: a worker that dies mid-run leaves it to be run again when its
lease expires. An idempotency key (per function) makes submitting the same event again return
the first submit's request id without storing anything, so a source that redelivers (a broker,
a client retrying after a lost 202) still runs the event once. A message that cannot be an
event at all (not JSON) goes to the dead letters with its reason through :meth:`reject`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import orjson

from nova.core import ids
from nova.core.counters import DaemonCounters
from nova.core.errors import PayloadTooLarge, RequestInvalid
from nova.core.events import AsyncEvent, AttemptError, EventFilter, NewEvent, QueueStats
from nova.core.models import Page
from nova.store.ports import DEFAULT_PAGE_LIMIT, EventQueue

MAX_IDEMPOTENCY_KEY = 256
MAX_SOURCE = 256

# Checks that ``name[:qualifier]`` can be invoked (FunctionNotFound, VersionNotFound, ...).
Check = Callable[[str, str | None], Awaitable[object]]


class Signals:
    """Wake-ups between submitters, workers and waiters in this daemon. Another daemon's events
    are found by polling; these only make this daemon's own ones quicker."""

    def __init__(self) -> None:
        self.submitted = asyncio.Event()
        self._finished: dict[str, list[asyncio.Future[None]]] = {}

    def finished(self, event_id: str) -> None:
        for future in self._finished.pop(event_id, ()):
            if not future.done():
                future.set_result(None)

    async def wait_finished(self, event_id: str, timeout_s: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finished.setdefault(event_id, []).append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            pass
        finally:
            waiting = self._finished.get(event_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._finished[event_id]


class AsyncInvocations:
    def __init__(
        self,
        queue: EventQueue,
        check: Check,
        max_payload_bytes: int,
        counters: DaemonCounters,
        poll_s: float = 0.5,
    ) -> None:
        self._queue = queue
        self._check = check
        self._max_payload_bytes = max_payload_bytes
        self._counters = counters
        self._poll_s = poll_s
        self.signals = Signals()

    async def submit(
        self,
        function: str,
        qualifier: str | None,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        source: str = "api",
        request_id: str | None = None,
    ) -> str:
        """Store an event for ``function[:qualifier]`` and return its request id.

        ``payload`` must be JSON (it is passed to the function unparsed). Raises
        ``PayloadTooLarge`` over ``daemon.max_payload_bytes``, ``RequestInvalid`` for a bad
        key or source, the not-found errors of an unknown function, version or alias, and
        ``StoreUnavailable`` when the event could not be stored (then nothing was accepted).
        With an ``idempotency_key`` the function already has, nothing is stored and the first
        submit's request id is returned.
        """
        if len(payload) > self._max_payload_bytes:
            raise PayloadTooLarge(
                f"the event is {len(payload)} bytes, over the {self._max_payload_bytes}-byte "
                "limit; send large data by reference (e.g. a URL) or raise "
                "daemon.max_payload_bytes"
            )
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise RequestInvalid(f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        if not 0 < len(source) <= MAX_SOURCE:
            raise RequestInvalid(f"source: must be 1 to {MAX_SOURCE} characters")
        await self._check(function, qualifier)
        event = NewEvent(
            id=request_id or ids.request_id(),
            function=function,
            qualifier=qualifier or "",
            payload=payload,
            idempotency_key=idempotency_key,
            source=source,
        )
        stored_id, created = await self._queue.submit(event)
        if created:
            self._counters.async_accepted += 1
            self.signals.submitted.set()
        return stored_id

    async def reject(
        self,
        function: str,
        qualifier: str | None,
        body: bytes,
        error_type: str,
        reason: str,
        *,
        source: str,
        idempotency_key: str | None = None,
    ) -> str:
        """Store an event that cannot run as it came (a broker message that is not JSON, say)
        straight in the dead letters, with ``error_type`` and ``reason``, and return its
        request id: the source can acknowledge it, and an operator sees why it did not run.
        The payload kept is ``body`` as a JSON string (undecodable bytes replaced), which a
        replay passes to the function."""
        payload = orjson.dumps(body[: self._max_payload_bytes].decode("utf-8", "replace"))
        error = AttemptError(0, error_type, reason, datetime.now(UTC))
        return await self.bury(
            function, qualifier, payload, [error], source=source, idempotency_key=idempotency_key
        )

    async def bury(
        self,
        function: str,
        qualifier: str | None,
        payload: bytes,
        errors: Sequence[AttemptError],
        *,
        source: str,
        idempotency_key: str | None = None,
    ) -> str:
        """Store an event that a source already ran and gave up on (a queue trigger, after its
        retry policy's attempts) in the dead letters with ``errors``, one per attempt, and
        return its request id; a replay runs it through this queue. With an
        ``idempotency_key`` stored before (a redelivered message), nothing new is stored."""
        event = NewEvent(
            id=ids.request_id(),
            function=function,
            qualifier=qualifier or "",
            payload=payload,
            idempotency_key=idempotency_key,
            source=source,
        )
        stored_id, created = await self._queue.submit(event, dead=errors)
        if created:
            self._counters.async_dead_lettered += 1
        return stored_id

    async def get(self, request_id: str) -> AsyncEvent:
        """The event as stored now; ``InvocationNotFound`` if there is none."""
        return await self._queue.get(request_id)

    async def wait(self, request_id: str, timeout_s: float) -> AsyncEvent:
        """The event once finished (succeeded or dead), or as it is after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            event = await self._queue.get(request_id)
            left = deadline - time.monotonic()
            if event.status.finished or left <= 0:
                return event
            await self.signals.wait_finished(request_id, min(left, self._poll_s))

    async def dead_letters(
        self,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[AsyncEvent]:
        return await self._queue.dead_letters(function=function, limit=limit, cursor=cursor)

    async def replay(self, selection: EventFilter) -> int:
        """Run the selected dead letters again, from a fresh attempt count."""
        count = await self._queue.replay(selection)
        if count:
            self.signals.submitted.set()
        return count

    async def purge(self, selection: EventFilter) -> int:
        return await self._queue.purge(selection)

    async def stats(self) -> QueueStats:
        return await self._queue.stats(datetime.now(UTC))
