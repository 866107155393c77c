"""Functions ($LATEST) in SQL (the ``FunctionRepository`` port).

A function's config is kept as one JSON document (``FunctionConfig.document``); its files live
in ``code_files`` under their hash (nova.store.code_files). Every write also appends to the
change log in the same transaction (nova.store.changes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from nova.core.changes import ChangeKind
from nova.core.errors import FunctionAlreadyExists, FunctionNotFound, RequestInvalid
from nova.core.models import CodeBundle, FunctionConfig, FunctionRecord, Page
from nova.core.tenancy import Environment
from nova.store import cursors
from nova.store.changes import record_change
from nova.store.code_files import drop_unused_code, load_code, store_code
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import functions
from nova.store.tenancy_sql import in_environment

_t = functions.c

# Built once: the column list of every function read.
_SELECT_FUNCTION = sa.select(functions)


class SqlFunctionRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, config: FunctionConfig, code: CodeBundle) -> FunctionRecord:
        now = datetime.now(UTC)
        record = FunctionRecord(
            id=str(uuid.uuid4()),
            config=config,
            code_hash=code.sha256,
            code_size=code.size,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        row = {
            "id": record.id,
            "name": config.name,
            "config": config.document(),
            "code_hash": record.code_hash,
            "code_size": record.code_size,
            "revision": record.revision,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction() as conn:
            try:
                await conn.execute(functions.insert(), row)
            except IntegrityError as exc:
                # The only constraint an insert of a fresh uuid can violate is the unique name;
                # relying on it (rather than a SELECT first) also covers two concurrent creates.
                raise FunctionAlreadyExists(config.name) from exc
            await store_code(conn, record.id, code)
            await record_change(conn, ChangeKind.FUNCTION_CREATED, record.id, config.name)
        return record

    async def get(self, name: str) -> FunctionRecord:
        async with self._db.transaction() as conn:
            row = (await conn.execute(_SELECT_FUNCTION.where(_t.name == name))).first()
        if row is None:
            raise FunctionNotFound(name)
        return _record(row)

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[FunctionRecord]:
        cursors.check_limit(limit)
        # One row more than asked tells whether another page exists without a COUNT.
        query = _SELECT_FUNCTION.order_by(_t.name).limit(limit + 1)
        if environment is not None:
            query = query.where(in_environment(_t.name, environment))
        if cursor is not None:
            (after,) = cursors.decode(cursor, cursors.FUNCTIONS, 1)
            query = query.where(_t.name > after)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items=items, next=cursors.encode(cursors.FUNCTIONS, items[-1].name) if more else None
        )

    async def update(
        self, name: str, config: FunctionConfig, code: CodeBundle | None
    ) -> FunctionRecord:
        if config.name != name:
            raise RequestInvalid(
                f"name: cannot rename function {name!r} to {config.name!r}; create a new "
                "function and delete the old one"
            )
        values: dict[str, Any] = {
            "config": config.document(),
            "revision": _t.revision + 1,
            "updated_at": datetime.now(UTC),
        }
        if code is not None:
            values |= {"code_hash": code.sha256, "code_size": code.size}
        # UPDATE first, so the write lock is taken before anything is read (SQLite cannot
        # upgrade a read transaction once another writer committed) and the revision bump is
        # atomic on both backends; RETURNING hands back the row in the same round trip.
        statement = sa.update(functions).where(_t.name == name).values(values).returning(functions)
        async with self._db.transaction() as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise FunctionNotFound(name)
            if code is not None:
                await store_code(conn, row.id, code)
                await drop_unused_code(conn, row.id)
            await record_change(conn, ChangeKind.FUNCTION_UPDATED, row.id, name)
        return _record(row)

    async def delete(self, name: str) -> FunctionRecord:
        # Files, versions and aliases go with it: ON DELETE CASCADE (SQLite: foreign_keys=ON).
        statement = sa.delete(functions).where(_t.name == name).returning(functions)
        async with self._db.transaction() as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise FunctionNotFound(name)
            await record_change(conn, ChangeKind.FUNCTION_DELETED, row.id, name)
        return _record(row)

    async def get_code(self, name: str) -> CodeBundle:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(sa.select(_t.id, _t.code_hash).where(_t.name == name))
            ).first()
            if row is None:
                raise FunctionNotFound(name)
            return await load_code(conn, row.id, row.code_hash)

    async def get_code_by_hash(self, function_id: str, code_hash: str) -> CodeBundle:
        async with self._db.transaction() as conn:
            return await load_code(conn, function_id, code_hash)

    async def usage(self, environment: Environment) -> tuple[int, int]:
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(_t.code_size), 0)).where(
            in_environment(_t.name, environment)
        )
        async with self._db.transaction() as conn:
            count, size = (await conn.execute(query)).one()
        return int(count), int(size)


def _record(row: sa.Row[Any]) -> FunctionRecord:
    return FunctionRecord(
        id=row.id,
        config=FunctionConfig.from_document(row.name, row.config),
        code_hash=row.code_hash,
        code_size=row.code_size,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
