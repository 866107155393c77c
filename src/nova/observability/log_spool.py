"""A local append-only spool for invocation-log records the store cannot take right now.

The batcher spools records when the store is away or slower than the traffic, and replays them
once it answers again. Records live in segment files under one directory, oldest first::

    <dir>/00000000000000000001.spool   frames, appended; sealed (never written again) before
    <dir>/00000000000000000002.spool   they are replayed, deleted once replayed
    <dir>/lock                         flock'ed by the daemon that owns the directory

Each frame is a header and a payload (all integers big-endian)::

    +-------+---------+----------------+--------------+-------------------------------+
    | NVL1  | records | payload length | CRC-32       | payload: the records as one   |
    | 4 B   | u32     | u32            | of payload   | orjson array of objects       |
    +-------+---------+----------------+--------------+-------------------------------+

Durability: an append is written and fsync'ed (and a new segment's directory entry too) before
it returns, so records the batcher counts as spooled survive a crash of the daemon or of the
machine. A frame cut short by a crash, or damaged on disk, ends its segment: the reader stops
there, logs how many bytes it ignored, and goes on with the next segment. A failed append is
truncated away and its segment sealed, so no later frame sits behind a torn one.

Replay acknowledges frames in memory only: after a crash mid-segment the whole segment is
replayed again, which the store's idempotent inserts (by record id) make harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, get_type_hints

import orjson

from nova.core.models import InvocationLog

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">4sIII")
_MAGIC = b"NVL1"
_SUFFIX = ".spool"
SEGMENT_BYTES = 64 * 1024 * 1024  # a sealed segment is replayed and deleted as one

# Decoding is derived from the dataclass, so a field added to InvocationLog flows through.
_FIELDS = tuple(field.name for field in fields(InvocationLog))
_TIME_FIELDS = tuple(
    name for name, hint in get_type_hints(InvocationLog).items() if hint is datetime
)


class SpoolError(Exception):
    """The spool cannot take records: its directory is unusable, the disk is full, or it holds
    ``max_bytes`` already."""


@dataclass(frozen=True, slots=True)
class SpooledFrame:
    """One frame read back: its records, or why they could not be decoded (``error``)."""

    segment: Path
    end: int  # offset just past the frame: where the next one starts
    count: int
    records: list[InvocationLog]
    error: str | None = None


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    size: int


class LogSpool:
    """Segments in ``directory``, at most ``max_bytes`` in all. Blocking: call it from a thread
    (the batcher does); appends and reads may run in two threads at once."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES):
        self.directory = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sealed: deque[Path] = deque()  # oldest first
        self._active: _Segment | None = None
        self._next_number = 1
        self._read_offset = 0  # in the oldest sealed segment
        self._lock_fd: int | None = None
        self.bytes = 0

    def open(self) -> int:
        """Take the directory (creating it) and find the segments an earlier run left; returns
        how many records they hold. ``SpoolError`` if the directory cannot be used."""
        if self._lock_fd is not None:
            return 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError as exc:
            raise SpoolError(f"cannot use {self.directory}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            raise SpoolError(
                f"{self.directory} is in use by another Nova daemon; give each daemon its own "
                "data_dir or executor.log_spool_dir"
            ) from exc
        self._lock_fd = lock_fd
        records = 0
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if not path.stem.isdigit():
                continue  # not a segment of ours
            records += _count(path)
            self._sealed.append(path)
            self.bytes += path.stat().st_size
            self._next_number = max(self._next_number, int(path.stem) + 1)
        return records

    # -- writing -------------------------------------------------------------------------------

    def append(self, logs: Sequence[InvocationLog], frame_records: int) -> None:
        """Write ``logs`` (frames of at most ``frame_records``) and fsync them; ``SpoolError``
        if they could not all be made durable, in which case none of them count as spooled."""
        data = b"".join(
            _frame(logs[start : start + frame_records])
            for start in range(0, len(logs), frame_records)
        )
        with self._lock:
            if self._lock_fd is None:
                raise SpoolError(f"the spool at {self.directory} is not open")
            if self.bytes + len(data) > self._max_bytes:
                raise SpoolError(
                    f"the spool at {self.directory} holds {self.bytes} bytes, and "
                    f"{len(data)} more would pass its limit of {self._max_bytes} "
                    "(executor.log_spool_max_bytes)"
                )
            segment = self._active or self._new_segment()
            try:
                _write_all(segment.fd, data)
                os.fsync(segment.fd)
            except OSError as exc:
                # Cut the partial frame off, and seal the segment whatever happens, so that no
                # later frame is ever appended behind a torn one.
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.fd, segment.size)
                self._seal()
                raise SpoolError(
                    f"cannot write to {segment.path}: {exc.strerror or exc}; check the disk "
                    "has room and the directory is writable"
                ) from exc
            segment.size += len(data)
            self.bytes += len(data)
            if segment.size >= self._segment_bytes:
                self._seal()

    def _new_segment(self) -> _Segment:
        path = self.directory / f"{self._next_number:020d}{_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot create {path}: {exc.strerror or exc}") from exc
        try:
            _fsync_directory(self.directory)  # the file's entry must survive a crash too
        except OSError as exc:
            os.close(fd)
            raise SpoolError(f"cannot sync {self.directory}: {exc.strerror or exc}") from exc
        self._next_number += 1
        self._active = _Segment(path, fd, 0)
        return self._active

    def _seal(self) -> None:
        """Close the segment being written; from now on it is only read (and then deleted)."""
        segment, self._active = self._active, None
        if segment is None:
            return
        os.close(segment.fd)
        self._sealed.append(segment.path)

    # -- replaying -----------------------------------------------------------------------------

    def peek(self) -> SpooledFrame | None:
        """The oldest frame not yet acknowledged (None when the spool is empty). Sealed segments
        come first; when none is left the one being written is sealed and read."""
        while True:
            with self._lock:
                if not self._sealed and self._active is not None and self._active.size:
                    self._seal()
                if not self._sealed:
                    return None
                path, offset = self._sealed[0], self._read_offset
            frame = next(_frames(path, offset), None)
            if frame is not None:
                return frame
            self._remove_oldest(path)  # read to its end (or its torn tail)

    def ack(self, frame: SpooledFrame) -> None:
        """``frame`` is in the store: the next peek reads past it."""
        with self._lock:
            if self._sealed and self._sealed[0] == frame.segment:
                self._read_offset = frame.end

    def _remove_oldest(self, path: Path) -> None:
        with self._lock:
            if not self._sealed or self._sealed[0] != path:
                return
            self._sealed.popleft()
            self._read_offset = 0
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self.bytes = max(0, self.bytes - size)

    def close(self) -> None:
        """Seal the segment being written and release the directory."""
        with self._lock:
            self._seal()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


