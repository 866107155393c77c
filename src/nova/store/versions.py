"""Published versions in SQL (the ``VersionRepository`` port).

Publishing takes the function's row first (an UPDATE of ``last_version``), so concurrent
publishes of one function queue on that row and never hand out one number twice, and the
version's files are the $LATEST files read under the same lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.changes import ChangeKind
from nova.core.errors import FunctionNotFound, VersionInUse, VersionNotFound
from nova.core.models import FunctionConfig, Page
from nova.core.versions import FunctionVersion
from nova.store import cursors
from nova.store.changes import record_change
from nova.store.code_files import drop_unused_code
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import function_aliases, function_versions, functions

_t = functions.c
_v = function_versions.c
_a = function_aliases.c

_SELECT_VERSION = sa.select(function_versions, _t.name).join(functions, _t.id == _v.function_id)


class SqlVersionRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def publish(self, name: str, description: str) -> tuple[FunctionVersion, bool]:
        now = datetime.now(UTC)
        async with self._db.transaction() as conn:
            # The no-op UPDATE takes the row lock (and SQLite's write lock) before any read.
            locked = (
                await conn.execute(
                    sa.update(functions)
                    .where(_t.name == name)
                    .values(last_version=_t.last_version)
                    .returning(functions)
                )
            ).first()
            if locked is None:
                raise FunctionNotFound(name)
            latest = (
                await conn.execute(
                    _SELECT_VERSION.where(_v.function_id == locked.id)
                    .order_by(_v.number.desc())
                    .limit(1)
                )
            ).first()
            if (
                latest is not None
                and latest.code_hash == locked.code_hash
                # Compared as configs, not documents: a field added since reads as its default.
                and FunctionConfig.from_document(name, latest.config)
                == FunctionConfig.from_document(name, locked.config)
            ):
                return _version(latest), False  # nothing changed since: like Lambda
            number = locked.last_version + 1
            await conn.execute(
                sa.update(functions).where(_t.id == locked.id).values(last_version=number)
            )
            await conn.execute(
                function_versions.insert().values(
                    function_id=locked.id,
                    number=number,
                    config=locked.config,
                    code_hash=locked.code_hash,
                    code_size=locked.code_size,
                    description=description,
                    created_at=now,
                )
            )
            await record_change(conn, ChangeKind.VERSION_PUBLISHED, locked.id, name, version=number)
        return (
            FunctionVersion(
                function_id=locked.id,
                function_name=name,
                number=number,
                config=FunctionConfig.from_document(name, locked.config),
                code_hash=locked.code_hash,
                code_size=locked.code_size,
                description=description,
                created_at=now,
            ),
            True,
        )

    async def get(self, name: str, number: int) -> FunctionVersion:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(_SELECT_VERSION.where(_t.name == name, _v.number == number))
            ).first()
            if row is None:
                await _require_function(conn, name)
                raise VersionNotFound(name, number)
        return _version(row)

    async def list(
        self, name: str, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[FunctionVersion]:
        cursors.check_limit(limit)
        query = _SELECT_VERSION.where(_t.name == name).order_by(_v.number).limit(limit + 1)
        if cursor is not None:
            (after,) = cursors.decode(cursor, cursors.VERSIONS, 1)
            query = query.where(_v.number > int(after))
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                await _require_function(conn, name)
        items = [_version(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items, cursors.encode(cursors.VERSIONS, str(items[-1].number)) if more else None
        )

    async def delete(self, name: str, number: int) -> FunctionVersion:
        async with self._db.transaction() as conn:
            # Lock the function first: an alias set meanwhile waits, then finds no version.
            locked = (
                await conn.execute(
                    sa.update(functions)
                    .where(_t.name == name)
                    .values(last_version=_t.last_version)
                    .returning(_t.id)
                )
            ).first()
            if locked is None:
                raise FunctionNotFound(name)
            row = (
                await conn.execute(
                    _SELECT_VERSION.where(_v.function_id == locked.id, _v.number == number)
                )
            ).first()
            if row is None:
                raise VersionNotFound(name, number)
            aliases = await conn.execute(
                sa.select(_a.name, _a.routing).where(_a.function_id == locked.id)
            )
            routed = sorted(
                alias.name
                for alias in aliases
                if any(version == number for version, _ in alias.routing)
            )
            if routed:
                raise VersionInUse(name, number, routed)
            await conn.execute(
                sa.delete(function_versions).where(_v.function_id == locked.id, _v.number == number)
            )
            await drop_unused_code(conn, locked.id)
            await record_change(conn, ChangeKind.VERSION_DELETED, locked.id, name, version=number)
        return _version(row)


async def _require_function(conn: AsyncConnection, name: str) -> None:
    found = await conn.execute(sa.select(_t.id).where(_t.name == name))
    if found.first() is None:
        raise FunctionNotFound(name)


def _version(row: sa.Row[Any]) -> FunctionVersion:
    return FunctionVersion(
        function_id=row.function_id,
        function_name=row.name,
        number=row.number,
        config=FunctionConfig.from_document(row.name, row.config),
        code_hash=row.code_hash,
        code_size=row.code_size,
        description=row.description,
        created_at=row.created_at,
    )
