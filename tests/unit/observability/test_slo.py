"""SLO evaluation: the error budget and which targets a window missed."""

from __future__ import annotations

from nova.observability.slo import SloTargets, evaluate
from nova.observability.timeseries import LatencySummary

TARGETS = SloTargets(success_rate=0.99, warm_p95_ms=100.0, cold_p95_ms=1000.0, cold_start_ratio=0.1)


def summary(
    invocations: int, errors: int, cold: int, warm_p95: float | None, cold_p95: float | None
) -> LatencySummary:
    return LatencySummary(invocations, errors, cold, None, None, None, warm_p95, cold_p95)


def test_within_every_target_with_half_the_budget_spent() -> None:
    report = evaluate("f", 3600, summary(200, 1, 10, 50.0, 900.0), TARGETS)
    assert report.success_rate == 0.995
    assert report.cold_start_ratio == 0.05
    assert report.errors_allowed == 2.0  # 1 % of 200
    assert report.error_budget_left == 0.5
    assert report.breaches == ()
    assert report.met


def test_each_missed_target_is_named_and_an_overspent_budget_is_negative() -> None:
    report = evaluate("f", 3600, summary(100, 3, 20, 150.0, 1500.0), TARGETS)
    assert report.breaches == ("success_rate", "warm_p95_ms", "cold_p95_ms", "cold_start_ratio")
    assert report.error_budget_left == -2.0  # three failures against one allowed
    assert not report.met


def test_no_invocations_meets_everything_and_spends_nothing() -> None:
    report = evaluate("f", 60, summary(0, 0, 0, None, None), TARGETS)
    assert (report.success_rate, report.cold_start_ratio) == (None, None)
    assert report.error_budget_left == 1.0
    assert report.met
