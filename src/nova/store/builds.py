"""The compile state of compiled functions in SQL (the ``BuildRepository`` port): one row per
function, removed with it (ON DELETE CASCADE)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nova.core.builds import StoredBuild
from nova.store.database import Database
from nova.store.schema import compile_states, functions

_b = compile_states.c


class SqlBuildRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, function_id: str) -> StoredBuild | None:
        async with self._db.transaction() as conn:
            query = sa.select(compile_states).where(_b.function_id == function_id)
            row = (await conn.execute(query)).first()
        return None if row is None else _build(row)

    async def record(
        self, function_id: str, code_hash: str, status: str, output: str, key: str
    ) -> StoredBuild | None:
        values: dict[str, Any] = {
            "code_hash": code_hash,
            "status": status,
            "output": output,
            "build_key": key,
            "updated_at": datetime.now(UTC),
        }
        if status == "success":
            values.update(good_code_hash=code_hash, good_build_key=key)
        async with self._db.transaction(write_lock=True) as conn:  # reads, then writes
            exists = sa.select(functions.c.id).where(functions.c.id == function_id)
            if (await conn.execute(exists)).first() is None:
                return None  # deleted while it was building
            update = sa.update(compile_states).where(_b.function_id == function_id).values(values)
            if (await conn.execute(update)).rowcount == 0:
                await conn.execute(compile_states.insert(), {**values, "function_id": function_id})
            query = sa.select(compile_states).where(_b.function_id == function_id)
            row = (await conn.execute(query)).one()
        return _build(row)


def _build(row: sa.Row[Any]) -> StoredBuild:
    return StoredBuild(
        function_id=row.function_id,
        code_hash=row.code_hash,
        status=row.status,
        output=row.output,
        key=row.build_key,
        good_code_hash=row.good_code_hash,
        good_key=row.good_build_key,
    )
