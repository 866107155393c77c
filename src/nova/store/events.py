"""The queue of asynchronous invocations in SQL (the ``EventQueue`` port).

Claiming is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``: on PostgreSQL the inner
select takes ``FOR UPDATE SKIP LOCKED``, so daemons sharing the store claim disjoint events
without waiting on each other; on SQLite the transaction takes the write lock at BEGIN, which
serialises claims. Every finishing statement is fenced on ``lease_owner``, so a worker whose
lease expired (and whose event another worker took) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

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
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import async_events

_e = async_events.c
_UNFINISHED = (EventStatus.PENDING.value, EventStatus.RUNNING.value)


class SqlEventQueue:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._postgres = database.url.get_backend_name() == "postgresql"

    async def submit(
        self, event: NewEvent, dead: AttemptError | Sequence[AttemptError] | None = None
    ) -> tuple[str, bool]:
        now = datetime.now(UTC)
        row = new_event_row(event, now)
        if dead is not None:
            errors = as_errors(dead)
            row |= {
                "status": EventStatus.DEAD.value,
                "finished_at": now,
                "attempts": max(error.attempt for error in errors),
                "errors": [error.document() for error in errors],
                "last_error_type": errors[-1].type,
            }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(sa.insert(async_events), row)
            return event.id, True
        except IntegrityError:
            if event.idempotency_key is None:
                raise InvocationAlreadyExists(event.id) from None
        # The key was taken (by an earlier submit, or one committed just now): its event wins.
        async with self._db.transaction() as conn:
            existing = await conn.scalar(
                sa.select(_e.id).where(
                    _e.function_name == event.function,
                    _e.idempotency_key == event.idempotency_key,
                )
            )
        if existing is None:  # deleted between the two statements (purged): store it anew
            return await self.submit(event, dead)
        return str(existing), False

    async def get(self, event_id: str) -> AsyncEvent:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(async_events).where(_e.id == event_id))).first()
        if row is None:
            raise InvocationNotFound(event_id)
        return _event(row._mapping)

    async def claim(
        self, owner: str, limit: int, lease_s: float, exclude: Sequence[str] = ()
    ) -> list[AsyncEvent]:
        now = datetime.now(UTC)
        due = (
            sa.select(_e.id)
            .where(_e.status.in_(_UNFINISHED), _e.available_at <= now)
            .order_by(_e.available_at)
            .limit(limit)
        )
        if exclude:
            due = due.where(_e.function_name.not_in(list(exclude)))
        # Most polls find nothing: a plain read answers them without taking SQLite's write
        # lock (or writing on PostgreSQL), which the daemons sharing the store would feel.
        async with self._db.transaction() as conn:
            if await conn.scalar(due.with_only_columns(_e.id).limit(1)) is None:
                return []
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        statement = (
            sa.update(async_events)
            .where(_e.id.in_(due.scalar_subquery()))
            .values(
                status=EventStatus.RUNNING.value,
                lease_owner=owner,
                attempts=_e.attempts + 1,
                available_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            )
            .returning(*async_events.columns)
        )
        async with self._db.transaction(write_lock=True) as conn:
            rows = (await conn.execute(statement)).all()
        events = [_event(row._mapping) for row in rows]
        events.sort(key=lambda event: event.created_at)
        return events

    async def extend(self, owner: str, event_ids: Sequence[str], lease_s: float) -> None:
        if not event_ids:
            return
        expires = datetime.now(UTC) + timedelta(seconds=lease_s)
        async with self._db.transaction() as conn:
            await conn.execute(
                sa.update(async_events)
                .where(
                    _e.id.in_(list(event_ids)),
                    _e.lease_owner == owner,
                    _e.status == EventStatus.RUNNING.value,
                )
                .values(available_at=expires)
            )

    async def succeed(
        self, event_id: str, owner: str, result: bytes, follow_up: NewEvent | None = None
    ) -> bool:
        now = datetime.now(UTC)
        values = {
            "status": EventStatus.SUCCEEDED.value,
            "lease_owner": None,
            "result": result,
            "updated_at": now,
            "finished_at": now,
        }
        return await self._finish(event_id, owner, values, follow_up)

    async def retry(
        self, event_id: str, owner: str, error: AttemptError, result: bytes, at: datetime
    ) -> bool:
        values: dict[str, Any] = {
            "status": EventStatus.PENDING.value,
            "lease_owner": None,
            "available_at": at,
            "result": result,
            "updated_at": datetime.now(UTC),
        }
        return await self._finish(event_id, owner, values, None, error)

    async def bury(
        self,
        event_id: str,
        owner: str,
        error: AttemptError,
        result: bytes | None,
        follow_up: NewEvent | None = None,
    ) -> bool:
        now = datetime.now(UTC)
        values = {
            "status": EventStatus.DEAD.value,
            "lease_owner": None,
            "result": result,
            "updated_at": now,
            "finished_at": now,
        }
        return await self._finish(event_id, owner, values, follow_up, error)

    async def release(self, event_id: str, owner: str) -> bool:
        now = datetime.now(UTC)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                sa.update(async_events)
                .where(
                    _e.id == event_id,
                    _e.lease_owner == owner,
                    _e.status == EventStatus.RUNNING.value,
                )
                .values(
                    status=EventStatus.PENDING.value,
                    lease_owner=None,
                    attempts=_e.attempts - 1,
                    available_at=now,
                    updated_at=now,
                )
            )
            return bool(result.rowcount)

    async def _finish(
        self,
        event_id: str,
        owner: str,
        values: dict[str, Any],
        follow_up: NewEvent | None,
        error: AttemptError | None = None,
    ) -> bool:
        fence = (
            _e.id == event_id,
            _e.lease_owner == owner,
            _e.status == EventStatus.RUNNING.value,
        )
        # write_lock: this transaction reads (the errors so far) before it writes.
        async with self._db.transaction(write_lock=True) as conn:
            if error is not None:
                errors = await conn.scalar(sa.select(_e.errors).where(*fence))
                if errors is None:
                    return False
                values = {
                    **values,
                    "errors": [*errors, error.document()],
                    "last_error_type": error.type,
                }
            result = await conn.execute(sa.update(async_events).where(*fence).values(**values))
            if not result.rowcount:
                return False
            if follow_up is not None:
                await conn.execute(
                    sa.insert(async_events), new_event_row(follow_up, values["updated_at"])
                )
            return True

    async def dead_letters(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[AsyncEvent]:
        cursors.check_limit(limit)
        query = sa.select(async_events).where(_e.status == EventStatus.DEAD.value)
        if function is not None:
            query = query.where(_e.function_name == function)
        if cursor is not None:
            when, last_id = cursors.decode_timed(cursor, cursors.DEAD_LETTERS)
            query = query.where(
                sa.or_(_e.updated_at < when, sa.and_(_e.updated_at == when, _e.id < last_id))
            )
        query = query.order_by(_e.updated_at.desc(), _e.id.desc()).limit(limit + 1)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_event(row._mapping) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = cursors.encode(cursors.DEAD_LETTERS, last.updated_at.isoformat(), last.id)
        return Page(items, next_cursor)

    async def replay(self, selection: EventFilter) -> int:
        now = datetime.now(UTC)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                sa.update(async_events)
                .where(*_selected(selection))
                .values(
                    status=EventStatus.PENDING.value,
                    attempts=0,
                    available_at=now,
                    updated_at=now,
                    finished_at=None,
                )
            )
            return int(result.rowcount)

    async def purge(self, selection: EventFilter) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(sa.delete(async_events).where(*_selected(selection)))
            return int(result.rowcount)

    async def stats(self, now: datetime) -> QueueStats:
        query = sa.select(_e.status, sa.func.count(), sa.func.min(_e.created_at)).group_by(
            _e.status
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        counts = {str(status): (int(count), oldest) for status, count, oldest in rows}
        unfinished = [counts[s][1] for s in _UNFINISHED if s in counts]
        oldest = min((_aware(at) for at in unfinished if at is not None), default=None)
        return QueueStats(
            pending=counts.get(EventStatus.PENDING.value, (0, None))[0],
            running=counts.get(EventStatus.RUNNING.value, (0, None))[0],
            dead=counts.get(EventStatus.DEAD.value, (0, None))[0],
            oldest_age_s=(None if oldest is None else max(0.0, (now - oldest).total_seconds())),
        )

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        oldest = (
            sa.select(_e.id)
            .where(_e.status == EventStatus.SUCCEEDED.value, _e.updated_at < cutoff)
            .order_by(_e.updated_at)
            .limit(limit)
        )
        async with self._db.transaction() as conn:
            result = await conn.execute(
                sa.delete(async_events).where(_e.id.in_(oldest.scalar_subquery()))
            )
            return int(result.rowcount)


def new_event_row(event: NewEvent, now: datetime) -> dict[str, Any]:
    return {
        "id": event.id,
        "function_name": event.function,
        "qualifier": event.qualifier,
        "payload": event.payload,
        "idempotency_key": event.idempotency_key,
        "source": event.source,
        "status": EventStatus.PENDING.value,
        "attempts": 0,
        "lease_owner": None,
        "available_at": now,
        "created_at": now,
        "updated_at": now,
        "errors": [],
    }


def _selected(selection: EventFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [_e.status == EventStatus.DEAD.value]
    if selection.ids:
        conditions.append(_e.id.in_(list(selection.ids)))
    if selection.function is not None:
        conditions.append(_e.function_name == selection.function)
    if selection.error_type is not None:
        conditions.append(_e.last_error_type == selection.error_type)
    return conditions


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _event(row: Any) -> AsyncEvent:
    return AsyncEvent(
        id=row["id"],
        function=row["function_name"],
        qualifier=row["qualifier"],
        payload=bytes(row["payload"]),
        idempotency_key=row["idempotency_key"],
        source=row["source"],
        status=EventStatus(row["status"]),
        attempts=int(row["attempts"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        available_at=row["available_at"],
        finished_at=row["finished_at"],
        result=None if row["result"] is None else bytes(row["result"]),
        errors=tuple(AttemptError.from_document(item) for item in row["errors"] or ()),
    )
