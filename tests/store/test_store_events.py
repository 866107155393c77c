"""The EventQueue contract on every store: submit, idempotency, leases, settling, dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from nova.core.errors import InvocationAlreadyExists, InvocationNotFound, RequestInvalid
from nova.core.events import AttemptError, EventFilter, EventStatus, NewEvent
from nova.store import Store

from .backends import Target


def _event(event_id: str, function: str = "f", key: str | None = None) -> NewEvent:
    return NewEvent(event_id, function, "", b'{"n": 1}', idempotency_key=key)


def _error(attempt: int, error_type: str = "ValueError") -> AttemptError:
    return AttemptError(attempt, error_type, "boom", datetime.now(UTC))


async def test_submit_then_get(store: Store) -> None:
    assert await store.events.submit(_event("e1")) == ("e1", True)
    event = await store.events.get("e1")
    assert (event.status, event.attempts, event.payload) == (EventStatus.PENDING, 0, b'{"n": 1}')
    with pytest.raises(InvocationNotFound):
        await store.events.get("nope")
    with pytest.raises(InvocationAlreadyExists):
        await store.events.submit(_event("e1"))


async def test_idempotency_key_stores_once_per_function(store: Store) -> None:
    assert await store.events.submit(_event("a", key="k")) == ("a", True)
    assert await store.events.submit(_event("b", key="k")) == ("a", False)
    assert await store.events.submit(_event("c", function="g", key="k")) == ("c", True)
    with pytest.raises(InvocationNotFound):
        await store.events.get("b")


async def test_claim_leases_and_fences(store: Store) -> None:
    queue = store.events
    for index in range(3):
        await queue.submit(_event(f"e{index}", function="f" if index < 2 else "g"))
    first = await queue.claim("w1", 10, 30, exclude=["g"])
    assert sorted(event.id for event in first) == ["e0", "e1"]
    assert all(e.status is EventStatus.RUNNING and e.attempts == 1 for e in first)
    assert await queue.claim("w2", 10, 30, exclude=["g"]) == []  # leased to w1
    # Another owner cannot settle w1's event.
    assert not await queue.succeed("e0", "w2", b"{}")
    assert await queue.succeed("e0", "w1", b'{"output": 1}')
    assert (await queue.get("e0")).status is EventStatus.SUCCEEDED
    assert not await queue.succeed("e0", "w1", b"{}")  # settled once


async def test_expired_lease_is_claimed_again(store: Store) -> None:
    await store.events.submit(_event("e"))
    assert len(await store.events.claim("dead-worker", 1, 0.2)) == 1
    await asyncio.sleep(0.3)
    again = await store.events.claim("w2", 1, 30)
    assert [(e.id, e.attempts) for e in again] == [("e", 2)]
    assert not await store.events.succeed("e", "dead-worker", b"{}")
    assert await store.events.succeed("e", "w2", b"{}")


async def test_retry_waits_then_bury_keeps_every_error(store: Store) -> None:
    queue = store.events
    await queue.submit(_event("e"))
    await queue.claim("w", 1, 30)
    later = datetime.now(UTC) + timedelta(seconds=0.3)
    assert await queue.retry("e", "w", _error(1), b"null", later)
    assert await queue.claim("w", 1, 30) == []  # backing off
    await asyncio.sleep(0.4)
    (event,) = await queue.claim("w", 1, 30)
    assert event.attempts == 2
    follow_up = NewEvent("d1", "alerts", "", b"{}", source="destination:e")
    assert await queue.bury("e", "w", _error(2, "Function.Timeout"), None, follow_up)
    dead = await queue.get("e")
    assert dead.status is EventStatus.DEAD
    assert [(e.attempt, e.type) for e in dead.errors] == [
        (1, "ValueError"),
        (2, "Function.Timeout"),
    ]
    assert (await queue.get("d1")).source == "destination:e"
    stats = await queue.stats(datetime.now(UTC))
    assert (stats.pending, stats.running, stats.dead) == (1, 0, 1)


async def test_dead_letters_replay_and_purge(store: Store) -> None:
    queue = store.events
    for index, function in enumerate(["f", "f", "g"]):
        await queue.submit(_event(f"e{index}", function=function))
    for event in await queue.claim("w", 10, 30):
        kind = "Function.Timeout" if event.id == "e1" else "ValueError"
        await queue.bury(event.id, "w", _error(1, kind), None)
    page = await queue.dead_letters(limit=2)
    assert len(page.items) == 2
    assert page.next is not None
    rest = await queue.dead_letters(limit=2, cursor=page.next)
    assert {e.id for e in page.items + rest.items} == {"e0", "e1", "e2"}
    assert [e.id for e in (await queue.dead_letters(function="g")).items] == ["e2"]
    with pytest.raises(RequestInvalid):
        await queue.dead_letters(cursor="garbage")
    assert await queue.replay(EventFilter(function="f", error_type="Function.Timeout")) == 1
    replayed = await queue.get("e1")
    assert (replayed.status, replayed.attempts, len(replayed.errors)) == (
        EventStatus.PENDING,
        0,
        1,
    )
    assert await queue.purge(EventFilter(ids=("e0",))) == 1
    assert await queue.purge(EventFilter()) == 1  # everything dead: e2
    assert (await queue.stats(datetime.now(UTC))).dead == 0


async def test_release_does_not_count_the_attempt(store: Store) -> None:
    await store.events.submit(_event("e"))
    await store.events.claim("w", 1, 30)
    assert await store.events.release("e", "w")
    (event,) = await store.events.claim("w", 1, 30)
    assert event.attempts == 1


async def test_retention_deletes_only_old_succeeded(store: Store) -> None:
    queue = store.events
    for index in range(2):
        await queue.submit(_event(f"e{index}"))
    for event in await queue.claim("w", 10, 30):
        if event.id == "e0":
            await queue.succeed(event.id, "w", b"{}")
        else:
            await queue.bury(event.id, "w", _error(1), None)
    assert await queue.delete_finished_before(datetime.now(UTC) - timedelta(hours=1), 10) == 0
    assert await queue.delete_finished_before(datetime.now(UTC) + timedelta(seconds=1), 10) == 1
    assert (await queue.get("e1")).status is EventStatus.DEAD


async def test_two_workers_claim_disjoint_events(sql_target: Target) -> None:
    first, second = await sql_target.open(), await sql_target.open()
    try:
        for index in range(40):
            await first.events.submit(_event(f"e{index}"))
        claims = await asyncio.gather(
            *(store.events.claim(f"w{i}", 5, 30) for i in range(4) for store in (first, second))
        )
        ids = [event.id for claim in claims for event in claim]
        assert len(ids) == len(set(ids)) == 40
    finally:
        await first.close()
        await second.close()


async def test_submit_dead_goes_straight_to_the_dead_letters(store: Store) -> None:
    error = AttemptError(0, "Event.InvalidJson", "not JSON: b'\\xff'", datetime.now(UTC))
    assert await store.events.submit(_event("bad"), dead=error) == ("bad", True)
    event = await store.events.get("bad")
    assert event.status is EventStatus.DEAD
    assert [e.type for e in event.errors] == ["Event.InvalidJson"]
    assert await store.events.claim("w", 10, 30) == []
    assert await store.events.replay(EventFilter(error_type="Event.InvalidJson")) == 1
