"""Service-level objectives: a function's window of invocations measured against its targets.

The error budget is the failures the success target allows in the window (``(1 - target) *
invocations``); ``error_budget_left`` is the share of it not spent yet (1.0: none spent,
negative: overspent). Latency and cold-start targets are met or breached; without invocations
of a kind (no cold start in the window, say) that target is met.
"""

from __future__ import annotations

from dataclasses import dataclass

from nova.observability.timeseries import LatencySummary


@dataclass(frozen=True, slots=True)
class SloTargets:
    success_rate: float  # the share of invocations that must succeed, e.g. 0.999
    warm_p95_ms: float
    cold_p95_ms: float
    cold_start_ratio: float  # the most invocations that may wait for a cold start


@dataclass(frozen=True, slots=True)
class SloReport:
    function: str
    window_s: int
    invocations: int
    errors: int
    success_rate: float | None  # None without invocations
    warm_p95_ms: float | None
    cold_p95_ms: float | None
    cold_start_ratio: float | None
    targets: SloTargets
    errors_allowed: float
    error_budget_left: float
    breaches: tuple[str, ...]  # the targets missed, by name

    @property
    def met(self) -> bool:
        return not self.breaches


def evaluate(
    function: str, window_s: int, summary: LatencySummary, targets: SloTargets
) -> SloReport:
    invocations, errors = summary.invocations, summary.errors
    success = None if invocations == 0 else (invocations - errors) / invocations
    cold_ratio = None if invocations == 0 else summary.cold_starts / invocations
    allowed = (1 - targets.success_rate) * invocations
    left = 1.0 if errors == 0 else (1.0 - errors / allowed if allowed > 0 else -float(errors))
    breaches = [
        name
        for name, measured, target, higher_is_better in (
            ("success_rate", success, targets.success_rate, True),
            ("warm_p95_ms", summary.warm_p95_ms, targets.warm_p95_ms, False),
            ("cold_p95_ms", summary.cold_p95_ms, targets.cold_p95_ms, False),
            ("cold_start_ratio", cold_ratio, targets.cold_start_ratio, False),
        )
        if measured is not None and (measured < target if higher_is_better else measured > target)
    ]
    return SloReport(
        function=function,
        window_s=window_s,
        invocations=invocations,
        errors=errors,
        success_rate=None if success is None else round(success, 6),
        warm_p95_ms=summary.warm_p95_ms,
        cold_p95_ms=summary.cold_p95_ms,
        cold_start_ratio=None if cold_ratio is None else round(cold_ratio, 6),
        targets=targets,
        errors_allowed=round(allowed, 3),
        error_budget_left=round(left, 6),
        breaches=tuple(breaches),
    )
