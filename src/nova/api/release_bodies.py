"""HTTP bodies of versions and aliases, and how their records are shown."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nova.core.errors import RequestInvalid
from nova.core.tenancy import short_name
from nova.core.versions import (
    TOTAL_WEIGHT,
    AliasChange,
    AliasRecord,
    CanaryPolicy,
    FunctionVersion,
    Routing,
    VersionWeight,
)


class VersionPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=1024)


class WeightIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    weight: int = Field(ge=1, le=TOTAL_WEIGHT)


class RoutingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: list[WeightIn] = Field(min_length=1)


class CanaryIn(BaseModel):
    """Automatic canary analysis of the alias (see CanaryPolicy for what each field does)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[int] = Field([10, 25, 50, 100], min_length=1, max_length=20)
    interval_s: float = Field(60.0, ge=0.1, le=86400)
    window_s: float = Field(300.0, ge=0.1, le=86400)
    min_samples: int = Field(50, ge=1, le=1_000_000)
    max_error_rate_increase: float = Field(0.05, ge=0, le=1)
    max_p95_increase: float = Field(0.2, ge=0, le=100)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if any(not 1 <= step <= TOTAL_WEIGHT for step in steps) or steps != sorted(set(steps)):
            raise ValueError("must be increasing percentages within 1-100, e.g. [10, 25, 50, 100]")
        return steps

    def policy(self) -> CanaryPolicy:
        return CanaryPolicy(**{**self.model_dump(), "steps": tuple(self.steps)})


class AliasPut(BaseModel):
    """Either ``version`` (all traffic to it) or ``routing_config`` (one or two weighted)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1)
    routing_config: RoutingIn | None = None
    description: str = Field("", max_length=1024)
    canary: CanaryIn | None = None

    def routing(self) -> Routing:
        if (self.version is None) == (self.routing_config is None):
            raise RequestInvalid(
                "routing_config: give either version (all traffic to one version) or "
                'routing_config {"weights": [{"version": 1, "weight": 90}, ...]}, not both'
            )
        if self.version is not None:
            return (VersionWeight(self.version, TOTAL_WEIGHT),)
        assert self.routing_config is not None
        return tuple(VersionWeight(w.version, w.weight) for w in self.routing_config.weights)


def routing_out(routing: Routing) -> dict[str, Any]:
    return {"weights": [{"version": e.version, "weight": e.weight} for e in routing]}


def version_out(version: FunctionVersion) -> dict[str, Any]:
    config = version.config.document()
    # "description" is the version's; the function's own (part of its config) is renamed.
    config["function_description"] = config.pop("description")
    return {
        "function": short_name(version.function_name),
        "function_id": version.function_id,
        "version": str(version.number),
        "number": version.number,
        "description": version.description,
        **config,
        "code_hash": version.code_hash,
        "code_size": version.code_size,
        "created_at": version.created_at.isoformat(),
    }


def alias_out(alias: AliasRecord) -> dict[str, Any]:
    return {
        "function": short_name(alias.function_name),
        "name": alias.name,
        "routing_config": routing_out(alias.routing),
        "description": alias.description,
        "canary": dataclasses.asdict(alias.policy) if alias.policy is not None else None,
        "analysis": alias.analysis,
        "revision": alias.revision,
        "created_at": alias.created_at.isoformat(),
        "updated_at": alias.updated_at.isoformat(),
    }


def change_out(change: AliasChange) -> dict[str, Any]:
    return {
        "at": change.at.isoformat(),
        "before": routing_out(change.before),
        "after": routing_out(change.after),
        "reason": change.reason.value,
        "detail": change.detail,
    }
