"""Schedules in SQL (the ``ScheduleRepository`` port), and the claim of their ticks.

``fire`` is one transaction: ``UPDATE schedules SET next_run_at = <next> WHERE id = … AND
next_run_at = <the tick read> AND enabled`` and, only when that changed a row, the tick's
events inserted into ``async_events``. Two daemons that read the same due tick both try; the
conditional update lets exactly one of them through (PostgreSQL re-checks the condition after
the first commit, SQLite serialises the transactions at BEGIN IMMEDIATE), so a tick runs once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nova.core.events import NewEvent
from nova.core.models import Page
from nova.core.triggers import CatchUp, NewSchedule, Schedule, ScheduleNotFound
from nova.store import cursors
from nova.store.database import Database
from nova.store.events import new_event_row
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.routes import function_id_of
from nova.store.schema import async_events, schedules

_s = schedules.c
_e = async_events.c


class SqlScheduleRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, schedule: NewSchedule) -> Schedule:
        now = datetime.now(UTC)
        row = {
            "id": str(uuid.uuid4()),
            "function_name": schedule.function,
            "qualifier": schedule.qualifier,
            "expression": schedule.expression,
            "timezone": schedule.timezone,
            "payload": schedule.payload,
            "catch_up": schedule.catch_up.value,
            "enabled": schedule.enabled,
            "next_run_at": schedule.next_run_at,
            "last_run_at": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction(write_lock=True) as conn:  # reads, then writes
            row["function_id"] = await function_id_of(conn, schedule.function)
            await conn.execute(sa.insert(schedules), row)
        return _schedule(row)

    async def get(self, schedule_id: str) -> Schedule:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(schedules).where(_s.id == schedule_id))).first()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _schedule(row._mapping)

    async def list(
        self,
        *,
        function: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        cursors.check_limit(limit)
        query = sa.select(schedules).order_by(_s.id).limit(limit + 1)
        if function is not None:
            query = query.where(_s.function_name == function)
        if cursor is not None:
            (after,) = cursors.decode(cursor, cursors.SCHEDULES, 1)
            query = query.where(_s.id > after)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_schedule(row._mapping) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(cursors.SCHEDULES, items[-1].id) if more else None)

    async def update(self, schedule: Schedule, expected_next_run_at: datetime) -> Schedule | None:
        now = datetime.now(UTC)
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                sa.update(schedules)
                .where(_s.id == schedule.id, _s.next_run_at == expected_next_run_at)
                .values(
                    qualifier=schedule.qualifier,
                    expression=schedule.expression,
                    timezone=schedule.timezone,
                    payload=schedule.payload,
                    catch_up=schedule.catch_up.value,
                    enabled=schedule.enabled,
                    next_run_at=schedule.next_run_at,
                    updated_at=now,
                )
            )
            if changed.rowcount:
                row = (await conn.execute(sa.select(schedules).where(_s.id == schedule.id))).one()
                return _schedule(row._mapping)
            exists = await conn.scalar(sa.select(_s.id).where(_s.id == schedule.id))
        if exists is None:
            raise ScheduleNotFound(schedule.id)
        return None

    async def delete(self, schedule_id: str) -> Schedule:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.delete(schedules).where(_s.id == schedule_id).returning(*schedules.c)
                )
            ).first()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _schedule(row._mapping)

    async def due(self, now: datetime, limit: int) -> Sequence[Schedule]:
        query = (
            sa.select(schedules)
            .where(_s.enabled.is_(True), _s.next_run_at <= now)
            .order_by(_s.next_run_at)
            .limit(limit)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [_schedule(row._mapping) for row in rows]

    async def fire(
        self,
        schedule_id: str,
        tick: datetime,
        next_run_at: datetime,
        events: Sequence[NewEvent],
    ) -> bool:
        now = datetime.now(UTC)
        values: dict[str, Any] = {"next_run_at": next_run_at, "updated_at": now}
        if events:
            values["last_run_at"] = tick
        async with self._db.transaction(write_lock=True) as conn:
            claimed = await conn.execute(
                sa.update(schedules)
                .where(_s.id == schedule_id, _s.next_run_at == tick, _s.enabled.is_(True))
                .values(values)
            )
            if not claimed.rowcount:
                return False
            for event in events:
                taken = await conn.scalar(
                    sa.select(_e.id).where(
                        _e.function_name == event.function,
                        _e.idempotency_key == event.idempotency_key,
                    )
                )
                if taken is None:
                    await conn.execute(sa.insert(async_events), new_event_row(event, now))
        return True


def _schedule(row: Any) -> Schedule:
    return Schedule(
        id=row["id"],
        function=row["function_name"],
        qualifier=row["qualifier"],
        expression=row["expression"],
        timezone=row["timezone"],
        payload=bytes(row["payload"]),
        catch_up=CatchUp(row["catch_up"]),
        enabled=bool(row["enabled"]),
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
