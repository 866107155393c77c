"""The TriggerRepository contract on every store: create, get, list by name with cursors,
pause and resume, delete, the refusals, and a change-log entry for every write (how other
daemons learn to start or stop consumers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nova.core.changes import ChangeKind
from nova.core.queue_triggers import (
    QueueTrigger,
    TriggerAlreadyExists,
    TriggerNotFound,
    TriggerSource,
)
from nova.store import Store

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _trigger(name: str, source: TriggerSource = TriggerSource.NATS) -> QueueTrigger:
    return QueueTrigger(
        name=name,
        function="resize",
        qualifier="prod",
        source=source,
        target="uploads.>",
        url="nats://user:pw@broker:4222",
        batch_size=25,
        concurrency=4,
        enabled=True,
        created_at=EPOCH,
        updated_at=EPOCH,
    )


async def test_create_get_list_pause_delete(store: Store) -> None:
    head = await store.changes.head()
    created = await store.triggers.create(_trigger("uploads"))
    assert created.created_at > EPOCH  # the store's clock, not the caller's
    assert await store.triggers.get("uploads") == created
    await store.triggers.create(_trigger("orders", TriggerSource.REDIS))
    first = await store.triggers.list(limit=1)
    assert [t.name for t in first.items] == ["orders"]
    assert first.items[0].source is TriggerSource.REDIS
    second = await store.triggers.list(limit=1, cursor=first.next)
    assert [t.name for t in second.items] == ["uploads"]
    assert second.next is None

    paused = await store.triggers.set_enabled("uploads", False)
    assert not paused.enabled
    assert not (await store.triggers.get("uploads")).enabled
    assert (await store.triggers.set_enabled("uploads", True)).enabled

    assert (await store.triggers.delete("uploads")).name == "uploads"
    with pytest.raises(TriggerNotFound):
        await store.triggers.get("uploads")
    changes = await store.changes.since(head)
    assert [(c.kind, c.alias, c.function_name) for c in changes] == [
        (ChangeKind.TRIGGER_CHANGED, "uploads", ""),
        (ChangeKind.TRIGGER_CHANGED, "orders", ""),
        (ChangeKind.TRIGGER_CHANGED, "uploads", ""),
        (ChangeKind.TRIGGER_CHANGED, "uploads", ""),
        (ChangeKind.TRIGGER_CHANGED, "uploads", ""),
    ]


async def test_every_field_round_trips(store: Store) -> None:
    stored = await store.triggers.create(_trigger("t1", TriggerSource.RABBITMQ))
    got = await store.triggers.get("t1")
    assert got == stored
    assert (got.function, got.qualifier, got.target, got.url) == (
        "resize",
        "prod",
        "uploads.>",
        "nats://user:pw@broker:4222",
    )
    assert (got.batch_size, got.concurrency, got.enabled) == (25, 4, True)


async def test_refusals(store: Store) -> None:
    await store.triggers.create(_trigger("dup"))
    head = await store.changes.head()
    with pytest.raises(TriggerAlreadyExists):
        await store.triggers.create(_trigger("dup"))
    with pytest.raises(TriggerNotFound):
        await store.triggers.delete("missing")
    with pytest.raises(TriggerNotFound):
        await store.triggers.set_enabled("missing", False)
    assert await store.changes.head() == head  # nothing written by a refused call
