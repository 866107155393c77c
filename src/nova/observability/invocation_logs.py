"""Invocation logs written in batches (seed 003: 100 records or 500 ms, whichever comes first).

The invoke path only appends to a bounded buffer; one background task writes batches. When the
store is slower than the traffic the buffer fills and new records are dropped *and counted*
(``dropped``) instead of slowing invocations down or growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from nova.core.models import InvocationLog

logger = logging.getLogger(__name__)


class InvocationLogSink(Protocol):
    async def add_many(self, logs: Sequence[InvocationLog]) -> None: ...


class InvocationLogBatcher:
    def __init__(
        self,
        sink: InvocationLogSink,
        batch_size: int,
        buffer_size: int,
        flush_interval_s: float,
        write_timeout_s: float,
    ) -> None:
        self._sink = sink
        self._batch_size = batch_size
        self._buffer_size = buffer_size
        self._flush_interval_s = flush_interval_s
        self._write_timeout_s = write_timeout_s
        # A plain list and two events rather than an asyncio.Queue: a queue wakes the writer
        # for every record (a task step and a timer per invocation); this wakes it once for
        # the first record of a batch and once when the batch is full.
        self._pending: list[InvocationLog] = []
        self._nonempty = asyncio.Event()
        self._full = asyncio.Event()
        self._writing: list[InvocationLog] = []  # kept until written, so close() can retry it
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="invocation-log-writer")

    def submit(self, log: InvocationLog) -> None:
        pending = self._pending
        if len(pending) >= self._buffer_size:
            self.dropped += 1
            return
        pending.append(log)
        if len(pending) == 1:
            self._nonempty.set()
        if len(pending) == self._batch_size:
            self._full.set()

    async def _run(self) -> None:
        while True:
            await self._nonempty.wait()
            if len(self._pending) < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the
                    # cancellation close() sends if the event is set at the same moment.
                    async with asyncio.timeout(self._flush_interval_s):
                        await self._full.wait()
            self._writing = self._take_batch()
            await self._write(self._writing)
            self._writing = []

    def _take_batch(self) -> list[InvocationLog]:
        pending, size = self._pending, self._batch_size
        batch = pending[:size]
        del pending[:size]
        if not pending:
            self._nonempty.clear()
        if len(pending) < size:
            self._full.clear()
        return batch

    async def _write(self, batch: list[InvocationLog]) -> None:
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self._sink.add_many(batch)
            self.written += len(batch)
        except Exception as exc:  # the store being down must not stop later batches
            self.dropped += len(batch)
            logger.warning("dropped %d invocation log record(s): %s", len(batch), exc)

    async def close(self) -> None:
        """Stop the writer and flush everything still buffered.

        A batch the writer was in the middle of is written again: add_many skips ids already
        stored, so a batch whose commit did land is not duplicated.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        remaining = self._writing + self._pending
        self._writing, self._pending = [], []
        for start in range(0, len(remaining), self._batch_size):
            await self._write(remaining[start : start + self._batch_size])
