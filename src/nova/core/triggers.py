"""Value types of HTTP triggers (function URLs, custom routes) and schedules, and their errors.

A function URL (``/fn/{name}/...``) and a custom route (method + path prefix) both turn an
HTTP request into an event in the shape of Lambda function URLs; each carries an ``auth``
setting and optionally a webhook signature check. A schedule fires a function's event on a
cron expression or an interval through the asynchronous queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from nova.core.errors import NovaError


class TriggerAuth(StrEnum):
    PLATFORM = "platform"  # what invoking the function through the API needs (a key or token)
    NONE = "none"  # anyone who can reach the daemon (a public webhook, say)


class CatchUp(StrEnum):
    """What a schedule does with ticks missed while no daemon ran it."""

    LATEST = "latest"  # run the newest missed tick once
    NONE = "none"  # run none of them
    ALL = "all"  # run every one, up to schedules.max_catch_up


ANY_METHOD = "ANY"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """A webhook's HMAC: ``header`` carries hex(HMAC-SHA256(secret, body)), optionally
    prefixed ``sha256=``. With ``timestamp_header`` the signed text is ``{timestamp}.{body}``
    and a timestamp further than ``tolerance_s`` from now is refused (replays).
    ``secret_ref`` names the secret (the value lives sealed in the secrets table)."""

    secret_ref: str
    header: str = "x-signature-256"
    algorithm: str = "sha256"
    timestamp_header: str | None = None
    tolerance_s: int = 300

    def document(self) -> dict[str, object]:
        return {
            "secret": f"$SECRET:{self.secret_ref}",
            "header": self.header,
            "algorithm": self.algorithm,
            "timestamp_header": self.timestamp_header,
            "tolerance_s": self.tolerance_s,
        }


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """What a custom route or a function URL is configured with."""

    function: str
    qualifier: str  # "" for $LATEST
    auth: TriggerAuth = TriggerAuth.PLATFORM
    signature: SignatureCheck | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """A custom route: requests whose method is ``method`` (or any, ``ANY``) and whose path is
    ``path_prefix`` or below it go to ``spec.function``."""

    id: str
    method: str
    path_prefix: str
    spec: RouteSpec
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FunctionUrlConfig:
    """The settings of ``/fn/{function}``; a function without a stored one has the defaults."""

    function: str
    auth: TriggerAuth = TriggerAuth.PLATFORM
    signature: SignatureCheck | None = None


@dataclass(frozen=True, slots=True)
class NewSchedule:
    function: str
    qualifier: str
    expression: str  # "@every 30s", "@hourly", or five cron fields
    timezone: str  # an IANA name; cron fields are read in it
    payload: bytes  # JSON, the event's "detail"
    catch_up: CatchUp
    enabled: bool
    next_run_at: datetime  # the first tick


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    function: str
    qualifier: str
    expression: str
    timezone: str
    payload: bytes
    catch_up: CatchUp
    enabled: bool
    next_run_at: datetime  # the next tick not yet claimed by any daemon
    last_run_at: datetime | None  # the newest tick that ran
    created_at: datetime
    updated_at: datetime


class RouteNotFound(NovaError):
    code = "Route.NotFound"
    status = 404

    def __init__(self, route_id: str) -> None:
        super().__init__(f"route {route_id!r} does not exist; list them with `nova route list`")


class RouteConflict(NovaError):
    code = "Route.Conflict"
    status = 409

    def __init__(self, method: str, prefix: str) -> None:
        super().__init__(
            f"a route for {method} {prefix} exists already; delete it first "
            "(`nova route list` shows its id) or pick another prefix"
        )


class ScheduleNotFound(NovaError):
    code = "Schedule.NotFound"
    status = 404

    def __init__(self, schedule_id: str) -> None:
        super().__init__(
            f"schedule {schedule_id!r} does not exist; list them with `nova schedule list`"
        )


class InvalidSignature(NovaError):
    code = "Trigger.InvalidSignature"
    status = 401
