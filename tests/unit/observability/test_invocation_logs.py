"""The invocation-log batcher: batches by size or age, bounded buffer, store failures, close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from nova.core.models import InvocationLog
from nova.observability.invocation_logs import InvocationLogBatcher


def record(number: int) -> InvocationLog:
    return InvocationLog(
        id=f"r{number}",
        function_id="fn-id",
        function_name="fn",
        runtime="python",
        version="1",
        qualifier="",
        duration_ms=0.1,
        total_ms=0.2,
        cold_start=False,
        success=True,
        error_type=None,
        error_message=None,
        input_size=2,
        output_size=2,
        stdout="",
        stderr="",
        created_at=datetime.now(UTC),
    )


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing = False
        self.gate: asyncio.Event | None = None  # when set, add_many waits for it

    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("store down")
        self.batches.append([log.id for log in logs])


def batcher(
    sink: Sink, *, batch: int = 3, buffer: int = 100, interval_s: float = 60
) -> InvocationLogBatcher:
    made = InvocationLogBatcher(sink, batch, buffer, interval_s, write_timeout_s=5)
    made.start()
    return made


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_full_batch_is_written_at_once() -> None:
    sink = Sink()
    logs = batcher(sink, batch=3, interval_s=60)

    for number in range(7):
        logs.submit(record(number))
    await settle()

    assert sink.batches == [["r0", "r1", "r2"], ["r3", "r4", "r5"]]  # r6 waits for its interval
    await logs.close()
    assert sink.batches[-1] == ["r6"]
    assert logs.written == 7


async def test_a_partial_batch_is_written_after_the_interval() -> None:
    sink = Sink()
    logs = batcher(sink, batch=100, interval_s=0.05)

    logs.submit(record(1))
    logs.submit(record(2))
    await settle()
    assert sink.batches == []
    await asyncio.sleep(0.2)

    assert sink.batches == [["r1", "r2"]]
    logs.submit(record(3))
    await asyncio.sleep(0.2)
    assert sink.batches == [["r1", "r2"], ["r3"]]
    await logs.close()


async def test_records_beyond_the_buffer_are_dropped_and_counted() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()  # the store is slow: the first batch is stuck in add_many
    logs = batcher(sink, batch=2, buffer=3)

    for number in range(10):
        logs.submit(record(number))
        await settle()

    # r0, r1 are being written; r2-r4 fill the buffer; the other five are dropped.
    assert logs.dropped == 5
    sink.gate.set()
    await logs.close()
    assert [log for batch in sink.batches for log in batch] == ["r0", "r1", "r2", "r3", "r4"]
    assert logs.written == 5


async def test_a_failing_store_drops_that_batch_and_later_batches_still_land() -> None:
    sink = Sink()
    logs = batcher(sink, batch=2)
    sink.failing = True
    logs.submit(record(1))
    logs.submit(record(2))
    await settle()
    sink.failing = False
    logs.submit(record(3))
    logs.submit(record(4))
    await settle()

    assert logs.dropped == 2
    assert sink.batches == [["r3", "r4"]]
    await logs.close()


async def test_close_retries_the_batch_that_was_being_written() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    logs = batcher(sink, batch=2)
    logs.submit(record(1))
    logs.submit(record(2))
    logs.submit(record(3))
    await settle()  # r1, r2 are inside add_many, which close() cancels

    sink.gate.set()
    await logs.close()

    assert sink.batches == [["r1", "r2"], ["r3"]]
    assert logs.written == 3