def _frame(logs: Sequence[InvocationLog]) -> bytes:
    # orjson serialises the dataclasses and their aware datetimes itself (RFC 3339).
    payload = orjson.dumps(logs)
    return _HEADER.pack(_MAGIC, len(logs), len(payload), zlib.crc32(payload)) + payload


def _count(path: Path) -> int:
    """The records in ``path``'s frames, from their headers alone (a quick scan at start; the
    payloads' checksums are checked when they are replayed)."""
    size, offset, records = path.stat().st_size, 0, 0
    with path.open("rb") as stream:
        while len(header := stream.read(_HEADER.size)) == _HEADER.size:
            magic, count, length, _crc = _HEADER.unpack(header)
            offset += _HEADER.size + length
            if magic != _MAGIC or offset > size:
                break
            records += count
            stream.seek(offset)
    return records


def _frames(path: Path, offset: int) -> Iterator[SpooledFrame]:
    """Yield the whole frames of ``path`` from ``offset``; stop, with a warning, at a torn or
    damaged one."""
    try:
        stream: BinaryIO = path.open("rb")
    except FileNotFoundError:
        return
    with stream:
        stream.seek(offset)
        while True:
            header = stream.read(_HEADER.size)
            if not header:
                return  # a clean end
            if len(header) == _HEADER.size:
                magic, count, length, crc = _HEADER.unpack(header)
                payload = stream.read(length) if magic == _MAGIC else b""
                if magic == _MAGIC and len(payload) == length and zlib.crc32(payload) == crc:
                    offset += _HEADER.size + length
                    yield _decoded(path, offset, count, payload)
                    continue
            torn = path.stat().st_size - offset
            logger.warning(
                "ignored the last %d byte(s) of %s: a frame cut short (by a crash) or damaged",
                torn,
                path,
            )
            return


def _decoded(path: Path, end: int, count: int, payload: bytes) -> SpooledFrame:
    try:
        records = [_record(item) for item in orjson.loads(payload)]
    except (ValueError, TypeError, KeyError) as exc:
        return SpooledFrame(path, end, count, [], f"{type(exc).__name__}: {exc}")
    return SpooledFrame(path, end, count, records)


def _record(item: dict[str, Any]) -> InvocationLog:
    # A field missing from a record spooled by an older Nova comes back as None: the store
    # takes it if the column is nullable and refuses that record (logged) if not.
    for name in _TIME_FIELDS:
        item[name] = datetime.fromisoformat(item[name])
    values: dict[str, Any] = {name: item.get(name) for name in _FIELDS}
    return InvocationLog(**values)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
