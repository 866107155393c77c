"""The store's ports for event sources: queue triggers, HTTP routes with function URL settings,
and schedules (whose ``fire`` claims a tick once across daemons). Contracts as in
:mod:`nova.store.ports`; their errors: ``TriggerNotFound``, ``TriggerAlreadyExists``,
``RouteNotFound``, ``RouteConflict``, ``ScheduleNotFound``, ``FunctionNotFound``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from nova.core.events import NewEvent
from nova.core.models import Page
from nova.core.queue_triggers import QueueTrigger
from nova.core.triggers import FunctionUrlConfig, NewSchedule, Route, RouteSpec, Schedule
from nova.store.ports import DEFAULT_PAGE_LIMIT


class TriggerRepository(Protocol):
    """Queue triggers by name. Every write appends a ``trigger.changed`` entry to the change log
    in the same transaction, so every daemon starts or stops its consumer."""

    async def create(self, trigger: QueueTrigger) -> QueueTrigger:
        """``TriggerAlreadyExists`` if the name is taken."""
        ...

    async def get(self, name: str) -> QueueTrigger:
        """``TriggerNotFound`` if there is no such trigger."""
        ...

    async def list(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[QueueTrigger]:
        """Triggers ordered by name."""
        ...

    async def set_enabled(self, name: str, enabled: bool) -> QueueTrigger:
        """Pause (False) or resume (True); ``TriggerNotFound``."""
        ...

    async def delete(self, name: str) -> QueueTrigger:
        """``TriggerNotFound`` if there is no such trigger."""
        ...


class RouteRepository(Protocol):
    """Custom HTTP routes and function URL settings; both go with their function."""

    async def add(self, method: str, path_prefix: str, spec: RouteSpec) -> Route:
        """``FunctionNotFound``; ``RouteConflict`` when (method, prefix) has a route."""
        ...

    async def get(self, route_id: str) -> Route:
        """``RouteNotFound`` if there is no such route."""
        ...

    async def all(self) -> list[Route]:
        """Every route, by path prefix then method (a daemon keeps them all in memory)."""
        ...

    async def delete(self, route_id: str) -> Route: ...

    async def put_url(self, config: FunctionUrlConfig) -> FunctionUrlConfig:
        """Store a function URL's settings; ``FunctionNotFound``."""
        ...

    async def urls(self) -> list[FunctionUrlConfig]:
        """Every stored function URL setting (functions without one have the defaults)."""
        ...


class ScheduleRepository(Protocol):
    """Schedules, and the claim of their ticks (see ``fire``). They go with their function."""

    async def add(self, schedule: NewSchedule) -> Schedule:
        """``FunctionNotFound`` if the function does not exist."""
        ...

    async def get(self, schedule_id: str) -> Schedule:
        """``ScheduleNotFound`` if there is no such schedule."""
        ...

    async def list(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """Ordered by id."""
        ...

    async def update(self, schedule: Schedule, expected_next_run_at: datetime) -> Schedule | None:
        """Write the schedule's changeable fields (qualifier, expression, timezone, payload,
        catch_up, enabled, next_run_at) unless its ``next_run_at`` is no longer
        ``expected_next_run_at`` (a daemon claimed a tick meanwhile): then ``None``, and the
        caller reads it again. ``ScheduleNotFound``."""
        ...

    async def delete(self, schedule_id: str) -> Schedule: ...

    async def due(self, now: datetime, limit: int) -> Sequence[Schedule]:
        """Enabled schedules whose ``next_run_at`` is at or before ``now``, earliest first."""
        ...

    async def fire(
        self,
        schedule_id: str,
        tick: datetime,
        next_run_at: datetime,
        events: Sequence[NewEvent],
    ) -> bool:
        """Claim the tick: in one transaction, move the schedule's ``next_run_at`` from
        ``tick`` to ``next_run_at`` and store ``events`` on the event queue (pending; an event
        whose idempotency key the function has already is skipped). False, with nothing
        written, when the schedule's ``next_run_at`` is not ``tick`` any more (another daemon
        claimed it), the schedule is paused, or it is gone."""
        ...
