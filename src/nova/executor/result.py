"""The result of one invocation, as the API returns it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from nova.core.models import InvocationError, StartKind, StartPhases


@dataclass(slots=True)  # not frozen: built per invocation (see InvocationLog)
class InvocationResult:
    request_id: str
    output: Any
    error: InvocationError | None
    duration_ms: float
    cold_start: bool
    version: str
    stdout: str = ""
    stderr: str = ""
    output_json: bytes = b"null"  # ``output`` serialised once by the executor
    # The daemon's time from the request's arrival to the answer; ``duration_ms`` is the
    # handler's own (what a function is billed by), this adds queueing and any cold start.
    total_ms: float = 0.0
    start: StartKind = StartKind.WARM
    phases: StartPhases | None = None  # where a non-warm start's time went

    def to_response(self) -> dict[str, Any]:
        error = None
        if self.error is not None:
            error = {
                "type": self.error.type,
                "message": self.error.message,
                "stack": self.error.stack,
            }
        return {
            "request_id": self.request_id,
            "output": orjson.Fragment(self.output_json),  # embedded, not serialised again
            "error": error,
            "duration_ms": self.duration_ms,
            "total_ms": self.total_ms,
            "cold_start": self.cold_start,
            "start": self.start.value,
            "phases": dataclasses.asdict(self.phases) if self.phases is not None else None,
            "version": self.version,
        }
