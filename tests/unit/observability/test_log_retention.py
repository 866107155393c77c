"""Invocation-log retention: records past the age or count go, in bounded rounds; 0 keeps all."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from nova.observability import log_retention
from nova.observability.log_retention import LogRetention
from nova.store.memory import MemoryStore
from tests.unit.observability.test_invocation_logs import record


async def test_expire_deletes_records_past_the_age_in_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    old = [
        dataclasses.replace(record(i), created_at=now - timedelta(days=8, minutes=i))
        for i in range(7)
    ]
    fresh = dataclasses.replace(record(99), created_at=now - timedelta(days=6))
    await store.invocations.add_many([*old, fresh])
    monkeypatch.setattr(log_retention, "ROUND_LIMIT", 3)
    retention = LogRetention(store.invocations, retention_days=7, interval_s=3600)
    assert await retention.expire() == 7
    assert [log.id for log in (await store.invocations.list()).items] == ["r99"]
    assert retention.deleted == 7


async def test_zero_days_keeps_everything() -> None:
    store = MemoryStore()
    retention = LogRetention(store.invocations, retention_days=0, interval_s=0.01)
    retention.start()
    assert retention._task is None  # nothing runs: there is no age to delete by
    await retention.close()


async def test_each_function_keeps_its_newest_records_beyond_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    logs = [dataclasses.replace(record(i), created_at=now - timedelta(minutes=i)) for i in range(7)]
    other = dataclasses.replace(record(50), function_name="other", created_at=now)
    await store.invocations.add_many([*logs, other])
    monkeypatch.setattr(log_retention, "ROUND_LIMIT", 2)
    retention = LogRetention(store.invocations, 0, 3600, keep_per_function=3)
    retention.start()
    assert retention._task is not None  # a count alone is a reason to run
    await retention.close()
    assert await retention.expire() == 4
    kept = sorted(log.id for log in (await store.invocations.list()).items)
    assert kept == ["r0", "r1", "r2", "r50"]
