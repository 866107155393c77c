"""Aliases and their history in SQL (the ``AliasRepository`` port).

Every write takes the function's row first, as publishing and deleting versions do, so an
alias can never be set to a version that is being deleted, and each routing change is written
with its history entry and its change-log entry in one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.changes import ChangeKind
from nova.core.errors import (
    AliasConflict,
    AliasNotFound,
    FunctionNotFound,
    VersionNotFound,
)
from nova.core.versions import (
    AliasChange,
    AliasRecord,
    CanaryPolicy,
    ChangeReason,
    Routing,
    VersionWeight,
)
from nova.store.changes import record_change
from nova.store.database import Database
from nova.store.schema import alias_history, function_aliases, function_versions, functions

_t = functions.c
_a = function_aliases.c
_h = alias_history.c
_v = function_versions.c

_SELECT_ALIAS = sa.select(function_aliases, _t.name.label("function_name")).join(
    functions, _t.id == _a.function_id
)


class SqlAliasRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def put(
        self,
        name: str,
        alias: str,
        routing: Routing,
        *,
        description: str = "",
        policy: CanaryPolicy | None = None,
        reason: ChangeReason = ChangeReason.MANUAL,
        detail: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> AliasRecord:
        async with self._db.transaction() as conn:
            function_id = await _lock_function(conn, name)
            current = await _current(conn, function_id, alias)
            if expected_revision is not None and (
                current is None or current.revision != expected_revision
            ):
                raise AliasConflict(
                    f"alias {alias!r} of {name!r} changed since revision {expected_revision}; "
                    "read it again and retry"
                )
            await _require_versions(conn, name, function_id, routing)
            return await _write(
                conn,
                name,
                function_id,
                alias,
                current,
                routing,
                description,
                policy,
                reason,
                detail or {},
            )

    async def rollback(self, name: str, alias: str) -> AliasRecord:
        async with self._db.transaction() as conn:
            function_id = await _lock_function(conn, name)
            current = await _current(conn, function_id, alias)
            if current is None:
                raise AliasNotFound(name, alias)
            last = (
                await conn.execute(
                    sa.select(_h.before)
                    .where(_h.function_id == function_id, _h.alias == alias)
                    .order_by(_h.id.desc())
                    .limit(1)
                )
            ).first()
            previous = _routing(last.before) if last is not None else ()
            if not previous:
                raise AliasConflict(
                    f"alias {alias!r} of {name!r} has no earlier routing to roll back to"
                )
            await _require_versions(conn, name, function_id, previous)
            return await _write(
                conn,
                name,
                function_id,
                alias,
                current,
                previous,
                current.description,
                current.policy,
                ChangeReason.ROLLBACK,
                {},
            )

    async def get(self, name: str, alias: str) -> AliasRecord:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(_SELECT_ALIAS.where(_t.name == name, _a.name == alias))
            ).first()
            if row is None:
                await _function_id(conn, name)
                raise AliasNotFound(name, alias)
        return _alias(row)

    async def of(self, name: str) -> list[AliasRecord]:
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(_SELECT_ALIAS.where(_t.name == name).order_by(_a.name))
            ).all()
            if not rows:
                await _function_id(conn, name)
        return [_alias(row) for row in rows]

    async def with_policy(self) -> list[AliasRecord]:
        query = _SELECT_ALIAS.where(_a.policy.is_not(None)).order_by(_a.function_id, _a.name)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [_alias(row) for row in rows]

    async def delete(self, name: str, alias: str) -> AliasRecord:
        async with self._db.transaction() as conn:
            function_id = await _lock_function(conn, name)
            current = await _current(conn, function_id, alias)
            if current is None:
                raise AliasNotFound(name, alias)
            await conn.execute(
                sa.delete(function_aliases).where(_a.function_id == function_id, _a.name == alias)
            )
            await _remember(conn, function_id, alias, current.routing, (), ChangeReason.MANUAL, {})
            await record_change(conn, ChangeKind.ALIAS_DELETED, function_id, name, alias=alias)
        return current

    async def history(self, name: str, alias: str, limit: int = 50) -> list[AliasChange]:
        async with self._db.transaction() as conn:
            function_id = await _function_id(conn, name)
            rows = (
                await conn.execute(
                    sa.select(alias_history)
                    .where(_h.function_id == function_id, _h.alias == alias)
                    .order_by(_h.id.desc())
                    .limit(limit)
                )
            ).all()
        return [
            AliasChange(
                alias=row.alias,
                at=row.at,
                before=_routing(row.before),
                after=_routing(row.after),
                reason=ChangeReason(row.reason),
                detail=dict(row.detail),
            )
            for row in rows
        ]

    async def record_analysis(self, function_id: str, alias: str, analysis: dict[str, Any]) -> None:
        """Keep the canary analysis last made; it changes no routing, so no revision."""
        async with self._db.transaction() as conn:
            await conn.execute(
                sa.update(function_aliases)
                .where(_a.function_id == function_id, _a.name == alias)
                .values(analysis=analysis)
            )


async def _lock_function(conn: AsyncConnection, name: str) -> str:
    """The function's id, with its row locked for the rest of the transaction."""
    row = (
        await conn.execute(
            sa.update(functions)
            .where(_t.name == name)
            .values(last_version=_t.last_version)
            .returning(_t.id)
        )
    ).first()
    if row is None:
        raise FunctionNotFound(name)
    return str(row.id)


