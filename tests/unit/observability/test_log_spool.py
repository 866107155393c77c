"""The invocation-log spool: round trip, torn tails, damage, restarts, limits, a full disk."""

from __future__ import annotations

import logging
import os
import subprocess
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from nova.core.models import InvocationLog
from nova.observability import log_spool
from nova.observability.log_spool import LogSpool, SpoolError


def record(number: int, **overrides: object) -> InvocationLog:
    fields: dict[str, object] = {
        "id": f"r{number}",
        "function_id": "fn-id",
        "function_name": "fn",
        "runtime": "python",
        "version": "$LATEST",
        "qualifier": "",
        "duration_ms": 0.25,
        "total_ms": 0.5,
        "cold_start": number % 2 == 0,
        "success": True,
        "error_type": None,
        "error_message": None,
        "input_size": 2,
        "output_size": 3,
        "stdout": "out ✓\n",
        "stderr": "",
        "created_at": datetime(2026, 12, 3, 8, 0, 0, number, tzinfo=UTC),
    }
    fields.update(overrides)
    return InvocationLog(**fields)  # type: ignore[arg-type]


def records(first: int, count: int) -> list[InvocationLog]:
    return [record(number) for number in range(first, first + count)]


def opened(directory: Path, max_bytes: int = 1 << 20, segment_bytes: int = 1 << 20) -> LogSpool:
    spool = LogSpool(directory, max_bytes, segment_bytes)
    spool.open()
    return spool


def drain(spool: LogSpool) -> list[InvocationLog]:
    """Everything the spool replays, acknowledging each frame."""
    found = []
    while (frame := spool.peek()) is not None:
        assert frame.error is None
        found += frame.records
        spool.ack(frame)
    return found


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool"))


