"""How long the store's transactions take, kept as Prometheus reads a histogram.

Measured from asking for a connection to commit or rollback, so it includes waiting for the
pool and, on SQLite, for the write lock: what a slow store costs the requests that use it.
Plain counters, no lock: the event loop is the only writer.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass(frozen=True, slots=True)
class TimingSnapshot:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf excluded
    count: int
    sum_s: float


class TransactionTimings:
    def __init__(self) -> None:
        self._counts = [0] * (len(BUCKETS_S) + 1)  # the last: slower than every bound
        self._sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(BUCKETS_S, seconds)] += 1
        self._sum_s += seconds

    def snapshot(self) -> TimingSnapshot:
        cumulative, buckets = 0, []
        for bound, count in zip(BUCKETS_S, self._counts, strict=False):
            cumulative += count
            buckets.append((bound, cumulative))
        return TimingSnapshot(tuple(buckets), sum(self._counts), self._sum_s)