async def _function_id(conn: AsyncConnection, name: str) -> str:
    row = (await conn.execute(sa.select(_t.id).where(_t.name == name))).first()
    if row is None:
        raise FunctionNotFound(name)
    return str(row.id)


async def _current(conn: AsyncConnection, function_id: str, alias: str) -> AliasRecord | None:
    row = (
        await conn.execute(_SELECT_ALIAS.where(_a.function_id == function_id, _a.name == alias))
    ).first()
    return _alias(row) if row is not None else None


async def _require_versions(
    conn: AsyncConnection, name: str, function_id: str, routing: Routing
) -> None:
    wanted = {entry.version for entry in routing}
    found = await conn.execute(
        sa.select(_v.number).where(_v.function_id == function_id, _v.number.in_(wanted))
    )
    missing = wanted - {row.number for row in found}
    if missing:
        raise VersionNotFound(name, min(missing))


async def _write(
    conn: AsyncConnection,
    name: str,
    function_id: str,
    alias: str,
    current: AliasRecord | None,
    routing: Routing,
    description: str,
    policy: CanaryPolicy | None,
    reason: ChangeReason,
    detail: dict[str, Any],
) -> AliasRecord:
    if (
        current is not None
        and current.routing == routing
        and current.description == description
        and current.policy == policy
    ):
        return current  # nothing changes: no revision, no history entry
    now = datetime.now(UTC)
    values = {
        "routing": _routing_document(routing),
        "description": description,
        "policy": dataclasses.asdict(policy) if policy is not None else None,
        "updated_at": now,
    }
    if current is None:
        await conn.execute(
            function_aliases.insert().values(
                function_id=function_id,
                name=alias,
                revision=1,
                created_at=now,
                analysis=None,
                **values,
            )
        )
    else:
        await conn.execute(
            sa.update(function_aliases)
            .where(_a.function_id == function_id, _a.name == alias)
            .values(revision=_a.revision + 1, **values)
        )
    if current is None or current.routing != routing:
        before = current.routing if current is not None else ()
        await _remember(conn, function_id, alias, before, routing, reason, detail)
    await record_change(conn, ChangeKind.ALIAS_CHANGED, function_id, name, alias=alias)
    written = await _current(conn, function_id, alias)
    assert written is not None  # written just above, in this transaction
    return written


async def _remember(
    conn: AsyncConnection,
    function_id: str,
    alias: str,
    before: Routing,
    after: Routing,
    reason: ChangeReason,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        alias_history.insert().values(
            function_id=function_id,
            alias=alias,
            at=datetime.now(UTC),
            before=_routing_document(before),
            after=_routing_document(after),
            reason=reason.value,
            detail=detail,
        )
    )


def _routing_document(routing: Routing) -> list[list[int]]:
    return [[entry.version, entry.weight] for entry in routing]


def _routing(document: Sequence[Sequence[int]]) -> Routing:
    return tuple(VersionWeight(int(version), int(weight)) for version, weight in document)


def _alias(row: sa.Row[Any]) -> AliasRecord:
    policy = row.policy
    return AliasRecord(
        function_id=row.function_id,
        function_name=row.function_name,
        name=row.name,
        routing=_routing(row.routing),
        description=row.description,
        policy=_policy(policy) if policy else None,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        analysis=dict(row.analysis) if row.analysis else None,
    )


def _policy(document: dict[str, Any]) -> CanaryPolicy:
    known = {item.name for item in dataclasses.fields(CanaryPolicy)}
    values = {key: value for key, value in document.items() if key in known}
    if "steps" in values:
        values["steps"] = tuple(int(step) for step in values["steps"])
    return CanaryPolicy(**values)