def test_records_come_back_equal_in_frames_of_the_given_size(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(records(0, 5), frame_records=2)
    spool.append([record(5, success=False, error_type="Function.Error", error_message="boom")], 2)

    frames = []
    while (frame := spool.peek()) is not None:
        frames.append([log.id for log in frame.records])
        assert spool.peek() == frame  # not acknowledged yet: the same frame again
        spool.ack(frame)

    assert frames == [["r0", "r1"], ["r2", "r3"], ["r4"], ["r5"]]
    spool.append(records(0, 6), 10)
    assert drain(spool) == [*records(0, 5), record(5)]


def test_a_replayed_segment_is_deleted_and_its_bytes_freed(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(records(0, 3), 10)
    assert spool.bytes > 0
    assert len(segments(tmp_path)) == 1

    assert len(drain(spool)) == 3

    assert segments(tmp_path) == []
    assert spool.bytes == 0


def test_segments_left_by_an_earlier_run_are_counted_and_replayed_first(tmp_path: Path) -> None:
    earlier = opened(tmp_path)
    earlier.append(records(0, 4), 3)
    earlier.close()

    spool = LogSpool(tmp_path, 1 << 20)
    assert spool.open() == 4
    spool.append(records(4, 2), 3)

    assert [log.id for log in drain(spool)] == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_a_frame_read_but_not_acknowledged_before_a_crash_comes_back(tmp_path: Path) -> None:
    first = opened(tmp_path)
    first.append(records(0, 2), 1)
    frame = first.peek()
    assert frame is not None
    first.ack(frame)  # acknowledged in memory only
    first.close()

    again = LogSpool(tmp_path, 1 << 20)
    assert again.open() == 2  # replayed again: the store's inserts skip ids it has
    assert [log.id for log in drain(again)] == ["r0", "r1"]


def test_a_torn_tail_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = opened(tmp_path)
    spool.append(records(0, 2), 10)
    spool.append(records(2, 2), 10)
    spool.close()
    (segment,) = segments(tmp_path)
    os.truncate(segment, segment.stat().st_size - 7)  # the second frame cut short by a crash

    again = LogSpool(tmp_path, 1 << 20)
    with caplog.at_level(logging.WARNING):
        assert again.open() == 2
        assert [log.id for log in drain(again)] == ["r0", "r1"]
    assert "cut short" in caplog.text
    assert segments(tmp_path) == []


@pytest.mark.parametrize("damage", ["payload", "magic", "header only"])
def test_a_damaged_frame_ends_its_segment_and_later_segments_still_replay(
    tmp_path: Path, damage: str
) -> None:
    spool = opened(tmp_path, segment_bytes=1)  # every append seals its segment
    spool.append(records(0, 2), 10)
    spool.append(records(2, 2), 10)
    spool.close()
    first, _ = segments(tmp_path)
    data = bytearray(first.read_bytes())
    if damage == "payload":
        data[-3] ^= 0xFF  # the CRC no longer matches
    elif damage == "magic":
        data[0:4] = b"XXXX"
    else:
        data = data[:10]
    first.write_bytes(bytes(data))

    again = LogSpool(tmp_path, 1 << 20)
    # The count at start reads headers only; a damaged payload is found when it is replayed.
    assert again.open() == (4 if damage == "payload" else 2)
    assert [log.id for log in drain(again)] == ["r2", "r3"]


def test_records_nova_cannot_decode_come_back_as_an_error(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(records(0, 2), 10)
    spool.close()
    (segment,) = segments(tmp_path)
    # A well-formed frame whose record lacks fields (e.g. written by another version).
    payload = orjson.dumps([{"id": "x"}])
    header = log_spool._HEADER.pack(log_spool._MAGIC, 1, len(payload), zlib.crc32(payload))
    with segment.open("ab") as stream:
        stream.write(header + payload)

    again = LogSpool(tmp_path, 1 << 20)
    assert again.open() == 3
    good = again.peek()
    assert good is not None
    assert good.count == 2
    again.ack(good)
    bad = again.peek()
    assert bad is not None
    assert bad.count == 1
    assert bad.records == []
    assert bad.error is not None
    assert "created_at" in bad.error


def test_a_field_missing_from_an_older_record_comes_back_as_none(tmp_path: Path) -> None:
    """Records spooled by a Nova whose InvocationLog had fewer fields still replay: the store
    then decides whether the column may be empty."""
    older = orjson.loads(orjson.dumps([record(1, error_type="E")]))
    del older[0]["error_type"]
    payload = orjson.dumps(older)
    header = log_spool._HEADER.pack(log_spool._MAGIC, 1, len(payload), zlib.crc32(payload))
    (tmp_path / "00000000000000000001.spool").write_bytes(header + payload)

    spool = LogSpool(tmp_path, 1 << 20)
    assert spool.open() == 1
    assert drain(spool) == [record(1, error_type=None)]


def test_appending_past_the_size_limit_is_refused_until_replay_frees_room(tmp_path: Path) -> None:
    spool = opened(tmp_path, max_bytes=4000, segment_bytes=1)  # room for two batches
    spool.append(records(0, 4), 10)
    spool.append(records(10, 4), 10)
    with pytest.raises(SpoolError, match="log_spool_max_bytes"):
        spool.append(records(10, 4), 10)

    drain(spool)
    spool.append(records(20, 4), 10)
    assert [log.id for log in drain(spool)] == ["r20", "r21", "r22", "r23"]


def test_a_second_daemon_cannot_take_the_same_directory(tmp_path: Path) -> None:
    opened(tmp_path)
    with pytest.raises(SpoolError, match="in use by another Nova daemon"):
        LogSpool(tmp_path, 1 << 20).open()


def test_a_directory_that_cannot_be_created_is_a_spool_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="cannot use"):
        LogSpool(tmp_path / "file" / "spool", 1 << 20).open()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs (CI runs as root): {result.stderr}")
        pytest.skip(f"mounting a tmpfs needs root: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_is_a_spool_error_and_leaves_no_torn_frame(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = opened(tiny_disk / "spool", max_bytes=1 << 30)
    big = [record(number, stdout="x" * 3000) for number in range(40)]  # ~120 KB: cannot fit
    spool.append(records(0, 2), 10)
    with pytest.raises(SpoolError, match="has room"):
        spool.append(big, 10)
    spool.append(records(2, 2), 10)  # a small frame still fits, in a fresh segment

    with caplog.at_level(logging.WARNING):
        assert [log.id for log in drain(spool)] == ["r0", "r1", "r2", "r3"]
    assert "cut short" not in caplog.text  # the partial write was truncated away
    spool.close()
    again = LogSpool(tiny_disk / "spool", 1 << 30)
    assert again.open() == 0
