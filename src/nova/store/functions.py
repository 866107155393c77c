"""Functions and their files in SQL (the ``FunctionRepository`` port)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.errors import FunctionAlreadyExists, FunctionNotFound, RequestInvalid
from nova.core.models import (
    CodeBundle,
    CodeFile,
    ExecutionMode,
    FunctionConfig,
    FunctionRecord,
    Page,
)
from nova.store import cursors
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import function_files, functions

_t = functions.c
_f = function_files.c

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
        row = _config_values(config) | {
            "id": record.id,
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
            await _insert_files(conn, record.id, code)
        return record

    async def get(self, name: str) -> FunctionRecord:
        async with self._db.transaction() as conn:
            row = (await conn.execute(_SELECT_FUNCTION.where(_t.name == name))).first()
        if row is None:
            raise FunctionNotFound(name)
        return _record(row)

    async def list(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[FunctionRecord]:
        cursors.check_limit(limit)
        # One row more than asked tells whether another page exists without a COUNT.
        query = _SELECT_FUNCTION.order_by(_t.name).limit(limit + 1)
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
        values: dict[str, Any] = _config_values(config) | {
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
                await conn.execute(sa.delete(function_files).where(_f.function_id == row.id))
                await _insert_files(conn, row.id, code)
        return _record(row)

    async def delete(self, name: str) -> FunctionRecord:
        # function_files rows go with it: ON DELETE CASCADE (SQLite: PRAGMA foreign_keys=ON).
        statement = sa.delete(functions).where(_t.name == name).returning(functions)
        async with self._db.transaction() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise FunctionNotFound(name)
        return _record(row)

    async def get_code(self, name: str) -> CodeBundle:
        # The outer join tells "no such function" (no row) from "no files" (one row of NULLs)
        # in a single query.
        query = (
            sa.select(_t.id, _f.path, _f.content, _f.executable)
            .select_from(functions.outerjoin(function_files, _f.function_id == _t.id))
            .where(_t.name == name)
            .order_by(_f.path)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            raise FunctionNotFound(name)
        return CodeBundle(
            files={
                row.path: CodeFile(content=bytes(row.content), executable=bool(row.executable))
                for row in rows
                if row.path is not None
            }
        )


async def _insert_files(conn: AsyncConnection, function_id: str, code: CodeBundle) -> None:
    if not code.files:
        return  # an executemany with no parameter sets is an error, not a no-op
    await conn.execute(
        function_files.insert(),
        [
            {
                "function_id": function_id,
                "path": path,
                "content": item.content,
                "executable": item.executable,
            }
            for path, item in code.files.items()
        ],
    )


def _config_values(config: FunctionConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "runtime": config.runtime,
        "handler": config.handler,
        "memory_mb": config.memory_mb,
        "timeout_s": config.timeout_s,
        "env": dict(config.env),
        "mode": config.mode.value,
        "min_replicas": config.min_replicas,
        "max_replicas": config.max_replicas,
        "instance_concurrency": config.instance_concurrency,
        "backend": config.backend,
        "network": config.network,
        "description": config.description,
    }


def _record(row: sa.Row[Any]) -> FunctionRecord:
    return FunctionRecord(
        id=row.id,
        config=FunctionConfig(
            name=row.name,
            runtime=row.runtime,
            handler=row.handler,
            memory_mb=row.memory_mb,
            # float(): SQLite keeps integral REALs as integers on disk and UPDATE ... RETURNING
            # hands them back as int.
            timeout_s=float(row.timeout_s),
            env=dict(row.env),
            mode=ExecutionMode(row.mode),
            min_replicas=row.min_replicas,
            max_replicas=row.max_replicas,
            instance_concurrency=row.instance_concurrency,
            backend=row.backend,
            network=bool(row.network),
            description=row.description,
        ),
        code_hash=row.code_hash,
        code_size=row.code_size,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
