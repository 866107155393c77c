"""InvocationSeries: rolling minute and hour buckets, percentiles within a bucket's width."""

from __future__ import annotations

import pytest

from nova.observability import timeseries
from nova.observability.timeseries import InvocationSeries, Resolution

HOUR = 3600
T0 = 1_800_000_000 - 1_800_000_000 % HOUR + 30 * 60  # half past some hour


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(T0)
    monkeypatch.setattr(timeseries.time, "time", fake)
    return fake


def test_hourly_buckets_count_and_roll(clock: Clock) -> None:
    series = InvocationSeries()
    for _ in range(98):
        series.record("f", 0.010, ok=True, cold=False)
    series.record("f", 0.5, ok=False, cold=True)
    series.record("g", 2.0, ok=True, cold=False)
    buckets = series.buckets("f", Resolution.HOUR)
    assert len(buckets) == 24
    current = buckets[-1]
    assert current.start.timestamp() == T0 - 30 * 60
    summary = current.summary
    assert (summary.invocations, summary.errors, summary.cold_starts) == (99, 1, 1)
    assert summary.p50_ms is not None
    assert 10.0 <= summary.p50_ms <= 12.0  # the bucket holding 10 ms: at most 20 % above it
    assert summary.cold_p95_ms is not None
    assert 500.0 <= summary.cold_p95_ms <= 600.0
    assert summary.warm_p95_ms is not None
    assert summary.warm_p95_ms <= 12.0
    assert all(bucket.summary.invocations == 0 for bucket in buckets[:-1])
    assert all(bucket.summary.p50_ms is None for bucket in buckets[:-1])
    assert series.buckets(None, Resolution.HOUR)[-1].summary.invocations == 100  # f and g

    clock.now += 5 * HOUR  # five hours later the bucket has moved five places back
    series.record("f", 0.010, ok=True, cold=False)
    buckets = series.buckets("f", Resolution.HOUR)
    assert buckets[-6].summary.invocations == 99
    assert buckets[-1].summary.invocations == 1

    clock.now += 24 * HOUR  # a day later both have rolled out
    assert sum(bucket.summary.invocations for bucket in series.buckets("f", Resolution.HOUR)) == 0


def test_minute_buckets_and_windows(clock: Clock) -> None:
    series = InvocationSeries()
    series.record("f", 0.001, ok=True, cold=False)
    clock.now += 120
    series.record("f", 0.001, ok=False, cold=False)
    minutes = series.buckets("f", Resolution.MINUTE)
    assert len(minutes) == 60
    assert [bucket.summary.invocations for bucket in minutes[-3:]] == [1, 0, 1]
    assert series.window("f", 60).invocations == 1
    assert series.window("f", 180).invocations == 2
    assert series.window("f", 86400).errors == 1
    assert series.window("missing", 3600).invocations == 0
    assert series.functions() == ["f"]


def test_latency_past_the_last_bound_reads_as_the_last_bound(clock: Clock) -> None:
    series = InvocationSeries()
    series.record("f", 10_000.0, ok=True, cold=False)
    p99 = series.window("f", 60).p99_ms
    assert p99 is not None
    assert p99 > 900_000  # past the longest timeout, never None
