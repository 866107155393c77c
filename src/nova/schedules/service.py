"""Create, change and delete schedules: every field is checked here, before the store sees it.

A schedule's first tick is the first one after its creation - or after it is resumed, or its
timing changed: neither the time it was paused nor the old timing's ticks are caught up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from nova.core.errors import PayloadTooLarge, RequestInvalid
from nova.core.models import Page
from nova.core.names import validate_qualifier
from nova.core.tenancy import validate_full_name
from nova.core.triggers import CatchUp, NewSchedule, Schedule
from nova.schedules.timing import parse, time_zone
from nova.store.event_source_ports import ScheduleRepository
from nova.store.ports import DEFAULT_PAGE_LIMIT

_UPDATE_ATTEMPTS = 5  # a tick claimed between our read and our write: read again


@dataclass(frozen=True, slots=True)
class ScheduleChanges:
    """What a PATCH changes; ``None`` leaves a field as it is."""

    qualifier: str | None = None
    expression: str | None = None
    timezone: str | None = None
    payload: bytes | None = None
    catch_up: CatchUp | None = None
    enabled: bool | None = None


class ScheduleService:
    def __init__(
        self,
        schedules: ScheduleRepository,
        max_payload_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._schedules = schedules
        self._max_payload_bytes = max_payload_bytes
        self._clock = clock

    async def add(
        self,
        function: str,
        expression: str,
        *,
        qualifier: str = "",
        timezone: str = "UTC",
        payload: bytes = b"{}",
        catch_up: CatchUp = CatchUp.LATEST,
        enabled: bool = True,
    ) -> Schedule:
        """``RequestInvalid`` naming the field; ``FunctionNotFound``."""
        validate_full_name(function)
        if qualifier:
            validate_qualifier(qualifier)
        self._check_payload(payload)
        now = self._clock()
        first = parse(expression, timezone, now).next_after(now)
        return await self._schedules.add(
            NewSchedule(
                function, qualifier, expression, timezone, payload, catch_up, enabled, first
            )
        )

    async def get(self, schedule_id: str) -> Schedule:
        return await self._schedules.get(schedule_id)

    async def list(
        self,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        if function is not None:
            validate_full_name(function)
        return await self._schedules.list(function=function, limit=limit, cursor=cursor)

    async def update(self, schedule_id: str, changes: ScheduleChanges) -> Schedule:
        if changes.qualifier:
            validate_qualifier(changes.qualifier)
        if changes.payload is not None:
            self._check_payload(changes.payload)
        if changes.timezone is not None:
            time_zone(changes.timezone)
        for _ in range(_UPDATE_ATTEMPTS):
            current = await self._schedules.get(schedule_id)
            changed = self._apply(current, changes)
            stored = await self._schedules.update(changed, current.next_run_at)
            if stored is not None:
                return stored
        raise RequestInvalid(
            f"schedule {schedule_id!r} kept changing while it was updated; try again"
        )

    async def delete(self, schedule_id: str) -> Schedule:
        return await self._schedules.delete(schedule_id)

    def _apply(self, current: Schedule, changes: ScheduleChanges) -> Schedule:
        updated = dataclasses.replace(
            current,
            **{
                field.name: getattr(changes, field.name)
                for field in dataclasses.fields(changes)
                if getattr(changes, field.name) is not None
            },
        )
        retimed = (updated.expression, updated.timezone) != (current.expression, current.timezone)
        resumed = updated.enabled and not current.enabled
        if retimed or resumed:
            now = self._clock()
            first = parse(updated.expression, updated.timezone, now).next_after(now)
            updated = dataclasses.replace(updated, next_run_at=first)
        return updated

    def _check_payload(self, payload: bytes) -> None:
        if len(payload) > self._max_payload_bytes:
            raise PayloadTooLarge(
                f"payload: {len(payload)} bytes, over the {self._max_payload_bytes}-byte "
                "limit of an event"
            )
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RequestInvalid(f"payload: not JSON: {exc}") from None
