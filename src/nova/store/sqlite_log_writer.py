"""Invocation logs into a SQLite file from a writer process, off the daemon's event loop.

Written from the daemon itself, a batch cost its event loop ~40 µs of CPU per record, and
aiosqlite's thread added GIL hand-offs on every row: with the single event loop the bottleneck
of warm throughput, logs took a third of its time (docs/performance.md). The writer process
takes each batch as one frame on its stdin - a 4-byte big-endian length, then the records as an
orjson array - writes it in one transaction with sqlite3 and answers one line: ``ok``, or a JSON
object with the error. The daemon's share is one ``orjson.dumps`` and one pipe write per batch.

Frames are pipelined: the daemon may send the next batch before the answer to the previous one
(answers come back in order). A frame already waiting is also how the writer knows it is behind:
it then writes without the pauses that protect the latency of calls running meanwhile.

Inserts skip ids already stored, so a batch whose answer was lost (the writer died in the
middle) is sent again to a fresh writer without duplicating rows.

    python -m nova.store.sqlite_log_writer PATH     # started by SqliteLogWriter, not by hand
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sqlite3
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from nova.core.errors import StoreUnavailable
from nova.core.models import InvocationLog

_LENGTH = struct.Struct(">I")
_OK = b"ok"
_NICENESS = 10
_CHUNK_ROWS = 10  # ~0.1-0.2 ms of CPU each
_PAUSE_S = 0.0003
_READ_BYTES = 1 << 16
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


@dataclass(eq=False)
class _Writer:
    """One writer process, and the answers its frames are owed, oldest first."""

    process: asyncio.subprocess.Process
    answers: deque[asyncio.Future[bytes | None]] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None

    def answering(self) -> bool:
        """Whether answers can still come: once the reader ends, a frame sent would wait
        forever."""
        return self.reader is not None and not self.reader.done()


class SqliteLogWriter:
    """The daemon's end: one writer process per database file, started at the first batch and
    started again after it dies."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writer: _Writer | None = None
        self._starting = asyncio.Lock()  # one process at a time

    async def write(self, logs: Sequence[InvocationLog]) -> None:
        # orjson serialises the dataclasses and their aware datetimes itself (RFC 3339).
        frame = orjson.dumps(logs)
        answer = await self._exchange(frame)
        if answer is None:  # the writer died with the batch: a fresh one gets it again
            answer = await self._exchange(frame)
        if answer is None:
            raise StoreUnavailable(
                f"the invocation-log writer for {self._path!r} exited twice in a row; its "
                "error is in the daemon's output above"
            )
        if answer != _OK:
            failure = orjson.loads(answer)
            reason = failure.get("error", answer.decode(errors="replace"))
            if failure.get("refused"):
                raise ValueError(f"SQLite refused the batch: {reason}")
            raise StoreUnavailable(
                f"writing invocation logs to {self._path!r} failed: {reason}; check that the "
                "file's directory is writable and the disk has room"
            )

    async def _exchange(self, frame: bytes) -> bytes | None:
        """The writer's answer to one frame, or None when it exited before answering."""
        writer = await self._running()
        stdin = writer.process.stdin
        assert stdin is not None
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        # Appended and written with no await between: answers and frames stay in one order,
        # and the frame goes into the pipe's buffer whole, never interleaved with another.
        writer.answers.append(answer)
        try:
            stdin.write(_LENGTH.pack(len(frame)) + frame)
            await stdin.drain()
            return await answer
        except (BrokenPipeError, ConnectionResetError):
            return None  # the reader sees the exit and answers None to the rest
        except asyncio.CancelledError:
            # Given up (the batcher's write timeout): the writer may be stuck behind a lock
            # held elsewhere. It goes, with the frames in its pipe; their senders get None
            # and try a fresh writer.
            await asyncio.shield(self._stop(writer))
            raise

    async def _running(self) -> _Writer:
        async with self._starting:
            writer = self._writer
            if writer is not None and not writer.answering():
                await self._stop(writer)  # exited: its answers were settled, reap it
                writer = None
            if writer is None:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    __name__,
                    self._path,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                writer = self._writer = _Writer(process)
                writer.reader = asyncio.create_task(
                    self._read_answers(writer), name="sqlite-log-writer-answers"
                )
            return writer

    @staticmethod
    async def _read_answers(writer: _Writer) -> None:
        stdout = writer.process.stdout
        assert stdout is not None
        try:
            while (line := await stdout.readline()).endswith(b"\n") and writer.answers:
                answer = writer.answers.popleft()
                if not answer.done():  # its sender may have given up
                    answer.set_result(line[:-1])
        finally:
            # Exited (or answering out of turn): whatever is still owed will not come.
            while writer.answers:
                answer = writer.answers.popleft()
                if not answer.done():
                    answer.set_result(None)

    async def _stop(self, writer: _Writer, grace_s: float = 0.0) -> None:
        """Stop ``writer``: end of input lets it finish what it was sent and exit; past
        ``grace_s`` it is killed."""
        if self._writer is writer:
            self._writer = None
        process = writer.process
        if process.stdin is not None:
            process.stdin.close()
        if process.returncode is None and grace_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace_s)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # exited since
                process.kill()
            await process.wait()
        if writer.reader is not None:
            await writer.reader  # answers None to what the writer still owed
        if process.stdin is not None:
            # Collects the broken pipe the stream kept, which asyncio would otherwise log as
            # "exception was never retrieved".
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await process.stdin.wait_closed()

    async def close(self) -> None:
        """Let the writer finish what it was given and exit."""
        if self._writer is not None:
            await self._stop(self._writer, grace_s=BUSY_TIMEOUT_S + 5)


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


