"""Invocation-log retention: records past the age or count go, in bounded rounds; 0 keeps all."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from nova.core.errors import StoreUnavailable
from nova.core.models import InvocationLog
from nova.core.quotas import Quotas
from nova.core.tenancy import Environment
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
    assert not retention.running  # nothing runs: there is no age to delete by
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
    assert retention.running  # a count alone is a reason to run
    await retention.close()
    assert await retention.expire() == 4
    kept = sorted(log.id for log in (await store.invocations.list()).items)
    assert kept == ["r0", "r1", "r2", "r50"]


async def test_an_environment_s_own_retention_replaces_the_daemon_s() -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    long_kept, short_kept = Environment("acme", "shop", "prod"), Environment("acme", "shop", "dev")

    def aged(log_id: int, function: str, days: float) -> InvocationLog:
        at = now - timedelta(days=days)
        return dataclasses.replace(record(log_id), function_name=function, created_at=at)

    await store.invocations.add_many(
        [
            aged(1, "fn", 8),  # the default environment: the daemon's 7 days
            aged(2, "fn", 6),
            aged(3, "acme.shop.prod.f", 8),  # keeps 30 days
            aged(4, "acme.shop.prod.f", 31),
            aged(5, "acme.shop.dev.f", 2),  # keeps 1 day
            aged(6, "acme.shop.dev.f", 0.5),
            aged(7, "acme.shop.test.f", 8),  # quotas without a retention: the daemon's
        ]
    )

    async def quotas() -> dict[Environment, Quotas]:
        return {
            long_kept: Quotas(log_retention_days=30),
            short_kept: Quotas(log_retention_days=1),
            Environment("acme", "shop", "test"): Quotas(max_functions=3),
        }

    retention = LogRetention(store.invocations, 7, 3600, quotas=quotas)
    assert await retention.expire() == 4
    kept = sorted(log.id for log in (await store.invocations.list()).items)
    assert kept == ["r2", "r3", "r6"]


async def test_quotas_alone_are_a_reason_to_run() -> None:
    async def quotas() -> dict[Environment, Quotas]:
        return {}

    retention = LogRetention(MemoryStore().invocations, 0, 3600, quotas=quotas)
    retention.start()
    assert retention.running
    await retention.close()


async def test_quotas_that_cannot_be_read_delete_nothing() -> None:
    store = MemoryStore()
    old = dataclasses.replace(record(1), created_at=datetime.now(UTC) - timedelta(days=8))
    await store.invocations.add_many([old])

    async def quotas() -> dict[Environment, Quotas]:
        raise StoreUnavailable("the store is away")

    retention = LogRetention(store.invocations, 7, 3600, quotas=quotas)
    with pytest.raises(StoreUnavailable):
        await retention.expire()
    assert len((await store.invocations.list()).items) == 1


class _SlowLogs:
    """Every delete takes 0.1 s and finds a full round, so a sweep never ends by itself."""

    def __init__(self) -> None:
        self.began = asyncio.Event()
        self.started = self.finished = 0

    async def delete_older_than(self, cutoff: datetime, limit: int, **_: object) -> int:
        self.started += 1
        self.began.set()
        await asyncio.sleep(0.1)  # the delete's transaction: cut here, SQLite's lock stays held
        self.finished += 1
        return limit

    async def delete_beyond_count(self, keep: int, limit: int) -> int:
        return 0


async def test_close_stops_a_sweep_between_deletes_never_inside_one() -> None:
    logs = _SlowLogs()
    retention = LogRetention(logs, retention_days=7, interval_s=3600)
    retention.start()
    await asyncio.wait_for(logs.began.wait(), 5)
    await asyncio.wait_for(retention.close(), 5)
    assert logs.started == logs.finished == 1
