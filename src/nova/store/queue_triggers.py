"""Queue triggers in SQL (the ``TriggerRepository`` port).

Every write appends a ``trigger.changed`` entry to the change log in the same transaction: that
is how every daemon on the store learns to start, restart or stop its consumer.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from nova.core.changes import ChangeKind
from nova.core.models import Page
from nova.core.queue_triggers import (
    QueueTrigger,
    TriggerAlreadyExists,
    TriggerNotFound,
    TriggerSource,
)
from nova.store import cursors
from nova.store.changes import record_change
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import queue_triggers

_t = queue_triggers.c


class SqlTriggerRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, trigger: QueueTrigger) -> QueueTrigger:
        now = datetime.now(UTC)
        stored = dataclasses.replace(trigger, created_at=now, updated_at=now)
        try:
            async with self._db.transaction(write_lock=True) as conn:
                await conn.execute(queue_triggers.insert(), _row(stored))
                await _changed(conn, stored)
        except IntegrityError:
            raise TriggerAlreadyExists(trigger.name) from None
        return stored

    async def get(self, name: str) -> QueueTrigger:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(queue_triggers).where(_t.name == name))).first()
        if row is None:
            raise TriggerNotFound(name)
        return _trigger(row)

    async def list(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[QueueTrigger]:
        cursors.check_limit(limit)
        query = sa.select(queue_triggers).order_by(_t.name).limit(limit + 1)
        if cursor is not None:
            (after,) = cursors.decode(cursor, cursors.TRIGGERS, 1)
            query = query.where(_t.name > after)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_trigger(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(cursors.TRIGGERS, items[-1].name) if more else None)

    async def set_enabled(self, name: str, enabled: bool) -> QueueTrigger:
        statement = (
            sa.update(queue_triggers)
            .where(_t.name == name)
            .values(enabled=enabled, updated_at=datetime.now(UTC))
        )
        return await self._change(name, statement)

    async def delete(self, name: str) -> QueueTrigger:
        return await self._change(name, sa.delete(queue_triggers).where(_t.name == name))

    async def _change(self, name: str, statement: sa.Update | sa.Delete) -> QueueTrigger:
        """Run ``statement`` on the trigger and log the change; the row as it came back."""
        async with self._db.transaction(write_lock=True) as conn:
            row = (await conn.execute(statement.returning(*queue_triggers.c))).first()
            if row is None:
                raise TriggerNotFound(name)
            trigger = _trigger(row)
            await _changed(conn, trigger)
        return trigger


async def _changed(conn: Any, trigger: QueueTrigger) -> None:
    # The trigger's name rides in the alias column: the entry names no function to refresh.
    await record_change(conn, ChangeKind.TRIGGER_CHANGED, "", "", alias=trigger.name)


def _row(trigger: QueueTrigger) -> dict[str, Any]:
    return {
        "name": trigger.name,
        "function_name": trigger.function,
        "qualifier": trigger.qualifier,
        "source": trigger.source.value,
        "target": trigger.target,
        "url": trigger.url,
        "batch_size": trigger.batch_size,
        "concurrency": trigger.concurrency,
        "enabled": trigger.enabled,
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
    }


def _trigger(row: Any) -> QueueTrigger:
    return QueueTrigger(
        name=row.name,
        function=row.function_name,
        qualifier=row.qualifier,
        source=TriggerSource(row.source),
        target=row.target,
        url=row.url,
        batch_size=int(row.batch_size),
        concurrency=int(row.concurrency),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
