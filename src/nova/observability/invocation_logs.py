"""Invocation logs written in batches (seed 003: 100 records or 500 ms, whichever comes first).

The invoke path only appends to a bounded queue; one background task writes batches. When the
store is slower than the traffic the queue fills and new records are dropped *and counted*
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
        self._flush_interval_s = flush_interval_s
        self._write_timeout_s = write_timeout_s
        self._queue: asyncio.Queue[InvocationLog] = asyncio.Queue(maxsize=buffer_size)
        self._task: asyncio.Task[None] | None = None
        self._collecting: list[InvocationLog] = []
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="invocation-log-writer")

    def submit(self, log: InvocationLog) -> None:
        try:
            self._queue.put_nowait(log)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        while True:
            # Held on self so close() can flush a batch that was being collected when cancelled.
            self._collecting = batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self._flush_interval_s
            while len(batch) < self._batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the
                    # cancellation close() sends if an item arrives at the same moment.
                    async with asyncio.timeout(remaining):
                        batch.append(await self._queue.get())
                except TimeoutError:
                    break
            self._collecting = []
            await self._write(batch)

    async def _write(self, batch: list[InvocationLog]) -> None:
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self._sink.add_many(batch)
            self.written += len(batch)
        except Exception as exc:  # the store being down must not stop later batches
            self.dropped += len(batch)
            logger.warning("dropped %d invocation log record(s): %s", len(batch), exc)

    async def close(self) -> None:
        """Stop the writer and flush everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        remaining, self._collecting = self._collecting, []
        while not self._queue.empty():
            remaining.append(self._queue.get_nowait())
        for start in range(0, len(remaining), self._batch_size):
            await self._write(remaining[start : start + self._batch_size])
