"""Invocation logs into a SQLite file from a writer process, off the daemon's event loop.

Written from the daemon itself, a batch cost its event loop ~40 µs of CPU per record, and
aiosqlite's thread added GIL hand-offs on every row: with the single event loop the bottleneck
of warm throughput, logs took a third of its time (docs/performance.md). The writer process
takes each batch as one frame on its stdin - a 4-byte big-endian length, then the records as an
orjson array - writes it in one transaction with sqlite3 and answers one line: ``ok``, or a JSON
object with the error. The daemon's share is one ``orjson.dumps`` and one pipe write per batch.

Inserts skip ids already stored, so a batch whose answer was lost (the writer died in the
middle) is sent again to a fresh writer without duplicating rows.

    python -m nova.store.sqlite_log_writer PATH     # started by SqliteLogWriter, not by hand
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import struct
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import BinaryIO

import orjson

from nova.core.errors import StoreUnavailable
from nova.core.models import InvocationLog

_LENGTH = struct.Struct(">I")
_OK = b"ok"
_NICENESS = 10
_CHUNK_ROWS = 10  # ~0.2 ms of CPU each
_PAUSE_S = 0.0003
BUSY_TIMEOUT_S = 15.0  # as the daemon's own SQLite connections (database.py)

COLUMNS = tuple(InvocationLog.__dataclass_fields__)
SQLITE_INSERT = (
    f"INSERT INTO invocation_logs ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
# SQLAlchemy's SQLite DATETIME text format, in UTC: fixed width, so text order is time order.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(SQLITE_TIME)


class SqliteLogWriter:
    """The daemon's end: one writer process per database file, started at the first batch and
    started again after it dies."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one batch in the pipe at a time: answers are not tagged

    async def write(self, logs: Sequence[InvocationLog]) -> None:
        # orjson serialises the dataclasses and their aware datetimes itself (RFC 3339).
        frame = orjson.dumps(logs)
        async with self._lock:
            answer = await self._exchange(frame)
            if answer is None:  # the writer died with the batch: a fresh one gets it again
                answer = await self._exchange(frame)
        if answer is None:
            raise StoreUnavailable(
                f"the invocation-log writer for {self._path!r} exited twice in a row; its "
                "error is in the daemon's output above"
            )
        if answer != _OK:
            reason = orjson.loads(answer).get("error", answer.decode(errors="replace"))
            raise StoreUnavailable(
                f"writing invocation logs to {self._path!r} failed: {reason}; check that the "
                "file's directory is writable and the disk has room"
            )

    async def _exchange(self, frame: bytes) -> bytes | None:
        """The writer's answer to one frame, or None when it exited before answering."""
        process = await self._running()
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(_LENGTH.pack(len(frame)) + frame)
            await process.stdin.drain()
            line = await process.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        except asyncio.CancelledError:
            # Cancelled mid-exchange (the batcher's write timeout): the frame may be half
            # written and its answer is still to come, so the stream is out of step. This
            # writer goes; the next batch starts a fresh one.
            await asyncio.shield(self._reap())
            raise
        if line.endswith(b"\n"):
            return line[:-1]
        await self._reap()
        return None

    async def _running(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                self._path,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        return self._process

    async def _reap(self, grace_s: float = 0.0) -> None:
        """Stop the writer: end of input lets it finish its batch and exit; past ``grace_s``
        it is killed."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        if process.returncode is None and grace_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace_s)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # exited since
                process.kill()
            await process.wait()
        if process.stdin is not None:
            # Collects the broken pipe the stream kept, which asyncio would otherwise log as
            # "exception was never retrieved".
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await process.stdin.wait_closed()

    async def close(self) -> None:
        """Let the writer finish what it was given and exit."""
        async with self._lock:
            await self._reap(grace_s=BUSY_TIMEOUT_S + 5)


# -- the writer process ---------------------------------------------------------------------------


def _row(record: dict[str, object]) -> tuple[object, ...]:
    return tuple(
        _stored_time(str(record["created_at"])) if name == "created_at" else record[name]
        for name in COLUMNS
    )


def _stored_time(rfc3339: str) -> str:
    """orjson's RFC 3339 text of an aware datetime as SQLite stores it (UTC, microseconds)."""
    if len(rfc3339) == 32 and rfc3339.endswith("+00:00"):  # UTC with microseconds: the usual
        return f"{rfc3339[:10]} {rfc3339[11:26]}"
    return sqlite_time(datetime.fromisoformat(rfc3339))


def _write_batch(connection: sqlite3.Connection, frame: bytes) -> bytes:
    """One transaction, written a few rows at a time with idle pauses between: a batch in one
    go is 2-3 ms of CPU, and an invocation that ran meanwhile was slowed by about that much
    (one call in each hundred, which is the p99 of sequential warm calls), even with this
    process at the lowest priority - the host's two vCPUs slow each other down."""
    try:
        records = orjson.loads(frame)
        connection.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(records), _CHUNK_ROWS):
                if start:
                    time.sleep(_PAUSE_S)
                chunk = records[start : start + _CHUNK_ROWS]
                connection.executemany(SQLITE_INSERT, [_row(record) for record in chunk])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except (sqlite3.Error, ValueError, KeyError) as exc:
        return orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
    return _OK


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m nova.store.sqlite_log_writer DATABASE_PATH", file=sys.stderr)
        return 2
    # Background work: a smaller CPU share than the daemon and the workers, and (batch) no
    # preempting them when a batch arrives.
    os.nice(_NICENESS)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    connection = sqlite3.connect(argv[1], isolation_level=None, timeout=BUSY_TIMEOUT_S)
    # WAL is a property of the file (the daemon's engine set it); synchronous is per connection.
    connection.execute("PRAGMA synchronous=NORMAL")
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while (header := _read_exactly(requests, _LENGTH.size)) is not None:
        frame = _read_exactly(requests, _LENGTH.unpack(header)[0])
        if frame is None:
            break  # the daemon went away mid-frame: nothing complete to write
        answers.write(_write_batch(connection, frame) + b"\n")
        answers.flush()
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
