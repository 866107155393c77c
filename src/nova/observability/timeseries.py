"""Rolling time series of invocations: per function, the last 60 minutes and the last 24 hours.

Each function has two rings of slots (60 one-minute, 24 one-hour); a slot counts invocations,
errors and cold starts and keeps two latency histograms (warm, cold) over fine log-spaced
buckets, from which percentiles are read to within one bucket (20 %). A slot is reused when
its minute or hour comes round again, so memory stays bounded per function. The global series
is the functions' merged at query time. What a daemon counts since it started, in memory:
several daemons each report their own.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

# 0.1 ms growing by 20 % a bucket: the 90th bound is ~1.3e3 s, past the longest timeout.
_BOUNDS_S: tuple[float, ...] = tuple(0.0001 * 1.2**i for i in range(90))
_QUANTILES = (0.5, 0.95, 0.99)


class Resolution(StrEnum):
    MINUTE = "minute"  # the last 60 minutes
    HOUR = "hour"  # the last 24 hours

    @property
    def seconds(self) -> int:
        return 60 if self is Resolution.MINUTE else 3600

    @property
    def slots(self) -> int:
        return 60 if self is Resolution.MINUTE else 24


@dataclass(slots=True)
class _Slot:
    index: int  # minutes or hours since the epoch
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    warm: list[int] | None = None  # latency histograms over _BOUNDS_S (+ overflow), lazily
    cold: list[int] | None = None

    def add(self, seconds: float, ok: bool, cold: bool) -> None:
        self.invocations += 1
        self.errors += not ok
        if cold:
            self.cold_starts += 1
            histogram = self.cold
            if histogram is None:
                histogram = self.cold = [0] * (len(_BOUNDS_S) + 1)
        else:
            histogram = self.warm
            if histogram is None:
                histogram = self.warm = [0] * (len(_BOUNDS_S) + 1)
        histogram[bisect_left(_BOUNDS_S, seconds)] += 1


class _Ring:
    __slots__ = ("_slots", "resolution")

    def __init__(self, resolution: Resolution) -> None:
        self.resolution = resolution
        self._slots: list[_Slot | None] = [None] * resolution.slots

    def slot(self, index: int) -> _Slot:
        slots = self._slots
        position = index % len(slots)
        slot = slots[position]
        if slot is None or slot.index != index:
            slot = slots[position] = _Slot(index)
        return slot

    def get(self, index: int) -> _Slot | None:
        slot = self._slots[index % len(self._slots)]
        return slot if slot is not None and slot.index == index else None


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Counts and latency percentiles (ms; None without invocations) of a span of time."""

    invocations: int
    errors: int
    cold_starts: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    warm_p95_ms: float | None
    cold_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class SeriesBucket:
    start: datetime
    summary: LatencySummary


class InvocationSeries:
    def __init__(self) -> None:
        self._rings: dict[str, tuple[_Ring, _Ring]] = {}

    def record(self, function: str, seconds: float, ok: bool, cold: bool) -> None:
        """Count one invocation now (the hot path: two slot updates)."""
        rings = self._rings.get(function)
        if rings is None:
            rings = self._rings[function] = (_Ring(Resolution.MINUTE), _Ring(Resolution.HOUR))
        now = int(time.time())
        rings[0].slot(now // 60).add(seconds, ok, cold)
        rings[1].slot(now // 3600).add(seconds, ok, cold)

    def functions(self) -> list[str]:
        return sorted(self._rings)

    def buckets(self, function: str | None, resolution: Resolution) -> list[SeriesBucket]:
        """Oldest first, the current (partial) one last, empty ones included; ``function``
        None: every function's merged."""
        rings = self._rings_of(function, resolution)
        current = int(time.time()) // resolution.seconds
        first = current - resolution.slots + 1
        return [
            SeriesBucket(
                datetime.fromtimestamp(index * resolution.seconds, UTC),
                _summary(slot for ring in rings if (slot := ring.get(index)) is not None),
            )
            for index in range(first, current + 1)
        ]

    def window(self, function: str | None, seconds: int) -> LatencySummary:
        """The last ``seconds`` (whole minutes up to an hour, else whole hours up to a day, the
        current partial one included)."""
        resolution = Resolution.MINUTE if seconds <= 3600 else Resolution.HOUR
        count = min(resolution.slots, max(1, -(-seconds // resolution.seconds)))
        rings = self._rings_of(function, resolution)
        current = int(time.time()) // resolution.seconds
        return _summary(
            slot
            for index in range(current - count + 1, current + 1)
            for ring in rings
            if (slot := ring.get(index)) is not None
        )

    def _rings_of(self, function: str | None, resolution: Resolution) -> list[_Ring]:
        which = 0 if resolution is Resolution.MINUTE else 1
        if function is None:
            return [rings[which] for rings in self._rings.values()]
        rings = self._rings.get(function)
        return [] if rings is None else [rings[which]]


def _summary(slots: Iterable[_Slot]) -> LatencySummary:
    invocations = errors = cold_starts = 0
    warm = [0] * (len(_BOUNDS_S) + 1)
    cold = [0] * (len(_BOUNDS_S) + 1)
    for slot in slots:
        invocations += slot.invocations
        errors += slot.errors
        cold_starts += slot.cold_starts
        for merged, histogram in ((warm, slot.warm), (cold, slot.cold)):
            if histogram is not None:
                for position, count in enumerate(histogram):
                    merged[position] += count
    both = [w + c for w, c in zip(warm, cold, strict=True)]
    p50, p95, p99 = (_quantile(both, q) for q in _QUANTILES)
    return LatencySummary(
        invocations,
        errors,
        cold_starts,
        p50,
        p95,
        p99,
        _quantile(warm, 0.95),
        _quantile(cold, 0.95),
    )


def _quantile(histogram: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-th invocation: at most 20 % high."""
    total = sum(histogram)
    if total == 0:
        return None
    rank, running = q * total, 0
    for position, count in enumerate(histogram):
        running += count
        if running >= rank:
            bound = _BOUNDS_S[min(position, len(_BOUNDS_S) - 1)]
            return round(bound * 1000, 3)
    return round(_BOUNDS_S[-1] * 1000, 3)
