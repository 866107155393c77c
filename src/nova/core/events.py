"""Value types of asynchronous invocations: an event on the durable queue and its outcome.

An event is stored before its submitter hears 202, then claimed by a worker under a lease, run
through the executor, and finished as ``succeeded`` or moved to the dead letters (``dead``)
once its retry policy gives up. A dead event can be replayed: it becomes ``pending`` again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker (new, or a retry waiting for its backoff)
    RUNNING = "running"  # claimed by a worker whose lease has not expired
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # every attempt the policy allows failed: in the dead-letter list

    @property
    def finished(self) -> bool:
        return self in (EventStatus.SUCCEEDED, EventStatus.DEAD)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store. ``qualifier`` is "" for $LATEST; ``source`` says who submitted it
    (``api``, ``destination``, a trigger's name) and is shown, never interpreted."""

    id: str
    function: str
    qualifier: str
    payload: bytes  # valid JSON, passed to the function unparsed
    idempotency_key: str | None = None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why one attempt failed: the invocation's error type and message (or Nova's own reason,
    e.g. ``Event.Expired``), when it ended, and the attempt's number (1 for the first)."""

    attempt: int
    type: str
    message: str
    at: datetime

    def document(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "type": self.type,
            "message": self.message,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> AttemptError:
        return cls(
            int(data["attempt"]),
            str(data["type"]),
            str(data["message"]),
            datetime.fromisoformat(str(data["at"])),
        )


def as_errors(dead: AttemptError | Sequence[AttemptError]) -> tuple[AttemptError, ...]:
    """One error or several (every attempt a queue trigger made) as a tuple."""
    return (dead,) if isinstance(dead, AttemptError) else tuple(dead)


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """A stored event. ``attempts`` counts claims (a worker that crashed mid-run counts too);
    ``result`` is the last attempt's invoke response (JSON bytes) once one ran to an answer."""

    id: str
    function: str
    qualifier: str
    payload: bytes
    idempotency_key: str | None
    source: str
    status: EventStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    available_at: datetime  # pending: not before; running: when the lease expires
    finished_at: datetime | None = None
    result: bytes | None = None
    errors: tuple[AttemptError, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue as operators watch it: depth (``pending`` + ``running``), the age of the
    oldest unfinished event, and the dead letters waiting for a replay or purge."""

    pending: int
    running: int
    dead: int
    oldest_age_s: float | None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which dead letters a replay or purge touches: ``ids`` when given, else every one
    matching ``function`` and ``error_type`` (the last attempt's), or all of them."""

    ids: tuple[str, ...] = ()
    function: str | None = None
    error_type: str | None = None
