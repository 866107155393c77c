"""CounterFlusher: deltas reach the store once, survive a store outage, and totals add both."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nova.core.counters import DaemonCounters
from nova.core.errors import StoreUnavailable
from nova.observability.counter_flusher import CounterFlusher
from nova.store.memory import MemoryStore


class FlakyTotals:
    def __init__(self) -> None:
        self.stored: dict[str, int] = {"invocations": 100}  # another daemon's, or a past run's
        self.down = False

    async def add(self, deltas: Mapping[str, int]) -> None:
        if self.down:
            raise StoreUnavailable("the store is away")
        for name, value in deltas.items():
            self.stored[name] = self.stored.get(name, 0) + value

    async def totals(self) -> dict[str, int]:
        return dict(self.stored)


async def test_each_count_is_added_once_and_totals_include_the_unflushed() -> None:
    counters, totals = DaemonCounters(), FlakyTotals()
    flusher = CounterFlusher(totals, counters, interval_s=60)
    counters.invocations += 3
    counters.cold_starts += 1
    assert (await flusher.totals())["invocations"] == 103  # before any flush
    await flusher.flush()
    await flusher.flush()  # nothing new: nothing added twice
    assert totals.stored["invocations"] == 103
    assert totals.stored["cold_starts"] == 1
    counters.invocations += 2
    assert (await flusher.totals())["invocations"] == 105


async def test_counts_made_while_the_store_is_away_go_with_the_next_flush() -> None:
    counters, totals = DaemonCounters(), FlakyTotals()
    flusher = CounterFlusher(totals, counters, interval_s=60)
    counters.errors += 4
    totals.down = True
    with pytest.raises(StoreUnavailable):
        await flusher.flush()
    counters.errors += 1
    totals.down = False
    await flusher.flush()
    assert totals.stored["errors"] == 5


async def test_close_flushes_what_is_left_into_a_real_store() -> None:
    store, counters = MemoryStore(), DaemonCounters()
    flusher = CounterFlusher(store.counters, counters, interval_s=60)
    flusher.start()
    counters.timeouts += 2
    await flusher.close()
    assert await store.counters.totals() == {"timeouts": 2}
