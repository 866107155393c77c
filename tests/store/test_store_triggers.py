"""The RouteRepository and ScheduleRepository contracts on every store: conflicts, rows going
with their function, and a schedule tick claimed once - also by two stores on one database."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from nova.core.errors import FunctionNotFound, InvocationNotFound
from nova.core.events import EventStatus, NewEvent
from nova.core.models import CodeBundle
from nova.core.triggers import (
    CatchUp,
    FunctionUrlConfig,
    NewSchedule,
    RouteConflict,
    RouteNotFound,
    RouteSpec,
    ScheduleNotFound,
    SignatureCheck,
    TriggerAuth,
)
from nova.store import Store

from .backends import Target
from .test_store_functions import config

TICK = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
SIGNED = SignatureCheck("hook-key", "x-hub-signature-256", "sha256", "x-ts", 60)


async def _function(store: Store, name: str = "hello") -> None:
    await store.functions.create(config(name), CodeBundle({}))


def _schedule(function: str = "hello", **overrides: object) -> NewSchedule:
    fields: dict[str, object] = {
        "function": function,
        "qualifier": "",
        "expression": "@every 1s",
        "timezone": "UTC",
        "payload": b'{"a":1}',
        "catch_up": CatchUp.LATEST,
        "enabled": True,
        "next_run_at": TICK,
    }
    return NewSchedule(**(fields | overrides))  # type: ignore[arg-type]


def _event(key: str, function: str = "hello") -> NewEvent:
    return NewEvent(f"id-{key}", function, "", b"{}", idempotency_key=key, source="schedule:x")


async def test_routes_add_list_delete_and_conflict(store: Store) -> None:
    await _function(store)
    spec = RouteSpec("hello", "live", TriggerAuth.NONE, SIGNED)
    route = await store.routes.add("POST", "/hooks/gh", spec)
    other = await store.routes.add("ANY", "/hooks/gh", RouteSpec("hello", ""))
    assert (await store.routes.get(route.id)).spec == spec
    with pytest.raises(RouteConflict):
        await store.routes.add("POST", "/hooks/gh", RouteSpec("hello", ""))
    assert [(r.method, r.path_prefix) for r in await store.routes.all()] == [
        ("ANY", "/hooks/gh"),
        ("POST", "/hooks/gh"),
    ]
    assert (await store.routes.delete(other.id)).id == other.id
    with pytest.raises(RouteNotFound):
        await store.routes.delete(other.id)
    with pytest.raises(FunctionNotFound):
        await store.routes.add("GET", "/x", RouteSpec("missing", ""))


async def test_function_urls_round_trip_and_replace(store: Store) -> None:
    await _function(store)
    assert await store.routes.urls() == []
    await store.routes.put_url(FunctionUrlConfig("hello", TriggerAuth.NONE, SIGNED))
    await store.routes.put_url(FunctionUrlConfig("hello", TriggerAuth.NONE, None))
    assert await store.routes.urls() == [FunctionUrlConfig("hello", TriggerAuth.NONE, None)]
    with pytest.raises(FunctionNotFound):
        await store.routes.put_url(FunctionUrlConfig("missing"))


async def test_triggers_go_with_their_function(store: Store) -> None:
    await _function(store)
    await store.routes.add("GET", "/a", RouteSpec("hello", ""))
    await store.routes.put_url(FunctionUrlConfig("hello", TriggerAuth.NONE))
    schedule = await store.schedules.add(_schedule())
    await store.functions.delete("hello")
    assert await store.routes.all() == []
    assert await store.routes.urls() == []
    with pytest.raises(ScheduleNotFound):
        await store.schedules.get(schedule.id)


async def test_schedules_add_list_update_delete(store: Store) -> None:
    await _function(store)
    await _function(store, "other")
    first = await store.schedules.add(_schedule())
    second = await store.schedules.add(_schedule("other", timezone="Europe/Paris"))
    assert (await store.schedules.get(first.id)).payload == b'{"a":1}'
    page = await store.schedules.list(limit=1)
    rest = await store.schedules.list(limit=1, cursor=page.next)
    assert {page.items[0].id, rest.items[0].id} == {first.id, second.id}
    assert rest.next is None
    assert [s.id for s in (await store.schedules.list(function="other")).items] == [second.id]
    paused = dataclasses.replace(first, enabled=False, catch_up=CatchUp.ALL)
    assert await store.schedules.update(paused, TICK + timedelta(seconds=1)) is None
    stored = await store.schedules.update(paused, TICK)
    assert stored is not None
    assert not stored.enabled
    assert stored.catch_up is CatchUp.ALL
    assert await store.schedules.due(TICK, 10) == [second]
    await store.schedules.delete(first.id)
    with pytest.raises(ScheduleNotFound):
        await store.schedules.delete(first.id)
    with pytest.raises(FunctionNotFound):
        await store.schedules.add(_schedule("missing"))


async def test_fire_claims_a_tick_once_and_queues_its_events(store: Store) -> None:
    await _function(store)
    schedule = await store.schedules.add(_schedule())
    later = TICK + timedelta(seconds=1)
    assert await store.schedules.fire(schedule.id, TICK, later, [_event("k1")])
    assert not await store.schedules.fire(schedule.id, TICK, later, [_event("k2")])
    stored = await store.schedules.get(schedule.id)
    assert (stored.next_run_at, stored.last_run_at) == (later, TICK)
    event = await store.events.get("id-k1")
    assert event.status is EventStatus.PENDING
    assert event.source == "schedule:x"
    with pytest.raises(InvocationNotFound):
        await store.events.get("id-k2")
    # An event whose key the function already has is skipped, the claim still made.
    assert await store.schedules.fire(schedule.id, later, later + timedelta(1), [_event("k1")])
    # A paused schedule's tick is not claimed.
    paused = dataclasses.replace(await store.schedules.get(schedule.id), enabled=False)
    await store.schedules.update(paused, paused.next_run_at)
    assert not await store.schedules.fire(schedule.id, paused.next_run_at, TICK, [])


async def test_two_stores_on_one_database_claim_each_tick_once(sql_target: Target) -> None:
    """Two daemons' stores race for the same ticks: each tick is claimed by exactly one."""
    first, second = await sql_target.open(), await sql_target.open()
    try:
        await _function(first)
        schedule = await first.schedules.add(_schedule())
        for n in range(20):
            tick = TICK + timedelta(seconds=n)
            nxt = tick + timedelta(seconds=1)
            wins = await asyncio.gather(
                first.schedules.fire(schedule.id, tick, nxt, [_event(f"a{n}")]),
                second.schedules.fire(schedule.id, tick, nxt, [_event(f"b{n}")]),
            )
            assert sorted(wins) == [False, True]
        stats = await first.events.stats(TICK)
        assert stats.pending == 20
    finally:
        await first.close()
        await second.close()
