"""Invocation logs written in batches (seed 003: 100 records or 500 ms, whichever comes first),
and never lost on the way.

The invoke path only appends each record to a list. One scheduler task turns that list into
store writes; what the store cannot take right now goes to a local spool and comes back later:

- **batches**: a batch is due when ``batch_size`` records wait or the oldest has waited
  ``flush_interval_s``; it takes whatever waits, up to ten batches' worth, so a backlog is
  written in fewer, larger transactions. Up to two batches are in flight at once (the SQLite
  writer reads the second while committing the first, and writes without its pauses then).
- **spill**: records beyond ``buffer_size`` in memory, and every due batch while the store is
  failing, are appended to the spool (:mod:`nova.observability.log_spool`), fsync'ed.
- **replay**: one spooled frame at a time is written to the store alongside the live batches,
  then acknowledged. A store that failed is probed every ``retry_interval_s`` with one write.
- **backpressure**: only when the buffer is full *and* the spool refuses records (disk full,
  over its limit, unwritable) does ``submit`` tell the caller to ``await room()``; after
  ``wait_timeout_s`` the records beyond the buffer are dropped, counted and logged (WARNING).

A write that fails with ``ValueError``/``TypeError`` was refused for its content, not because
the store is away: it is split in halves until the refused records stand alone, and those are
dropped with a WARNING, so one bad record cannot hold every other record back forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nova.core.models import InvocationLog
from nova.observability.log_spool import LogSpool

logger = logging.getLogger(__name__)

_MAX_WRITES = 2  # live batches in flight to the store
_BACKLOG_BATCHES = 10  # a batch taken from a backlog holds up to this many batch sizes
_DROP_REPORT_S = 1.0  # drops are logged at most this often, summed


class InvocationLogSink(Protocol):
    async def add_many(self, logs: Sequence[InvocationLog]) -> None: ...


@dataclass(frozen=True, slots=True)
class LogLimits:
    batch_size: int
    buffer_size: int  # records in memory before they spill to the spool
    flush_interval_s: float
    write_timeout_s: float  # a store write that takes longer is given up and spooled
    retry_interval_s: float  # how often a failing store (or spool) is tried again
    wait_timeout_s: float  # how long submit's caller waits for room before records drop


@dataclass(frozen=True, slots=True)
class LogStats:
    written: int  # records the store took from memory
    spooled: int  # records appended to the spool
    replayed: int  # spooled records the store took since
    dropped: int  # records lost (each drop logged at WARNING)
    backlog: int  # records not in the store yet: in memory, in flight, in the spool
    spool_bytes: int
    store_ok: bool  # the last store write worked
    spool_ok: bool  # the last spool append worked
    batches_written: int = 0  # store writes that succeeded
    batches_failed: int = 0  # store writes that failed or timed out (their records were kept)
    batch_write_seconds: float = 0.0  # the time the successful writes took, in all


class InvocationLogBatcher:
    def __init__(self, sink: InvocationLogSink, spool: LogSpool, limits: LogLimits) -> None:
        self._sink = sink
        self._spool = spool
        self._limits = limits
        self._batch_size = limits.batch_size
        self._buffer_size = limits.buffer_size
        self._max_batch = limits.batch_size * _BACKLOG_BATCHES
        # A plain list and one event rather than an asyncio.Queue: a queue wakes the scheduler
        # for every record (a task step and a timer per invocation); this wakes it for the
        # first record, a full batch and a full buffer only.
        self._pending: list[InvocationLog] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._batch_due: float | None = None
        self._writes = 0
        self._in_flight = 0  # records taken from memory and not settled yet
        self._spilling = self._replaying = False
        self._spool_open = False
        self._opening = asyncio.Lock()  # one open at a time: a second flock would fail
        self._spool_refused = False  # read by submit: backpressure applies only then
        self._spool_retry_at = 0.0
        self._spool_backlog = 0
        self._replay_retry_at = 0.0
        self._store_failed = False
        self._store_retry_at = 0.0
        self._unreported_drops = 0
        self._drops_reported_at = 0.0
        self._last_drop_reason = ""
        self.written = self.spooled = self.replayed = self.dropped = 0
        self.batches_written = self.batches_failed = 0
        self.batch_write_seconds = 0.0

    async def start(self) -> None:
        """Open the spool (counting what an earlier run left there to replay), then start."""
        await self._open_spool()
        self._task = asyncio.create_task(self._run(), name="invocation-log-writer")

    def submit(self, log: InvocationLog) -> bool:
        """Queue ``log``. True means the buffer is full and the spool refuses records: the
        caller should ``await room()`` before answering (the only backpressure)."""
        pending = self._pending
        pending.append(log)
        size = len(pending)
        if size == 1 or size == self._batch_size or size == self._buffer_size:
            self._wake.set()
        return size >= self._buffer_size and self._spool_refused

    async def room(self) -> None:
        """Wait until the buffer has room again, at most ``wait_timeout_s``; then drop what is
        beyond it (logged), so memory stays bounded even with the store and the disk gone."""
        try:
            async with asyncio.timeout(self._limits.wait_timeout_s):
                while self._full():
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            pending = self._pending
            excess = min(len(pending), len(pending) + self._in_flight - self._buffer_size)
            if excess > 0:
                del pending[len(pending) - excess :]  # the newest
                self._drop(excess, "the store is unreachable and the spool refuses records")

    def stats(self) -> LogStats:
        return LogStats(
            written=self.written,
            spooled=self.spooled,
            replayed=self.replayed,
            dropped=self.dropped,
            backlog=len(self._pending) + self._in_flight + self._spool_backlog,
            spool_bytes=self._spool.bytes,
            store_ok=not self._store_failed,
            batches_written=self.batches_written,
            batches_failed=self.batches_failed,
            batch_write_seconds=self.batch_write_seconds,
            spool_ok=not self._spool_refused,
        )

    def _full(self) -> bool:
        # In-flight records count: a failed write puts them back.
        in_memory = len(self._pending) + self._in_flight
        return in_memory >= self._buffer_size and self._spool_refused

    # -- scheduling ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            delay = self._dispatch(loop.time())
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancellation
                # close() sends if the event is set at the same moment.
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _dispatch(self, now: float) -> float | None:
        """Start the work that can start now; the seconds until something is due (None: wait
        for a wake-up)."""
        pending, limits = self._pending, self._limits
        if not pending:
            self._batch_due = None
        elif self._batch_due is None:
            self._batch_due = now + limits.flush_interval_s
        batch_due = self._batch_due
        due = batch_due is not None and (len(pending) >= self._batch_size or now >= batch_due)
        store_waits = self._store_failed and now < self._store_retry_at
        if (
            pending
            and not self._spilling
            and now >= self._spool_retry_at
            and (len(pending) >= self._buffer_size or (due and store_waits))
        ):
            self._spilling = True
            self._spawn(self._spill(self._take(len(pending))))
            due = False
        replay = bool(self._spool_backlog) and not self._replaying and now >= self._replay_retry_at
        if self._store_failed and not store_waits:
            # One write probes a failing store (a spooled frame if there is one); the rest
            # waits for its answer, spooled meanwhile.
            if replay or (due and self._writes < _MAX_WRITES):
                self._store_retry_at = now + limits.retry_interval_s
                if replay:
                    self._start_replay()
                else:
                    self._start_delivery()
        elif not store_waits:
            if replay:
                self._start_replay()
            while due and self._writes < _MAX_WRITES:
                self._start_delivery()
                due = len(pending) >= self._batch_size
        if not self._full():
            self._room.set()
        if self._unreported_drops and now >= self._drops_reported_at + _DROP_REPORT_S:
            self._report_drops()
        return self._next_deadline(now)

    def _start_delivery(self) -> None:
        self._writes += 1
        self._spawn(self._deliver(self._take(self._max_batch)))

    def _start_replay(self) -> None:
        self._replaying = True
        self._spawn(self._replay())

    def _next_deadline(self, now: float) -> float | None:
        """The nearest time something becomes due. Work that is due already but could not
        start waits for a wake-up instead: each finished write or spill sends one."""
        deadlines = [
            self._batch_due if self._pending else None,
            self._store_retry_at if self._store_failed else None,
            self._spool_retry_at if self._spool_refused else None,
            self._replay_retry_at if self._spool_backlog else None,
            self._drops_reported_at + _DROP_REPORT_S if self._unreported_drops else None,
        ]
        future = [deadline for deadline in deadlines if deadline is not None and deadline > now]
        return min(future) - now if future else None

    def _take(self, limit: int) -> list[InvocationLog]:
        pending = self._pending
        batch = pending[:limit]
        del pending[:limit]
        self._in_flight += len(batch)
        if not pending:
            self._batch_due = None
        return batch

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._workers.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("invocation-log task failed", exc_info=task.exception())

    # -- the work --------------------------------------------------------------------------------

    async def _deliver(self, batch: list[InvocationLog]) -> None:
        try:
            stored = await self._store(batch)
            if stored is not None:
                self.written += stored
            elif not await self._append(batch):
                self._pending[0:0] = batch  # neither took it: back to memory, oldest first
        finally:
            self._writes -= 1
            self._in_flight -= len(batch)

    async def _spill(self, records: list[InvocationLog]) -> None:
        try:
            if not await self._append(records):
                self._pending[0:0] = records
        finally:
            self._spilling = False
            self._in_flight -= len(records)

    async def _replay(self) -> None:
        try:
            try:
                frame = await asyncio.to_thread(self._spool.peek)
            except OSError as exc:
                logger.warning("invocation logs: cannot read the spool: %s", exc)
                self._replay_retry_at = _now() + self._limits.retry_interval_s
                return
            if frame is None:
                self._spool_backlog = 0
                return
            if frame.error is not None:
                self._drop(
                    frame.count, f"{frame.segment} holds records Nova cannot read: {frame.error}"
                )
            else:
                stored = await self._store(frame.records)
                if stored is None:
                    return
                self.replayed += stored
            self._spool.ack(frame)
            self._spool_backlog = max(0, self._spool_backlog - frame.count)
        finally:
            self._replaying = False

    async def _store(self, batch: Sequence[InvocationLog]) -> int | None:
        """Write ``batch``; how many records the store took, or None when it failed (then the
        batch is still to be written)."""
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.write_timeout_s):
                await self._sink.add_many(batch)
        except (ValueError, TypeError) as exc:
            if len(batch) == 1:
                self._drop(1, f"the store refused record {batch[0].id}: {exc}")
                return 0
            half = len(batch) // 2
            first = await self._store(batch[:half])
            second = await self._store(batch[half:]) if first is not None else None
            return None if second is None or first is None else first + second
        except Exception as exc:  # whatever the driver raised, the store is not taking writes
            self.batches_failed += 1
            self._store_failing(exc)
            return None
        self.batches_written += 1
        self.batch_write_seconds += time.perf_counter() - began
        if self._store_failed:
            self._store_failed = False
            logger.info(
                "invocation logs: the store takes writes again; %d spooled record(s) to replay",
                self._spool_backlog,
            )
        return len(batch)

    async def _append(self, records: list[InvocationLog]) -> bool:
        """Spool ``records``; False when the spool refused them (they are still to be written)."""
        try:
            if not self._spool_open:
                await self._open_spool()
            if self._spool_open:
                await asyncio.to_thread(self._spool.append, records, self._max_batch)
        except Exception as exc:  # SpoolError, or whatever the disk raised
            self._spool_failing(exc)
            return False
        if not self._spool_open:
            return False
        self.spooled += len(records)
        self._spool_backlog += len(records)
        if self._spool_refused:
            self._spool_refused = False
            logger.info(
                "invocation logs: the spool at %s takes records again", self._spool.directory
            )
        return True

    async def _open_spool(self) -> None:
        async with self._opening:
            if self._spool_open:
                return
            try:
                found = await asyncio.to_thread(self._spool.open)
            except Exception as exc:
                self._spool_failing(exc)
                return
            self._spool_open = True
        self._spool_backlog += found
        if found:
            logger.info(
                "invocation logs: replaying %d record(s) spooled in %s by an earlier run",
                found,
                self._spool.directory,
            )

    def _store_failing(self, exc: BaseException) -> None:
        if not self._store_failed:
            logger.warning(
                "invocation logs: the store did not take a batch (%s); spooling records to %s "
                "and trying again every %gs",
                str(exc) or type(exc).__name__,
                self._spool.directory,
                self._limits.retry_interval_s,
            )
        self._store_failed = True
        self._store_retry_at = _now() + self._limits.retry_interval_s

    def _spool_failing(self, exc: BaseException) -> None:
        if not self._spool_refused:
            logger.warning(
                "invocation logs: the spool refuses records (%s); they wait in memory, and "
                "invocations wait for room once %d are waiting",
                exc,
                self._buffer_size,
            )
        self._spool_refused = True
        self._spool_retry_at = _now() + self._limits.retry_interval_s

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        self._unreported_drops += count
        self._last_drop_reason = reason
        if _now() >= self._drops_reported_at + _DROP_REPORT_S:
            self._report_drops()

    def _report_drops(self) -> None:
        logger.warning(
            "dropped %d invocation log record(s): %s (%d dropped since start)",
            self._unreported_drops,
            self._last_drop_reason,
            self.dropped,
        )
        self._unreported_drops = 0
        self._drops_reported_at = _now()

    # -- shutdown --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop, after writing what is in memory: to the store unless it is failing, else to
        the spool (replayed at the next start), else dropped and logged. Writes in flight
        finish first (each is bounded by ``write_timeout_s``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        remaining, self._pending = self._pending, []
        start = 0
        while start < len(remaining) and not self._store_failed:
            batch = remaining[start : start + self._max_batch]
            stored = await self._store(batch)
            if stored is None:
                break
            self.written += stored
            start += len(batch)
        rest = remaining[start:]
        if rest and not await self._append(rest):
            self._drop(len(rest), "the store and the spool both refused them at shutdown")
        if self._unreported_drops:
            self._report_drops()
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._spool.close)


def _now() -> float:
    return asyncio.get_running_loop().time()  # the clock _dispatch compares with