def _write_batch(connection: sqlite3.Connection, frame: bytes, behind: Callable[[], bool]) -> bytes:
    """One transaction. While the writer keeps up it writes a few rows at a time with idle
    pauses between: a batch in one go is 1-3 ms of CPU, and an invocation that ran meanwhile
    was slowed by about that much (one call in each hundred, which is the p99 of sequential
    warm calls), even with this process at the lowest priority - the host's two vCPUs slow each
    other down. Once ``behind()`` (another frame waits) the rest goes in one go: throughput
    then matters more than those pauses."""
    try:
        records = orjson.loads(frame)
        connection.execute("BEGIN IMMEDIATE")
        try:
            start = 0
            while start < len(records):
                if behind():
                    end = len(records)
                else:
                    end = start + _CHUNK_ROWS
                    if start:
                        time.sleep(_PAUSE_S)
                chunk = records[start:end]
                connection.executemany(SQLITE_INSERT, [_row(record) for record in chunk])
                start = end
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except (sqlite3.IntegrityError, sqlite3.DataError, ValueError, KeyError) as exc:
        # The records themselves, not the database: the batcher isolates the refused one.
        return orjson.dumps({"error": f"{type(exc).__name__}: {exc}", "refused": True})
    except sqlite3.Error as exc:
        return orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
    return _OK


class _Frames:
    """Length-prefixed frames from a file descriptor, read through a buffer of our own so that
    ``waiting()`` can tell whether another frame has arrived."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def next(self) -> bytes | None:
        """The next whole frame; None at end of input (a frame cut short included)."""
        buffer = self._buffer
        while True:
            if len(buffer) >= _LENGTH.size:
                end = _LENGTH.size + _LENGTH.unpack_from(buffer)[0]
                if len(buffer) >= end:
                    frame = bytes(buffer[_LENGTH.size : end])
                    del buffer[:end]
                    return frame
            chunk = os.read(self._fd, _READ_BYTES)
            if not chunk:
                return None
            buffer += chunk

    def waiting(self) -> bool:
        return bool(self._buffer) or bool(select.select([self._fd], [], [], 0)[0])


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
    frames, answers = _Frames(sys.stdin.fileno()), sys.stdout.buffer
    while (frame := frames.next()) is not None:
        answers.write(_write_batch(connection, frame, frames.waiting) + b"\n")
        answers.flush()
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
