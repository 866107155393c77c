"""The scheduler on a fake clock: a tick fires once with the schedule id and tick time in the
event, paused schedules do not fire, catch-up policies after downtime, and two schedulers on
one SQLite or PostgreSQL store never run a tick twice."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from nova.core.events import AsyncEvent, EventFilter
from nova.core.models import CodeBundle
from nova.core.triggers import CatchUp
from nova.observability.trigger_metrics import TriggerMetrics
from nova.schedules.scheduler import Scheduler, SchedulerLimits
from nova.schedules.service import ScheduleChanges, ScheduleService
from nova.store import Store
from nova.store.memory import MemoryStore
from tests.store.backends import POSTGRES, SQLITE, open_target
from tests.store.test_store_functions import config

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def _setup(
    store: Store, clock: Clock, limits: SchedulerLimits = SchedulerLimits()
) -> tuple[ScheduleService, Scheduler, TriggerMetrics]:
    await store.functions.create(config("tick"), CodeBundle({}))
    metrics = TriggerMetrics()
    scheduler = Scheduler(store.schedules, asyncio.Event(), metrics, limits, clock)
    return ScheduleService(store.schedules, 1000, clock), scheduler, metrics


async def _events(store: Store) -> list[AsyncEvent]:
    """Every queued event, oldest first (replayed through the dead-letter-free claim)."""
    claimed = await store.events.claim("test", 10_000, 60)
    await store.events.purge(EventFilter())  # nothing dead: keeps the queue as it was
    return sorted(claimed, key=lambda event: orjson.loads(event.payload)["time"])


async def test_a_tick_fires_once_with_its_schedule_and_time() -> None:
    store, clock = MemoryStore(), Clock()
    service, scheduler, metrics = await _setup(store, clock)
    schedule = await service.add("tick", "@every 1s", payload=b'{"k":"v"}')
    assert await scheduler.run_due() == 0  # the first tick is one second after creation
    clock.advance(1)
    assert await scheduler.run_due() == 1
    assert await scheduler.run_due() == 0  # the same tick again: nothing
    (event,) = await _events(store)
    body = orjson.loads(event.payload)
    assert body["schedule_id"] == schedule.id
    assert body["time"] == "2026-12-06T03:00:01Z"
    assert body["detail"] == {"k": "v"}
    assert body["source"] == "nova.schedule"
    assert event.source == f"schedule:{schedule.id}"
    assert metrics.schedule_runs["tick"] == 1
    stored = await service.get(schedule.id)
    assert stored.last_run_at == T0 + timedelta(seconds=1)
    assert stored.next_run_at == T0 + timedelta(seconds=2)


async def test_paused_schedules_do_not_fire_and_resume_from_now() -> None:
    store, clock = MemoryStore(), Clock()
    service, scheduler, metrics = await _setup(store, clock)
    schedule = await service.add("tick", "@every 1s")
    await service.update(schedule.id, ScheduleChanges(enabled=False))
    clock.advance(30)
    assert await scheduler.run_due() == 0
    resumed = await service.update(schedule.id, ScheduleChanges(enabled=True))
    assert resumed.next_run_at == clock.now + timedelta(seconds=1)  # paused time not caught up
    clock.advance(1)
    assert await scheduler.run_due() == 1
    assert not metrics.schedule_missed


@pytest.mark.parametrize(
    ("policy", "runs", "missed"),
    [(CatchUp.LATEST, 1, 9), (CatchUp.NONE, 0, 10), (CatchUp.ALL, 4, 6)],
)
async def test_catch_up_after_downtime(policy: CatchUp, runs: int, missed: int) -> None:
    store, clock = MemoryStore(), Clock()
    limits = SchedulerLimits(grace_s=5, max_catch_up=4)
    service, scheduler, metrics = await _setup(store, clock, limits)
    await service.add("tick", "@every 1m", catch_up=policy)
    clock.advance(10 * 60 + 30)  # ten ticks passed while the daemon was down
    assert await scheduler.run_due() == runs
    assert metrics.schedule_missed["tick"] == missed
    times = [orjson.loads(event.payload)["time"] for event in await _events(store)]
    if policy is CatchUp.LATEST:
        assert times == ["2026-12-06T03:10:00Z"]
    if policy is CatchUp.ALL:  # the newest ones, oldest first
        assert times == [f"2026-12-06T03:{minute:02d}:00Z" for minute in (7, 8, 9, 10)]
    clock.advance(30)  # the next tick is on time again, whatever the policy
    assert await scheduler.run_due() == 1


async def test_catch_up_none_still_runs_a_tick_within_the_grace() -> None:
    store, clock = MemoryStore(), Clock()
    limits = SchedulerLimits(grace_s=5)
    service, scheduler, _ = await _setup(store, clock, limits)
    await service.add("tick", "@every 1m", catch_up=CatchUp.NONE)
    clock.advance(63)  # a slow poll, not downtime
    assert await scheduler.run_due() == 1


@pytest.mark.parametrize("backend", [SQLITE, POSTGRES])
async def test_two_schedulers_on_one_store_run_each_tick_once(backend: str, tmp_path: Path) -> None:
    async with open_target(backend, tmp_path) as target:
        first, second = await target.open(), await target.open()
        try:
            clock = Clock()
            service, one, _ = await _setup(first, clock)
            other = Scheduler(
                second.schedules, asyncio.Event(), TriggerMetrics(), SchedulerLimits(), clock
            )
            await service.add("tick", "@every 1s")
            for _ in range(15):
                clock.advance(1)
                await asyncio.gather(one.run_due(), other.run_due())
            times = [orjson.loads(event.payload)["time"] for event in await _events(first)]
            assert len(times) == 15
            assert len(set(times)) == 15
        finally:
            await first.close()
            await second.close()


async def test_a_schedule_that_cannot_be_read_does_not_stop_the_others() -> None:
    store, clock = MemoryStore(), Clock()
    service, scheduler, _ = await _setup(store, clock)
    broken = await service.add("tick", "@every 1s")
    await service.add("tick", "@every 1s")
    # What a time zone missing from this host's tzdata looks like once stored.
    gone = dataclasses.replace(broken, timezone="Gone/Away")
    await store.schedules.update(gone, broken.next_run_at)
    clock.advance(1)
    assert await scheduler.run_due() == 1


async def test_a_new_timing_starts_from_its_next_tick() -> None:
    store, clock = MemoryStore(), Clock()
    service, scheduler, _ = await _setup(store, clock)
    schedule = await service.add("tick", "@every 1s")
    clock.advance(90)
    changed = await service.update(
        schedule.id, ScheduleChanges(expression="0 * * * *", timezone="Asia/Kolkata")
    )
    assert changed.next_run_at == datetime(2026, 12, 6, 3, 30, tzinfo=UTC)  # 09:00 in Kolkata
    assert await scheduler.run_due() == 0  # the old timing's missed ticks are not caught up
