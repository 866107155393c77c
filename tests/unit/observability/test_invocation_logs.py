"""The invocation-log batcher: batches by size or age, spill to the spool when the store is slow
or away, replay, refused records, backpressure, close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from nova.core.models import InvocationLog
from nova.observability.invocation_logs import InvocationLogBatcher, LogLimits
from nova.observability.log_spool import LogSpool

from .test_log_spool import record, records


class Sink:
    """A store: ``down`` makes writes fail, ``gate`` holds them until set, ``refused`` ids are
    rejected as bad content (ValueError)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.down = False
        self.gate: asyncio.Event | None = None
        self.refused: set[str] = set()

    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionRefusedError("store down")
        if refused := self.refused & {log.id for log in logs}:
            raise ValueError(f"invalid byte sequence in {sorted(refused)}")
        self.batches.append([log.id for log in logs])

    def ids(self) -> list[str]:
        return [log_id for batch in self.batches for log_id in batch]


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.sink = Sink()
        self.spool_dir = tmp_path / "spool"
        self._tmp_path = tmp_path
        self.made: list[InvocationLogBatcher] = []

    def unusable_spool_dir(self) -> Path:
        """A spool directory that cannot be created (its parent is a file): refused."""
        parent = self._tmp_path / "file"
        parent.write_text("")
        return parent / "spool"

    async def batcher(
        self,
        *,
        batch: int = 3,
        buffer: int = 100,
        interval_s: float = 60,
        write_timeout_s: float = 5,
        wait_timeout_s: float = 5,
        spool_dir: Path | None = None,
        spool_bytes: int = 1 << 20,
    ) -> InvocationLogBatcher:
        limits = LogLimits(
            batch_size=batch,
            buffer_size=buffer,
            flush_interval_s=interval_s,
            write_timeout_s=write_timeout_s,
            retry_interval_s=0.05,
            wait_timeout_s=wait_timeout_s,
        )
        spool = LogSpool(spool_dir or self.spool_dir, spool_bytes)
        made = InvocationLogBatcher(self.sink, spool, limits)
        await made.start()
        self.made.append(made)
        return made


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path)
    yield made
    for batcher in made.made:
        await batcher.close()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def until(condition: Callable[[], object], timeout_s: float = 10) -> None:
    """Wait (polling) until ``condition()`` holds; a bound against hanging, not a timing check."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def submit_all(batcher: InvocationLogBatcher, logs: list[InvocationLog]) -> None:
    for log in logs:
        assert batcher.submit(log) is False


async def test_a_full_batch_is_written_without_waiting_for_the_interval(harness: Harness) -> None:
    logs = await harness.batcher(batch=3, interval_s=60)
    await settle()

    submit_all(logs, records(0, 3))
    await until(lambda: harness.sink.batches)

    assert harness.sink.batches == [["r0", "r1", "r2"]]
    assert logs.stats().written == 3
    assert logs.stats().backlog == 0


async def test_a_backlog_is_written_in_larger_batches(harness: Harness) -> None:
    logs = await harness.batcher(batch=3, interval_s=60)
    submit_all(logs, records(0, 40))  # arrives before the writer first runs

    await until(lambda: len(harness.sink.ids()) == 40)

    assert [len(batch) for batch in harness.sink.batches] == [30, 10]  # up to ten batch sizes


async def test_a_partial_batch_is_written_after_the_interval(harness: Harness) -> None:
    logs = await harness.batcher(batch=100, interval_s=0.05)
    submit_all(logs, records(1, 2))
    await settle()
    assert harness.sink.batches == []

    await until(lambda: harness.sink.batches)
    assert harness.sink.batches == [["r1", "r2"]]
    submit_all(logs, records(3, 1))
    await until(lambda: len(harness.sink.batches) == 2)
    assert harness.sink.batches[1] == ["r3"]


async def test_a_slow_store_spills_to_the_spool_and_loses_nothing(harness: Harness) -> None:
    harness.sink.gate = asyncio.Event()  # the store is slow: writes hang until the gate opens
    logs = await harness.batcher(batch=2, buffer=5, interval_s=0.05)
    for number in range(30):
        assert logs.submit(record(number)) is False
        await settle()
    await until(lambda: logs.stats().spooled > 0)

    stats = logs.stats()
    assert stats.spooled > 0
    assert stats.dropped == 0
    assert stats.backlog == 30
    assert stats.spool_bytes > 0

    harness.sink.gate.set()
    await until(lambda: logs.stats().backlog == 0)
    stats = logs.stats()
    assert sorted(harness.sink.ids(), key=lambda i: int(i[1:])) == [f"r{n}" for n in range(30)]
    assert stats.written + stats.replayed == 30
    assert stats.replayed == stats.spooled
    assert stats.dropped == 0


async def test_while_the_store_is_down_records_go_to_the_spool_and_come_back(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.sink.down = True
    logs = await harness.batcher(batch=2)
    with caplog.at_level(logging.WARNING):
        submit_all(logs, records(0, 6))
        await until(lambda: logs.stats().spooled == 6)
    assert "store down" in caplog.text
    assert harness.sink.batches == []

    harness.sink.down = False
    await until(lambda: logs.stats().backlog == 0)
    assert sorted(harness.sink.ids()) == sorted(f"r{n}" for n in range(6))
    assert logs.stats().replayed == 6
    assert logs.stats().dropped == 0


async def test_a_store_write_that_hangs_is_given_up_and_spooled(harness: Harness) -> None:
    harness.sink.gate = asyncio.Event()
    logs = await harness.batcher(batch=2, write_timeout_s=0.05)
    submit_all(logs, records(0, 2))

    await until(lambda: logs.stats().spooled == 2)
    harness.sink.gate.set()
    await until(lambda: logs.stats().backlog == 0)
    assert harness.sink.ids() == ["r0", "r1"]


async def test_records_spooled_at_close_are_replayed_by_the_next_start(harness: Harness) -> None:
    harness.sink.down = True
    first = await harness.batcher(batch=100, interval_s=60)
    submit_all(first, records(0, 5))  # never due before close: close writes them
    await first.close()
    assert first.stats().spooled == 5
    assert harness.sink.batches == []

    harness.sink.down = False
    second = await harness.batcher()
    await until(lambda: second.stats().replayed == 5)
    assert harness.sink.ids() == ["r0", "r1", "r2", "r3", "r4"]
    assert second.stats().backlog == 0


async def test_close_writes_the_rest_to_the_store_when_it_works(harness: Harness) -> None:
    harness.sink.gate = asyncio.Event()
    logs = await harness.batcher(batch=2)
    submit_all(logs, records(1, 2))
    await settle()  # r1, r2 are inside add_many; close() waits for that write
    submit_all(logs, records(3, 1))

    harness.sink.gate.set()
    await logs.close()

    assert harness.sink.batches == [["r1", "r2"], ["r3"]]
    assert logs.stats().written == 3
    assert logs.stats().spooled == 0


async def test_a_refused_record_is_dropped_alone_with_a_warning(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.sink.refused = {"r5"}
    logs = await harness.batcher(batch=8)
    with caplog.at_level(logging.WARNING):
        submit_all(logs, records(0, 8))
        await until(lambda: logs.stats().backlog == 0)

    assert sorted(harness.sink.ids()) == sorted(f"r{n}" for n in range(8) if n != 5)
    assert logs.stats().dropped == 1
    assert logs.stats().written == 7
    assert "dropped 1 invocation log record(s): the store refused record r5" in caplog.text


async def test_with_the_store_down_and_the_spool_unusable_invocations_wait_for_room(
    harness: Harness,
) -> None:
    harness.sink.down = True
    logs = await harness.batcher(batch=2, buffer=4, spool_dir=harness.unusable_spool_dir())
    assert not logs.stats().spool_ok
    submit_all(logs, records(0, 3))
    assert logs.submit(record(3)) is True  # the fourth fills the buffer: wait for room
    waiting = asyncio.ensure_future(logs.room())
    await asyncio.sleep(0.2)
    assert not waiting.done()

    harness.sink.down = False  # the store comes back: the buffer drains
    await asyncio.wait_for(waiting, 5)
    await until(lambda: logs.stats().backlog == 0)
    assert sorted(harness.sink.ids()) == ["r0", "r1", "r2", "r3"]
    assert logs.stats().dropped == 0


async def test_past_the_wait_records_beyond_the_buffer_are_dropped_with_a_warning(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.sink.down = True
    logs = await harness.batcher(
        batch=2, buffer=4, wait_timeout_s=0.1, spool_dir=harness.unusable_spool_dir()
    )
    assert not logs.stats().spool_ok
    submit_all(logs, records(0, 3))
    with caplog.at_level(logging.WARNING):
        full = [logs.submit(log) for log in records(3, 3)]
        assert full == [True, True, True]
        await logs.room()

    assert logs.stats().dropped == 2
    assert "dropped 2 invocation log record(s)" in caplog.text
    assert "spool refuses records" in caplog.text
    harness.sink.down = False
    await until(lambda: logs.stats().backlog == 0)
    assert sorted(harness.sink.ids()) == ["r0", "r1", "r2", "r3"]


async def test_a_full_spool_is_refused_without_losing_records(harness: Harness) -> None:
    harness.sink.down = True
    logs = await harness.batcher(batch=2, buffer=1000, spool_bytes=2000)
    for log in records(0, 20):  # batches of two: the spool takes a few of them
        assert logs.submit(log) is False
        await settle()
    await until(lambda: logs.stats().spooled > 0)
    await asyncio.sleep(0.2)
    stats = logs.stats()
    assert 0 < stats.spooled < 20  # the rest waits in memory
    assert stats.backlog == 20

    harness.sink.down = False
    await until(lambda: logs.stats().backlog == 0)
    assert sorted(harness.sink.ids()) == sorted(f"r{n}" for n in range(20))
    assert logs.stats().dropped == 0


async def test_close_with_nowhere_to_put_records_drops_them_with_a_warning(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.sink.down = True
    logs = await harness.batcher(batch=100, spool_dir=harness.unusable_spool_dir())
    submit_all(logs, records(0, 3))
    with caplog.at_level(logging.WARNING):
        await logs.close()
    assert logs.stats().dropped == 3
    assert "dropped 3 invocation log record(s)" in caplog.text
