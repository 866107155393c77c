"""Store transaction times as cumulative histogram buckets."""

from __future__ import annotations

from nova.store.timings import BUCKETS_S, TransactionTimings


def test_each_time_lands_in_its_bucket_and_the_buckets_accumulate() -> None:
    timings = TransactionTimings()
    for seconds in (0.0001, 0.0005, 0.003, 0.003, 9.0):
        timings.observe(seconds)
    snapshot = timings.snapshot()
    cumulative = dict(snapshot.buckets)
    assert cumulative[0.0005] == 2  # a bound is inclusive, as Prometheus' le
    assert cumulative[0.0025] == 2
    assert cumulative[0.005] == 4
    assert cumulative[BUCKETS_S[-1]] == 4  # 9 s is only in +Inf
    assert snapshot.count == 5
    assert abs(snapshot.sum_s - 9.0066) < 1e-9
