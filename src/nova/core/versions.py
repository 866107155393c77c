"""Published versions, aliases and their routing: the values behind ``name:qualifier``.

A function's code and configuration as they are now is ``$LATEST``; publishing freezes them
as version 1, 2, 3... (numbers are never reused, even after a version is deleted). An alias is a
name for one version, or for two with integer weights summing to 100 (a canary), and keeps the
history of every routing change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from nova.core.models import FunctionConfig

MAX_ROUTED_VERSIONS = 2
TOTAL_WEIGHT = 100


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    function_id: str
    function_name: str
    number: int
    config: FunctionConfig
    code_hash: str
    code_size: int
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VersionWeight:
    version: int
    weight: int


# An alias's routing: one version at 100, or two whose weights sum to 100.
Routing = tuple[VersionWeight, ...]


class ChangeReason(StrEnum):
    MANUAL = "manual"  # set through the API or the CLI
    ROLLBACK = "rollback"  # restored the routing before the current one
    AUTOMATIC = "automatic"  # a canary policy promoted or rolled back on its own


@dataclass(frozen=True, slots=True)
class CanaryPolicy:
    """Shift traffic to an alias's new version in steps, or back when it does worse.

    The new version is the one with the lower weight while two are routed (the stable one the
    other). Every ``interval_s`` the versions' invocations over the last ``window_s`` are
    compared: when the new one has at least ``min_samples`` and its error rate exceeds the
    stable one's by more than ``max_error_rate_increase`` (absolute, 0.05 = 5 points) or its
    p95 duration exceeds the stable one's by more than ``max_p95_increase`` (relative, 0.2 =
    20 %), the alias goes back to the stable version alone; otherwise the new version's weight
    goes to the next of ``steps`` and, after the last, it takes all the traffic.
    """

    steps: tuple[int, ...] = (10, 25, 50, 100)
    interval_s: float = 60.0
    window_s: float = 300.0
    min_samples: int = 50
    max_error_rate_increase: float = 0.05
    max_p95_increase: float = 0.2


@dataclass(frozen=True, slots=True)
class AliasRecord:
    function_id: str
    function_name: str
    name: str
    routing: Routing
    description: str
    policy: CanaryPolicy | None
    revision: int  # bumped by every routing change; automatic steps are made only against it
    created_at: datetime
    updated_at: datetime
    # The canary analysis last made (its numbers and verdict), shown by `nova alias status`.
    analysis: dict[str, Any] | None = None

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(entry.version for entry in self.routing)


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One entry of an alias's history: what its routing was, what it became, and why."""

    alias: str
    at: datetime
    before: Routing  # () when the alias was created
    after: Routing  # () when it was deleted
    reason: ChangeReason
    detail: dict[str, Any] = field(default_factory=dict)
