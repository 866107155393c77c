"""The in-process fake of the ``EventQueue`` port, for unit tests of the async worker.

It follows the SQL queue's contract (leases fenced on the owner, idempotency keys unique per
function, dead letters newest first); the store contract tests run against both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from nova.core.errors import InvocationAlreadyExists, InvocationNotFound
from nova.core.events import (
    AsyncEvent,
    AttemptError,
    EventFilter,
    EventStatus,
    NewEvent,
    QueueStats,
    as_errors,
)
from nova.core.models import Page
from nova.store import cursors
from nova.store.ports import DEFAULT_PAGE_LIMIT


class MemoryEventQueue:
    def __init__(self) -> None:
        self._events: dict[str, AsyncEvent] = {}
        self._owners: dict[str, str] = {}  # event id -> the worker holding its lease

    async def submit(
        self, event: NewEvent, dead: AttemptError | Sequence[AttemptError] | None = None
    ) -> tuple[str, bool]:
        if event.idempotency_key is not None:
            for stored in self._events.values():
                if (stored.function, stored.idempotency_key) == (
                    event.function,
                    event.idempotency_key,
                ):
                    return stored.id, False
        if event.id in self._events:
            raise InvocationAlreadyExists(event.id)
        now = datetime.now(UTC)
        self._add(event, now)
        if dead is not None:
            errors = as_errors(dead)
            self._events[event.id] = dataclasses.replace(
                self._events[event.id],
                status=EventStatus.DEAD,
                finished_at=now,
                attempts=max(error.attempt for error in errors),
                errors=errors,
            )
        return event.id, True

    def _add(self, event: NewEvent, now: datetime) -> None:
        self._events[event.id] = AsyncEvent(
            id=event.id,
            function=event.function,
            qualifier=event.qualifier,
            payload=event.payload,
            idempotency_key=event.idempotency_key,
            source=event.source,
            status=EventStatus.PENDING,
            attempts=0,
            created_at=now,
            updated_at=now,
            available_at=now,
        )

    async def get(self, event_id: str) -> AsyncEvent:
        try:
            return self._events[event_id]
        except KeyError:
            raise InvocationNotFound(event_id) from None

    async def claim(
        self, owner: str, limit: int, lease_s: float, exclude: Sequence[str] = ()
    ) -> list[AsyncEvent]:
        now = datetime.now(UTC)
        due = sorted(
            (
                event
                for event in self._events.values()
                if not event.status.finished
                and event.available_at <= now
                and event.function not in exclude
            ),
            key=lambda event: event.available_at,
        )[:limit]
        claimed = []
        for event in due:
            taken = dataclasses.replace(
                event,
                status=EventStatus.RUNNING,
                attempts=event.attempts + 1,
                available_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            )
            self._events[event.id] = taken
            self._owners[event.id] = owner
            claimed.append(taken)
        return sorted(claimed, key=lambda event: event.created_at)

    def _held(self, event_id: str, owner: str) -> AsyncEvent | None:
        event = self._events.get(event_id)
        if event is None or event.status is not EventStatus.RUNNING:
            return None
        return event if self._owners.get(event_id) == owner else None

    async def extend(self, owner: str, event_ids: Sequence[str], lease_s: float) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=lease_s)
        for event_id in event_ids:
            event = self._held(event_id, owner)
            if event is not None:
                self._events[event_id] = dataclasses.replace(event, available_at=expires)

    async def succeed(
        self, event_id: str, owner: str, result: bytes, follow_up: NewEvent | None = None
    ) -> bool:
        now = datetime.now(UTC)
        return self._finish(
            event_id,
            owner,
            follow_up,
            status=EventStatus.SUCCEEDED,
            result=result,
            updated_at=now,
            finished_at=now,
        )

    async def retry(
        self, event_id: str, owner: str, error: AttemptError, result: bytes, at: datetime
    ) -> bool:
        return self._finish(
            event_id,
            owner,
            None,
            error,
            status=EventStatus.PENDING,
            result=result,
            available_at=at,
            updated_at=datetime.now(UTC),
        )

    async def bury(
        self,
        event_id: str,
        owner: str,
        error: AttemptError,
        result: bytes | None,
        follow_up: NewEvent | None = None,
    ) -> bool:
        now = datetime.now(UTC)
        return self._finish(
            event_id,
            owner,
            follow_up,
            error,
            status=EventStatus.DEAD,
            result=result,
            updated_at=now,
            finished_at=now,
        )

    async def release(self, event_id: str, owner: str) -> bool:
        now = datetime.now(UTC)
        event = self._held(event_id, owner)
        if event is None:
            return False
        self._owners.pop(event_id, None)
        self._events[event_id] = dataclasses.replace(
            event,
            status=EventStatus.PENDING,
            attempts=event.attempts - 1,
            available_at=now,
            updated_at=now,
        )
        return True

    def _finish(
        self,
        event_id: str,
        owner: str,
        follow_up: NewEvent | None,
        error: AttemptError | None = None,
        **changes: object,
    ) -> bool:
        event = self._held(event_id, owner)
        if event is None:
            return False
        self._owners.pop(event_id, None)
        if error is not None:
            changes["errors"] = (*event.errors, error)
        self._events[event_id] = dataclasses.replace(event, **changes)  # type: ignore[arg-type]
        if follow_up is not None:
            self._add(follow_up, datetime.now(UTC))
        return True

    async def dead_letters(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[AsyncEvent]:
        cursors.check_limit(limit)
        dead = sorted(
            (
                event
                for event in self._events.values()
                if event.status is EventStatus.DEAD
                and (function is None or event.function == function)
            ),
            key=lambda event: (event.updated_at, event.id),
            reverse=True,
        )
        if cursor is not None:
            when, last_id = cursors.decode_timed(cursor, cursors.DEAD_LETTERS)
            dead = [event for event in dead if (event.updated_at, event.id) < (when, last_id)]
        items = dead[:limit]
        next_cursor = None
        if len(dead) > limit:
            last = items[-1]
            next_cursor = cursors.encode(cursors.DEAD_LETTERS, last.updated_at.isoformat(), last.id)
        return Page(items, next_cursor)

    def _selected(self, selection: EventFilter) -> list[AsyncEvent]:
        return [
            event
            for event in self._events.values()
            if event.status is EventStatus.DEAD
            and (not selection.ids or event.id in selection.ids)
            and (selection.function is None or event.function == selection.function)
            and (
                selection.error_type is None
                or (event.errors and event.errors[-1].type == selection.error_type)
            )
        ]

    async def replay(self, selection: EventFilter) -> int:
        now = datetime.now(UTC)
        chosen = self._selected(selection)
        for event in chosen:
            self._events[event.id] = dataclasses.replace(
                event,
                status=EventStatus.PENDING,
                attempts=0,
                available_at=now,
                updated_at=now,
                finished_at=None,
            )
        return len(chosen)

    async def purge(self, selection: EventFilter) -> int:
        chosen = self._selected(selection)
        for event in chosen:
            del self._events[event.id]
        return len(chosen)

    async def stats(self, now: datetime) -> QueueStats:
        events = list(self._events.values())
        unfinished = [event.created_at for event in events if not event.status.finished]
        return QueueStats(
            pending=sum(event.status is EventStatus.PENDING for event in events),
            running=sum(event.status is EventStatus.RUNNING for event in events),
            dead=sum(event.status is EventStatus.DEAD for event in events),
            oldest_age_s=(
                max(0.0, (now - min(unfinished)).total_seconds()) if unfinished else None
            ),
        )

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        old = sorted(
            (
                event
                for event in self._events.values()
                if event.status is EventStatus.SUCCEEDED and event.updated_at < cutoff
            ),
            key=lambda event: event.updated_at,
        )[:limit]
        for event in old:
            del self._events[event.id]
        return len(old)
