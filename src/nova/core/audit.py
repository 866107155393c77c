"""The audit log's entries: who did what to which target, when, from where, and how it ended.

Entries never hold a secret's value or a key: the target names things (a function, a secret's
name, a key's name), the action says what was done (``function.create``, ``key.delete``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nova.core.tenancy import DEFAULT_ENVIRONMENT


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor_id: str  # the key's id ("" when the request carried no valid key)
    actor_name: str  # the key's name ("anonymous" when it carried none)
    action: str  # "function.create", "auth.denied"...
    target: str  # what it acted on: a function name, a secret name, a key name, a path
    outcome: str  # "ok", or the error code the request was answered with
    status: int  # the HTTP status of the answer
    source_ip: str
    environment: str = DEFAULT_ENVIRONMENT.path  # where the request acted (org/project/env)
    seq: int = 0  # assigned by the store


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None  # a key name
    action: str | None = None  # exact, or a prefix ending in "." ("function.")
    target: str | None = None
    outcome: str | None = None  # "ok", "denied" (any non-ok), or an error code
    since: datetime | None = None
    until: datetime | None = None
    environment: str | None = None  # org/project/env; None: every environment
