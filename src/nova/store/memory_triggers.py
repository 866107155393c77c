"""The in-memory fakes of the ``RouteRepository`` and ``ScheduleRepository`` ports.

They follow the SQL stores' contract (conflicts, the conditional claim of a tick, rows going
with their function); the store contract tests run against both.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from nova.core.errors import FunctionNotFound
from nova.core.events import NewEvent
from nova.core.models import Page
from nova.core.triggers import (
    FunctionUrlConfig,
    NewSchedule,
    Route,
    RouteConflict,
    RouteNotFound,
    RouteSpec,
    Schedule,
    ScheduleNotFound,
)
from nova.store import cursors
from nova.store.memory_events import MemoryEventQueue
from nova.store.memory_state import MemoryState
from nova.store.ports import DEFAULT_PAGE_LIMIT


class MemoryRouteRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, method: str, path_prefix: str, spec: RouteSpec) -> Route:
        self._check_function(spec.function)
        if any(
            (r.method, r.path_prefix) == (method, path_prefix) for r in self._state.routes.values()
        ):
            raise RouteConflict(method, path_prefix)
        route = Route(str(uuid.uuid4()), method, path_prefix, spec, datetime.now(UTC))
        self._state.routes[route.id] = route
        return route

    async def get(self, route_id: str) -> Route:
        self._state.check_open()
        try:
            return self._state.routes[route_id]
        except KeyError:
            raise RouteNotFound(route_id) from None

    async def all(self) -> list[Route]:
        self._state.check_open()
        return sorted(self._state.routes.values(), key=lambda r: (r.path_prefix, r.method))

    async def delete(self, route_id: str) -> Route:
        route = await self.get(route_id)
        del self._state.routes[route_id]
        return route

    async def put_url(self, config: FunctionUrlConfig) -> FunctionUrlConfig:
        self._check_function(config.function)
        self._state.function_urls[config.function] = config
        return config

    async def urls(self) -> list[FunctionUrlConfig]:
        self._state.check_open()
        return list(self._state.function_urls.values())

    def _check_function(self, name: str) -> None:
        self._state.check_open()
        if name not in self._state.functions:
            raise FunctionNotFound(name)


class MemoryScheduleRepository:
    def __init__(self, state: MemoryState, queue: MemoryEventQueue) -> None:
        self._state = state
        self._queue = queue

    async def add(self, schedule: NewSchedule) -> Schedule:
        self._state.check_open()
        if schedule.function not in self._state.functions:
            raise FunctionNotFound(schedule.function)
        now = datetime.now(UTC)
        stored = Schedule(
            id=str(uuid.uuid4()),
            function=schedule.function,
            qualifier=schedule.qualifier,
            expression=schedule.expression,
            timezone=schedule.timezone,
            payload=schedule.payload,
            catch_up=schedule.catch_up,
            enabled=schedule.enabled,
            next_run_at=schedule.next_run_at,
            last_run_at=None,
            created_at=now,
            updated_at=now,
        )
        self._state.schedules[stored.id] = stored
        return stored

    async def get(self, schedule_id: str) -> Schedule:
        self._state.check_open()
        try:
            return self._state.schedules[schedule_id]
        except KeyError:
            raise ScheduleNotFound(schedule_id) from None

    async def list(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        self._state.check_open()
        cursors.check_limit(limit)
        after = cursors.decode(cursor, cursors.SCHEDULES, 1)[0] if cursor is not None else None
        matching = sorted(
            (
                s
                for s in self._state.schedules.values()
                if (function is None or s.function == function) and (after is None or s.id > after)
            ),
            key=lambda s: s.id,
        )
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items, cursors.encode(cursors.SCHEDULES, items[-1].id) if more else None)

    async def update(self, schedule: Schedule, expected_next_run_at: datetime) -> Schedule | None:
        current = await self.get(schedule.id)
        if current.next_run_at != expected_next_run_at:
            return None
        updated = dataclasses.replace(
            schedule,
            function=current.function,
            last_run_at=current.last_run_at,
            created_at=current.created_at,
            updated_at=datetime.now(UTC),
        )
        self._state.schedules[schedule.id] = updated
        return updated

    async def delete(self, schedule_id: str) -> Schedule:
        schedule = await self.get(schedule_id)
        del self._state.schedules[schedule_id]
        return schedule

    async def due(self, now: datetime, limit: int) -> Sequence[Schedule]:
        self._state.check_open()
        due = [s for s in self._state.schedules.values() if s.enabled and s.next_run_at <= now]
        return sorted(due, key=lambda s: s.next_run_at)[:limit]

    async def fire(
        self,
        schedule_id: str,
        tick: datetime,
        next_run_at: datetime,
        events: Sequence[NewEvent],
    ) -> bool:
        self._state.check_open()
        current = self._state.schedules.get(schedule_id)
        if current is None or not current.enabled or current.next_run_at != tick:
            return False
        self._state.schedules[schedule_id] = dataclasses.replace(
            current,
            next_run_at=next_run_at,
            last_run_at=tick if events else current.last_run_at,
            updated_at=datetime.now(UTC),
        )
        for event in events:
            await self._queue.submit(event)  # never suspends: the claim stays atomic
        return True
