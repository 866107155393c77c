"""Canary analysis rules: hold, promote step by step, roll back on errors or latency."""

from __future__ import annotations

from datetime import UTC, datetime

from nova.canary.analysis import Outcomes, Verdict, analyse, percentile, roles
from nova.core.versions import AliasRecord, CanaryPolicy, VersionWeight

POLICY = CanaryPolicy(steps=(10, 25, 50, 100), interval_s=60, min_samples=50)
NOW = datetime.now(UTC)


def alias(*pairs: tuple[int, int]) -> AliasRecord:
    routing = tuple(VersionWeight(version, weight) for version, weight in pairs)
    return AliasRecord("f", "fn", "prod", routing, "", POLICY, 1, NOW, NOW)


def ok(count: int = 100, p95: float = 10.0, errors: int = 0) -> Outcomes:
    return Outcomes(count, errors, p95)


def test_roles_pick_the_lower_weight_as_new() -> None:
    stable, new = roles(alias((1, 90), (2, 10)).routing) or ((), ())
    assert (stable, new) == (VersionWeight(1, 90), VersionWeight(2, 10))
    assert roles(alias((3, 50), (2, 50)).routing) == (VersionWeight(2, 50), VersionWeight(3, 50))
    assert roles(alias((1, 100)).routing) is None


def test_holds_until_both_versions_have_enough_samples() -> None:
    decision = analyse(alias((1, 90), (2, 10)), POLICY, ok(500), ok(49), 600)
    assert decision.verdict is Verdict.HOLD
    assert "50" in decision.reason
    assert decision.numbers["new"]["invocations"] == 49


def test_rolls_back_when_the_error_rate_rises_past_the_margin() -> None:
    decision = analyse(alias((1, 90), (2, 10)), POLICY, ok(900), ok(100, errors=30), 1)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.routing == (VersionWeight(1, 100),)
    assert "30.0%" in decision.reason
    assert decision.numbers["new"]["error_rate"] == 0.3


def test_an_increase_within_the_margin_is_not_a_regression() -> None:
    decision = analyse(alias((1, 90), (2, 10)), POLICY, ok(900), ok(100, errors=4), 600)
    assert decision.verdict is Verdict.PROMOTE


def test_rolls_back_on_a_slower_p95() -> None:
    decision = analyse(alias((1, 90), (2, 10)), POLICY, ok(900, p95=10), ok(100, p95=12.5), 1)
    assert decision.verdict is Verdict.ROLLBACK
    assert "p95" in decision.reason


def test_promotes_step_by_step_after_the_interval() -> None:
    assert analyse(alias((1, 90), (2, 10)), POLICY, ok(), ok(), 30).verdict is Verdict.HOLD
    steps = []
    current = alias((1, 90), (2, 10))
    while True:
        decision = analyse(current, POLICY, ok(), ok(), 60)
        assert decision.verdict is Verdict.PROMOTE
        assert decision.routing is not None
        steps.append(tuple((entry.version, entry.weight) for entry in decision.routing))
        if len(decision.routing) == 1:
            break
        current = alias(*steps[-1])
    assert steps == [((1, 75), (2, 25)), ((1, 50), (2, 50)), ((2, 100),)]


def test_a_single_version_has_nothing_to_analyse() -> None:
    assert analyse(alias((1, 100)), POLICY, ok(), ok(), 600).verdict is Verdict.HOLD


def test_nearest_rank_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([float(v) for v in range(1, 11)], 50) == 5.0
