"""The CounterRepository contract on every store: totals add up, across writers and reopens."""

from __future__ import annotations

import asyncio

from nova.store import Store

from .backends import Target


async def test_deltas_add_to_totals(store: Store) -> None:
    assert await store.counters.totals() == {}
    await store.counters.add({"invocations": 3, "errors": 1, "cold_starts": 0})
    await store.counters.add({"invocations": 2})
    # A zero delta stores nothing: totals list only what was ever counted.
    assert await store.counters.totals() == {"invocations": 5, "errors": 1}


async def test_concurrent_adds_all_count(store: Store) -> None:
    await asyncio.gather(*(store.counters.add({"invocations": 1}) for _ in range(20)))
    assert (await store.counters.totals())["invocations"] == 20


async def test_totals_survive_reopening(sql_target: Target) -> None:
    target = sql_target
    first = await target.open()
    await first.counters.add({"invocations": 7})
    await first.close()
    second = await target.open()
    try:
        await second.counters.add({"invocations": 1})
        assert await second.counters.totals() == {"invocations": 8}
    finally:
        await second.close()
