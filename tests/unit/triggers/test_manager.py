"""The trigger manager keeps one consumer per enabled stored trigger: started, restarted when
the trigger changes in what the consumer uses, stopped when paused or deleted, and left as it
is when the store cannot be read."""

from __future__ import annotations

import dataclasses

from nova.core.errors import StoreUnavailable
from nova.core.queue_triggers import QueueTrigger
from nova.store.memory import MemoryStore
from nova.triggers.consumer import ConsumerState, TriggerConsumer
from nova.triggers.manager import TriggerManager
from tests.unit.triggers.fakes import Rig, ok, trigger


async def test_reconcile_starts_restarts_and_stops_consumers() -> None:
    store = MemoryStore()
    made: list[TriggerConsumer] = []

    def make(stored: QueueTrigger) -> TriggerConsumer:
        consumer = Rig([ok]).consumer
        consumer.trigger = stored
        made.append(consumer)
        return consumer

    manager = TriggerManager(store.triggers, make, stop_timeout_s=1)
    await store.triggers.create(trigger(name="a"))
    await store.triggers.create(trigger(name="b", enabled=False))
    await manager.reconcile()
    assert [c.trigger.name for c in manager.consumers()] == ["a"]
    first = manager.consumer("a")

    await manager.reconcile()  # nothing changed: the same consumer keeps running
    assert manager.consumer("a") is first
    assert len(made) == 1

    await store.triggers.delete("a")
    await store.triggers.create(trigger(name="a", batch_size=99))
    await store.triggers.set_enabled("b", True)
    await manager.reconcile()
    assert first is not None
    assert first.state is ConsumerState.STOPPED
    restarted = manager.consumer("a")
    assert restarted is not None
    assert restarted.trigger.batch_size == 99
    assert manager.consumer("b") is not None

    await store.triggers.set_enabled("a", False)
    await manager.reconcile()
    assert [c.trigger.name for c in manager.consumers()] == ["b"]

    async def store_away(**kwargs: object) -> None:
        raise StoreUnavailable("down")

    store.triggers.list = store_away  # type: ignore[assignment,method-assign]
    await manager.reconcile()  # cannot read: keeps what runs
    assert [c.trigger.name for c in manager.consumers()] == ["b"]
    await manager.close()
    assert all(c.state is ConsumerState.STOPPED for c in made)


def test_same_consumer_ignores_what_the_consumer_does_not_use() -> None:
    base = trigger()
    assert base.same_consumer(dataclasses.replace(base, enabled=False))
    assert not base.same_consumer(dataclasses.replace(base, target="other"))
    assert not base.same_consumer(dataclasses.replace(base, concurrency=9))
