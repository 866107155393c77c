"""Versions, aliases and the change log: the store contract on SQLite, PostgreSQL and the fake."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from nova.core.changes import ChangeKind
from nova.core.errors import (
    AliasConflict,
    AliasNotFound,
    FunctionNotFound,
    VersionInUse,
    VersionNotFound,
)
from nova.core.models import CodeBundle, CodeFile, FunctionConfig
from nova.core.versions import CanaryPolicy, ChangeReason, VersionWeight
from nova.store import Store

from .backends import Target

CONFIG = FunctionConfig(name="hello", runtime="python", handler="handler.handler")


def code(text: str) -> CodeBundle:
    return CodeBundle(
        {"handler.py": CodeFile(f"def handler(e, c):\n    return {text!r}\n".encode())}
    )


def route(*pairs: tuple[int, int]) -> tuple[VersionWeight, ...]:
    return tuple(VersionWeight(version, weight) for version, weight in pairs)


async def test_publish_freezes_latest_and_unchanged_code_returns_the_same_version(
    store: Store,
) -> None:
    created = await store.functions.create(CONFIG, code("one"))
    first, made = await store.versions.publish("hello", "first cut")
    assert made
    assert (first.number, first.code_hash, first.config) == (1, created.code_hash, CONFIG)
    assert (first.function_id, first.description) == (created.id, "first cut")

    again, made_again = await store.versions.publish("hello", "")
    assert (again, made_again) == (first, False)

    await store.functions.update("hello", dataclasses.replace(CONFIG, memory_mb=256), None)
    second, _ = await store.versions.publish("hello", "")
    assert second.number == 2
    assert second.config.memory_mb == 256
    assert (await store.versions.get("hello", 1)).config.memory_mb == 128  # immutable

    await store.functions.update("hello", dataclasses.replace(CONFIG, memory_mb=256), code("two"))
    third, _ = await store.versions.publish("hello", "")
    assert third.number == 3
    page = await store.versions.list("hello")
    assert [version.number for version in page.items] == [1, 2, 3]
    old = await store.functions.get_code_by_hash(created.id, first.code_hash)
    assert old == code("one")  # a version's files stay after $LATEST moved on
    assert await store.functions.get_code_by_hash(created.id, third.code_hash) == code("two")


async def test_version_numbers_are_never_reused(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    await store.versions.publish("hello", "")
    await store.functions.update("hello", CONFIG, code("two"))
    await store.versions.publish("hello", "")
    await store.versions.delete("hello", 2)
    with pytest.raises(VersionNotFound):
        await store.versions.get("hello", 2)
    republished, made = await store.versions.publish("hello", "")
    assert (republished.number, made) == (3, True)


async def test_concurrent_publishes_never_share_a_number(store: Store) -> None:
    await store.functions.create(CONFIG, code("start"))

    async def change_and_publish(index: int) -> int:
        await store.functions.update("hello", CONFIG, code(f"v{index}"))
        version, _ = await store.versions.publish("hello", "")
        return version.number

    numbers = await asyncio.gather(*(change_and_publish(index) for index in range(20)))
    listed = [version.number for version in (await store.versions.list("hello")).items]
    assert len(listed) == len(set(listed))
    assert set(numbers) <= set(listed)
    assert listed == list(range(1, len(listed) + 1))

    same = await asyncio.gather(*(store.versions.publish("hello", "") for _ in range(20)))
    assert len({version.number for version, _ in same}) == 1  # unchanged: one version for all
    assert sum(made for _, made in same) <= 1


async def test_unknown_function_and_version(store: Store) -> None:
    with pytest.raises(FunctionNotFound):
        await store.versions.publish("ghost", "")
    with pytest.raises(FunctionNotFound):
        await store.versions.list("ghost")
    await store.functions.create(CONFIG, code("one"))
    with pytest.raises(VersionNotFound):
        await store.versions.get("hello", 7)
    with pytest.raises(VersionNotFound):
        await store.versions.delete("hello", 7)
    assert (await store.versions.list("hello")).items == []


async def test_versions_page_in_number_order(store: Store) -> None:
    await store.functions.create(CONFIG, code("0"))
    for index in range(5):
        await store.functions.update("hello", CONFIG, code(str(index + 1)))
        await store.versions.publish("hello", "")
    first = await store.versions.list("hello", limit=2)
    assert [version.number for version in first.items] == [1, 2]
    assert first.next is not None
    rest = await store.versions.list("hello", limit=10, cursor=first.next)
    assert [version.number for version in rest.items] == [3, 4, 5]
    assert rest.next is None


async def test_aliases_route_record_history_and_roll_back(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    await store.versions.publish("hello", "")
    await store.functions.update("hello", CONFIG, code("two"))
    await store.versions.publish("hello", "")

    prod = await store.aliases.put("hello", "prod", route((1, 100)), description="live")
    assert (prod.routing, prod.revision, prod.description) == (route((1, 100)), 1, "live")
    assert (await store.aliases.put("hello", "prod", route((1, 100)), description="live")) == prod

    canary = await store.aliases.put("hello", "prod", route((1, 90), (2, 10)), description="live")
    assert canary.revision == 2
    assert canary.versions == (1, 2)
    assert await store.aliases.get("hello", "prod") == canary

    rolled = await store.aliases.rollback("hello", "prod")
    assert rolled.routing == route((1, 100))
    history = await store.aliases.history("hello", "prod")
    assert [(entry.before, entry.after, entry.reason) for entry in history] == [
        (route((1, 90), (2, 10)), route((1, 100)), ChangeReason.ROLLBACK),
        (route((1, 100)), route((1, 90), (2, 10)), ChangeReason.MANUAL),
        ((), route((1, 100)), ChangeReason.MANUAL),
    ]
    assert [alias.name for alias in await store.aliases.of("hello")] == ["prod"]

    with pytest.raises(VersionInUse, match="prod"):
        await store.versions.delete("hello", 1)
    with pytest.raises(VersionNotFound):
        await store.aliases.put("hello", "prod", route((1, 50), (9, 50)))
    with pytest.raises(AliasConflict):
        await store.aliases.put("hello", "prod", route((2, 100)), expected_revision=1)
    moved = await store.aliases.put(
        "hello", "prod", route((2, 100)), expected_revision=rolled.revision, description="live"
    )
    assert moved.routing == route((2, 100))
    await store.versions.delete("hello", 1)  # nothing routes to it any more

    deleted = await store.aliases.delete("hello", "prod")
    assert deleted == moved
    with pytest.raises(AliasNotFound):
        await store.aliases.get("hello", "prod")
    assert (await store.aliases.history("hello", "prod"))[0].after == ()


async def test_a_fresh_alias_has_nothing_to_roll_back_to(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    await store.versions.publish("hello", "")
    await store.aliases.put("hello", "prod", route((1, 100)))
    with pytest.raises(AliasConflict, match="roll back"):
        await store.aliases.rollback("hello", "prod")
    with pytest.raises(AliasNotFound):
        await store.aliases.rollback("hello", "other")


async def test_policies_and_analyses(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    await store.versions.publish("hello", "")
    policy = CanaryPolicy(steps=(20, 100), interval_s=5, min_samples=10)
    guarded = await store.aliases.put("hello", "prod", route((1, 100)), policy=policy)
    await store.aliases.put("hello", "plain", route((1, 100)))
    assert guarded.policy == policy
    assert [alias.name for alias in await store.aliases.with_policy()] == ["prod"]
    await store.aliases.record_analysis(guarded.function_id, "prod", {"verdict": "hold"})
    analysed = await store.aliases.get("hello", "prod")
    assert analysed.analysis == {"verdict": "hold"}
    assert analysed.revision == guarded.revision  # an analysis is not a routing change


async def test_deleting_the_function_takes_versions_and_aliases_with_it(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    await store.versions.publish("hello", "")
    await store.aliases.put("hello", "prod", route((1, 100)))
    await store.functions.delete("hello")
    again = await store.functions.create(CONFIG, code("one"))
    assert (await store.versions.list("hello")).items == []
    assert await store.aliases.of("hello") == []
    first, _ = await store.versions.publish("hello", "")
    assert (first.number, first.function_id) == (1, again.id)


async def test_every_change_is_logged_in_order(store: Store) -> None:
    start = await store.changes.head()
    created = await store.functions.create(CONFIG, code("one"))
    await store.functions.update("hello", CONFIG, code("two"))
    await store.versions.publish("hello", "")
    await store.aliases.put("hello", "prod", route((1, 100)))
    await store.aliases.delete("hello", "prod")
    await store.versions.delete("hello", 1)
    await store.functions.delete("hello")
    changes = await store.changes.since(start)
    assert [change.kind for change in changes] == [
        ChangeKind.FUNCTION_CREATED,
        ChangeKind.FUNCTION_UPDATED,
        ChangeKind.VERSION_PUBLISHED,
        ChangeKind.ALIAS_CHANGED,
        ChangeKind.ALIAS_DELETED,
        ChangeKind.VERSION_DELETED,
        ChangeKind.FUNCTION_DELETED,
    ]
    assert [change.seq for change in changes] == sorted({change.seq for change in changes})
    assert {change.function_id for change in changes} == {created.id}
    assert changes[2].version == 1
    assert changes[3].alias == "prod"
    assert await store.changes.head() == changes[-1].seq
    assert await store.changes.since(changes[-1].seq) == []
    assert [c.seq for c in await store.changes.since(start, limit=2)] == [
        changes[0].seq,
        changes[1].seq,
    ]


async def test_a_failed_write_logs_nothing(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    head = await store.changes.head()
    with pytest.raises(VersionNotFound):
        await store.aliases.put("hello", "prod", route((3, 100)))
    assert await store.changes.since(head) == []


async def test_wait_returns_after_a_change_or_the_timeout(store: Store, target: Target) -> None:
    await asyncio.wait_for(store.changes.wait(0.05), 5)  # nothing happens: the timeout
    # PostgreSQL wakes the waiter with NOTIFY at commit; SQLite has no such signal between
    # processes, so there waiting is polling: it returns at its timeout.
    waiting = asyncio.create_task(store.changes.wait(1 if target.backend == "sqlite" else 30))
    await asyncio.sleep(0.2)  # the listener (PostgreSQL) is up
    await store.functions.create(CONFIG, code("one"))
    await asyncio.wait_for(waiting, 10)


async def test_prune_drops_old_entries(store: Store) -> None:
    await store.functions.create(CONFIG, code("one"))
    assert await store.changes.prune(datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.changes.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await store.changes.since(0) == []
