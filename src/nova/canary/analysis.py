"""Canary analysis: compare an alias's new version with its stable one and decide a step.

Pure: it reads numbers and returns a decision, so every rule is tested without a daemon. The
new version is the one with the lower weight (on a tie, the higher number); the stable one
the other. Only invocations since the routing last changed count, so each step is judged on
the traffic it actually had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nova.core.versions import TOTAL_WEIGHT, AliasRecord, CanaryPolicy, Routing, VersionWeight


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What one version's invocations in the analysis window came to."""

    invocations: int
    errors: int
    p95_ms: float | None

    @classmethod
    def of(cls, durations_ms: Sequence[float], errors: int) -> Outcomes:
        return cls(len(durations_ms), errors, percentile(durations_ms, 95))

    @property
    def error_rate(self) -> float:
        return self.errors / self.invocations if self.invocations else 0.0

    def numbers(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p95_ms": round(self.p95_ms, 3) if self.p95_ms is not None else None,
        }


class Verdict(StrEnum):
    HOLD = "hold"  # not enough evidence yet, or not time for the next step
    PROMOTE = "promote"  # the new version gets the next step's weight (or all traffic)
    ROLLBACK = "rollback"  # the new version did worse: the stable one takes all traffic


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    routing: Routing | None = None  # the routing to set, for promote and rollback
    numbers: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "routing": [[entry.version, entry.weight] for entry in self.routing or ()],
            **self.numbers,
        }


def roles(routing: Routing) -> tuple[VersionWeight, VersionWeight] | None:
    """(stable, new) of a two-version routing, else None."""
    if len(routing) != 2:
        return None
    first, second = routing
    ordered = sorted((first, second), key=lambda entry: (entry.weight, -entry.version))
    return ordered[1], ordered[0]


def analyse(
    alias: AliasRecord,
    policy: CanaryPolicy,
    stable: Outcomes,
    new: Outcomes,
    seconds_since_change: float,
) -> Decision:
    pair = roles(alias.routing)
    if pair is None:
        return Decision(Verdict.HOLD, "one version takes all traffic: nothing to compare")
    stable_route, new_route = pair
    numbers = {
        "stable": {"version": stable_route.version, **stable.numbers()},
        "new": {"version": new_route.version, **new.numbers()},
    }
    if new.invocations < policy.min_samples or stable.invocations < policy.min_samples:
        return Decision(
            Verdict.HOLD,
            f"waiting for {policy.min_samples} invocations of each version since the last "
            f"change (new {new.invocations}, stable {stable.invocations})",
            numbers=numbers,
        )
    worse = _regression(policy, stable, new)
    if worse:
        return Decision(
            Verdict.ROLLBACK,
            f"version {new_route.version} {worse}; back to version {stable_route.version}",
            (VersionWeight(stable_route.version, TOTAL_WEIGHT),),
            numbers,
        )
    if seconds_since_change < policy.interval_s:
        return Decision(
            Verdict.HOLD,
            f"within the margins; next step after {policy.interval_s:g}s at {new_route.weight}%",
            numbers=numbers,
        )
    step = next((weight for weight in policy.steps if weight > new_route.weight), TOTAL_WEIGHT)
    if step >= TOTAL_WEIGHT:
        routing: Routing = (VersionWeight(new_route.version, TOTAL_WEIGHT),)
        reason = f"version {new_route.version} within the margins: it takes all traffic"
    else:
        routing = (
            VersionWeight(stable_route.version, TOTAL_WEIGHT - step),
            VersionWeight(new_route.version, step),
        )
        reason = f"version {new_route.version} within the margins: {new_route.weight}% -> {step}%"
    return Decision(Verdict.PROMOTE, reason, routing, numbers)


def _regression(policy: CanaryPolicy, stable: Outcomes, new: Outcomes) -> str | None:
    increase = new.error_rate - stable.error_rate
    if increase > policy.max_error_rate_increase:
        return (
            f"failed {new.error_rate:.1%} of invocations against {stable.error_rate:.1%} "
            f"(margin {policy.max_error_rate_increase:.1%})"
        )
    if new.p95_ms is not None and stable.p95_ms is not None:
        limit = stable.p95_ms * (1 + policy.max_p95_increase)
        if new.p95_ms > limit:
            return (
                f"took {new.p95_ms:.1f} ms at p95 against {stable.p95_ms:.1f} ms "
                f"(margin {policy.max_p95_increase:.0%})"
            )
    return None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile (no interpolation); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
