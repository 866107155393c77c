"""The SQLite invocation-log writer process: killed mid-work, unable to start, closed,
pipelined, and writing without pauses once it is behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import orjson
import pytest

from nova.core.errors import StoreUnavailable
from nova.store import sqlite_log_writer
from nova.store.sql_store import open_store
from nova.store.sqlite_log_writer import _LENGTH, SqliteLogWriter, _Frames, _write_batch

from .test_store_invocations import log


def writer_pids(tmp_path: Path) -> set[int]:
    """The writer processes of databases under ``tmp_path`` (other tests, and other suites on
    the same machine, run writers of their own)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue  # exited while listed
        if b"sqlite_log_writer" in command and str(tmp_path).encode() in command:
            found.add(int(entry.name))
    return found


async def test_a_killed_writer_is_replaced_and_no_record_is_lost(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        before = writer_pids(tmp_path)
        await store.invocations.add_many([log("a"), log("b")])
        (writer,) = writer_pids(tmp_path) - before
        os.kill(writer, signal.SIGKILL)
        await store.invocations.add_many([log("c"), log("b")])  # b again: a retried batch
        (replacement,) = writer_pids(tmp_path) - before
        assert replacement != writer
        assert sorted(item.id for item in (await store.invocations.list()).items) == ["a", "b", "c"]
    finally:
        await store.close()


async def test_a_writer_killed_while_writing_gets_the_batch_again(tmp_path: Path) -> None:
    """SIGKILL lands while the batch is in the pipe: the retry writes it exactly once."""
    before = writer_pids(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        await store.invocations.add_many([log("warm-up")])
        (writer,) = writer_pids(tmp_path) - before
        os.kill(writer, signal.SIGSTOP)  # frozen before it can read the next batch
        batch = [log(f"r{index}") for index in range(500)]
        writing = asyncio.ensure_future(store.invocations.add_many(batch))
        await asyncio.sleep(0.2)
        os.kill(writer, signal.SIGKILL)
        await writing
        ids = {item.id for item in (await store.invocations.list(limit=1000)).items}
        assert ids == {"warm-up"} | {item.id for item in batch}
    finally:
        await store.close()


async def test_a_writer_that_cannot_start_is_store_unavailable(tmp_path: Path) -> None:
    writer = SqliteLogWriter(str(tmp_path / "missing-dir" / "nova.db"))
    with pytest.raises(StoreUnavailable, match="exited twice in a row"):
        await writer.write([log("a")])
    await writer.close()


async def test_a_write_the_database_refuses_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "nova.db"
    sqlite3.connect(path).close()  # a database without the invocation_logs table
    writer = SqliteLogWriter(str(path))
    try:
        with pytest.raises(StoreUnavailable, match="no such table: invocation_logs"):
            await writer.write([log("a")])
        with pytest.raises(StoreUnavailable, match="no such table"):
            await writer.write([log("b")])  # the same writer answers again: it did not die
    finally:
        await writer.close()


async def test_closing_the_store_stops_its_writer(tmp_path: Path) -> None:
    before = writer_pids(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    await store.invocations.add_many([log("a")])
    assert writer_pids(tmp_path) - before
    await store.close()
    assert not writer_pids(tmp_path) - before
    reopened = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        assert [item.id for item in (await reopened.invocations.list()).items] == ["a"]
    finally:
        await reopened.close()


async def test_a_write_that_times_out_does_not_put_answers_out_of_step(tmp_path: Path) -> None:
    """A stalled writer is given up on (the batcher's timeout cancels the write); the next
    batch must get its own answer from a fresh writer, not the stalled one's late answer."""
    before = writer_pids(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        await store.invocations.add_many([log("first")])
        (stalled,) = writer_pids(tmp_path) - before
        os.kill(stalled, signal.SIGSTOP)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.invocations.add_many([log("lost")]), 0.3)
        assert stalled not in writer_pids(tmp_path)  # killed, not left stopped
        await store.invocations.add_many([log("second")])
        ids = {item.id for item in (await store.invocations.list()).items}
        assert {"first", "second"} <= ids
    finally:
        await store.close()


async def test_batches_in_flight_together_share_one_writer_and_all_land(tmp_path: Path) -> None:
    before = writer_pids(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        batches = [[log(f"b{batch}-{row}") for row in range(50)] for batch in range(4)]
        await asyncio.gather(*(store.invocations.add_many(batch) for batch in batches))
        assert len(writer_pids(tmp_path) - before) == 1
        ids = {item.id for item in (await store.invocations.list(limit=1000)).items}
        assert ids == {item.id for batch in batches for item in batch}
    finally:
        await store.close()


def test_frames_tell_whether_another_one_is_waiting() -> None:
    read_end, write_end = os.pipe()
    try:
        frames = _Frames(read_end)
        os.write(write_end, _LENGTH.pack(3) + b"one" + _LENGTH.pack(3) + b"two")
        assert frames.next() == b"one"
        assert frames.waiting()
        assert frames.next() == b"two"
        assert not frames.waiting()
        os.write(write_end, _LENGTH.pack(5) + b"thr")  # cut short by the daemon's exit
        os.close(write_end)
        assert frames.next() is None
    finally:
        os.close(read_end)


@pytest.mark.parametrize(("behind", "pauses"), [(False, 9), (True, 0)])
def test_a_writer_that_is_behind_writes_without_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behind: bool, pauses: int
) -> None:
    path = tmp_path / "nova.db"
    asyncio.run(_create(path))
    slept: list[float] = []
    monkeypatch.setattr(sqlite_log_writer.time, "sleep", slept.append)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        frame = orjson.dumps([log(f"r{row}") for row in range(100)])
        assert _write_batch(connection, frame, lambda: behind) == b"ok"
        assert connection.execute("SELECT count(*) FROM invocation_logs").fetchone() == (100,)
    finally:
        connection.close()
    assert len(slept) == pauses  # ten chunks of ten rows, paused between, or one go


async def _create(path: Path) -> None:
    await (await open_store(f"sqlite:///{path}")).close()


async def test_a_record_sqlite_refuses_is_a_value_error_not_an_outage(tmp_path: Path) -> None:
    """A constraint the record breaks is the record's fault: ValueError, so the batcher drops
    that record alone instead of waiting for the store to come back."""
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        with pytest.raises(ValueError, match="NOT NULL constraint failed"):
            await store.invocations.add_many([log("a", function_name=None)])
        await store.invocations.add_many([log("b")])  # the same writer goes on
        assert [item.id for item in (await store.invocations.list()).items] == ["b"]
    finally:
        await store.close()
