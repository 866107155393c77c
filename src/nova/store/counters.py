"""Running totals in SQL (the ``CounterRepository`` port)."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from nova.store.database import Database
from nova.store.schema import counters

_c = counters.c


class SqlCounterRepository:
    def __init__(self, database: Database) -> None:
        self._db = database
        dialect = postgresql if database.url.get_backend_name() == "postgresql" else sqlite
        insert = dialect.insert(counters)
        # An upsert that adds: two daemons flushing at once both count, neither overwrites.
        self._add = insert.on_conflict_do_update(
            index_elements=[_c.name], set_={"value": _c.value + insert.excluded.value}
        )

    async def add(self, deltas: Mapping[str, int]) -> None:
        rows = [{"name": name, "value": value} for name, value in deltas.items() if value]
        if not rows:
            return
        async with self._db.transaction() as conn:
            await conn.execute(self._add, rows)

    async def totals(self) -> dict[str, int]:
        async with self._db.transaction() as conn:
            result = await conn.execute(sa.select(_c.name, _c.value))
            return {name: int(value) for name, value in result}
