"""The audit log in SQL (the ``AuditRepository`` port): append-only, listed newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from nova.core.audit import AuditEntry, AuditFilter
from nova.core.models import Page
from nova.store import cursors
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import UTCDateTime, audit_log

_a = audit_log.c


class SqlAuditRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "at": entry.at,
                "actor_id": entry.actor_id,
                "actor_name": entry.actor_name,
                "action": entry.action,
                "target": entry.target,
                "outcome": entry.outcome,
                "status": entry.status,
                "source_ip": entry.source_ip,
                "environment": entry.environment,
            }
            for entry in entries
        ]
        async with self._db.transaction(write_lock=True) as conn:
            await conn.execute(audit_log.insert(), rows)

    async def list(
        self, selection: AuditFilter, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[AuditEntry]:
        cursors.check_limit(limit)
        query = sa.select(audit_log).order_by(_a.seq.desc()).limit(limit + 1)
        if cursor is not None:
            (before,) = cursors.decode(cursor, cursors.AUDIT, 1)
            query = query.where(_a.seq < int(before))
        for condition in _conditions(selection):
            query = query.where(condition)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_entry(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(cursors.AUDIT, str(items[-1].seq)) if more else None)


def _conditions(selection: AuditFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if selection.actor is not None:
        conditions.append(_a.actor_name == selection.actor)
    if selection.action is not None:
        if selection.action.endswith("."):
            conditions.append(_a.action.startswith(selection.action, autoescape=True))
        else:
            conditions.append(_a.action == selection.action)
    if selection.target is not None:
        conditions.append(_a.target == selection.target)
    if selection.outcome == "denied":
        conditions.append(_a.outcome != "ok")
    elif selection.outcome is not None:
        conditions.append(_a.outcome == selection.outcome)
    if selection.environment is not None:
        conditions.append(_a.environment == selection.environment)
    if selection.since is not None:
        conditions.append(_a.at >= sa.literal(selection.since, UTCDateTime()))
    if selection.until is not None:
        conditions.append(_a.at < sa.literal(selection.until, UTCDateTime()))
    return conditions


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        status=row.status,
        source_ip=row.source_ip,
        environment=row.environment,
        seq=row.seq,
    )
