"""Invocation logs in SQL (the ``InvocationLogRepository`` port)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from nova.core.models import InvocationLog, Page
from nova.core.tenancy import Environment
from nova.store import cursors
from nova.store.database import Database, is_memory
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import UTCDateTime, invocation_logs
from nova.store.sqlite_log_writer import COLUMNS, SQLITE_INSERT, SqliteLogWriter, sqlite_time
from nova.store.tenancy_sql import in_environment

_l = invocation_logs.c

# InvocationLog's fields are exactly the table's columns; checked once at import so a field added
# to one and not the other fails loudly instead of being dropped.
if {column.name for column in invocation_logs.columns} != set(COLUMNS):
    raise RuntimeError("InvocationLog and the invocation_logs table have different fields")


def _sqlite_row(log: InvocationLog) -> tuple[Any, ...]:
    return tuple(
        sqlite_time(log.created_at) if name == "created_at" else getattr(log, name)
        for name in COLUMNS
    )


# Both inserts are idempotent per log id (as SQLITE_INSERT): a batch retried after a lost commit
# acknowledgement neither fails on the primary key (dropping the whole batch) nor duplicates rows.
_POSTGRES_INSERT = (
    f"INSERT INTO invocation_logs ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${index}' for index in range(1, len(COLUMNS) + 1))}) "
    "ON CONFLICT (id) DO NOTHING"
)

_NEWEST_FIRST = sa.select(invocation_logs).order_by(_l.created_at.desc(), _l.id.desc())


class SqlInvocationLogRepository:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._sqlite = database.url.get_backend_name() != "postgresql"
        # A SQLite file is written by a process of its own (sqlite_log_writer: the daemon's
        # event loop only encodes the batch); an in-memory database exists only in this one.
        self._writer = (
            SqliteLogWriter(str(database.url.database))
            if self._sqlite and not is_memory(database.url)
            else None
        )

    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        """Insert ``logs`` in one transaction; ids already stored are skipped, not errors.
        ``StoreUnavailable`` when the database cannot be reached; ``ValueError`` when it
        refuses the records themselves."""
        if not logs:
            return  # an executemany with no parameter sets is an error, not a no-op
        for log in logs:
            # Checked here rather than only in UTCDateTime, which SQLAlchemy would wrap in one
            # of its own exceptions.
            if log.created_at.utcoffset() is None:
                raise ValueError(f"invocation log {log.id!r} has a naive created_at; use UTC")
        if self._writer is not None:
            await self._writer.write(logs)
            return
        if self._sqlite:
            async with self._db.transaction() as conn:
                # sqlite3's own executemany over plain tuples, stored exactly as
                # UTCDateTime/Boolean would store them (~14 µs a row against ~33 µs through
                # SQLAlchemy's per-value processing).
                await conn.exec_driver_sql(SQLITE_INSERT, [_sqlite_row(log) for log in logs])
            return
        import asyncpg  # only PostgreSQL pays for its import (~80 ms)

        rows = [tuple(getattr(log, name) for name in COLUMNS) for log in logs]
        try:
            await self._postgres_insert(rows)
        except asyncpg.CharacterNotInRepertoireError:
            # PostgreSQL text cannot hold NUL, which a handler may well print: such characters
            # are stored as U+FFFD rather than the batch refused. Rare, so checked only here.
            await self._postgres_insert([tuple(map(_without_nul, row)) for row in rows])

    async def _postgres_insert(self, rows: list[tuple[Any, ...]]) -> None:
        import asyncpg

        async with self._db.transaction() as conn:
            # asyncpg's own executemany over tuples, inside SQLAlchemy's transaction: a batch
            # through SQLAlchemy's per-value processing on the daemon's event loop cost a
            # fifth of warm throughput against the SQLite writer process.
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection always has its driver's
            try:
                await driver.executemany(_POSTGRES_INSERT, rows)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                if isinstance(exc, asyncpg.CharacterNotInRepertoireError):
                    raise
                # The records, not the database, are the trouble: ValueError tells the batcher
                # not to wait for the store to come back but to find the refused record.
                raise ValueError(f"PostgreSQL refused the batch: {exc}") from exc

    async def close(self) -> None:
        """Stop the writer process, if there is one, after its last batch."""
        if self._writer is not None:
            await self._writer.close()

    async def list(
        self,
        *,
        function_name: str | None = None,
        function_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[InvocationLog]:
        cursors.check_limit(limit)
        query = _NEWEST_FIRST.limit(limit + 1)
        if function_name is not None:
            query = query.where(_l.function_name == function_name)
        if function_id is not None:
            query = query.where(_l.function_id == function_id)
        if environment is not None:
            query = query.where(in_environment(_l.function_name, environment))
        if cursor is not None:
            created_at, log_id = cursors.decode_invocation(cursor)
            # Row-value comparison (SQLite >= 3.15, PostgreSQL) walks the (created_at, id)
            # index backwards from the last row seen; the typed literal makes the timestamp
            # go through UTCDateTime, so it compares in the stored format on SQLite too.
            query = query.where(
                sa.tuple_(_l.created_at, _l.id)
                < sa.tuple_(sa.literal(created_at, UTCDateTime()), sa.literal(log_id, sa.String()))
            )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_log(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return Page(items=items, next=None)
        last = items[-1]
        return Page(items=items, next=cursors.encode_invocation(last.created_at, last.id))

    async def outcomes(
        self, function_id: str, version: str, since: datetime
    ) -> tuple[Sequence[float], int]:
        query = sa.select(_l.duration_ms, _l.success).where(
            _l.function_id == function_id,
            _l.version == version,
            _l.created_at >= sa.literal(since, UTCDateTime()),
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [float(row.duration_ms) for row in rows], sum(not row.success for row in rows)

    async def delete_older_than(
        self,
        cutoff: datetime,
        limit: int,
        *,
        environment: Environment | None = None,
        excluding: Sequence[Environment] = (),
    ) -> int:
        """Delete up to ``limit`` of the oldest records created before ``cutoff``."""
        oldest = sa.select(_l.id).where(_l.created_at < sa.literal(cutoff, UTCDateTime()))
        if environment is not None:
            oldest = oldest.where(in_environment(_l.function_name, environment))
        for other in excluding:
            oldest = oldest.where(sa.not_(in_environment(_l.function_name, other)))
        oldest = oldest.order_by(_l.created_at).limit(limit)
        statement = sa.delete(invocation_logs).where(_l.id.in_(oldest.scalar_subquery()))
        async with self._db.transaction(write_lock=True) as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)

    async def delete_beyond_count(self, keep: int, limit: int) -> int:
        newest_first = (
            sa.func.row_number()
            .over(partition_by=_l.function_name, order_by=(_l.created_at.desc(), _l.id.desc()))
            .label("rank")
        )
        ranked = sa.select(_l.id, _l.created_at, newest_first).subquery()
        surplus = (
            sa.select(ranked.c.id)
            .where(ranked.c.rank > keep)
            .order_by(ranked.c.created_at)
            .limit(limit)
        )
        statement = sa.delete(invocation_logs).where(_l.id.in_(surplus.scalar_subquery()))
        async with self._db.transaction(write_lock=True) as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)


# SQLite hands back an integral REAL as int and booleans as 0/1: these columns are converted.
_CONVERT: dict[str, Any] = {
    "duration_ms": float,
    "total_ms": float,
    "cold_start": bool,
    "success": bool,
    **dict.fromkeys(
        ("sandbox_ms", "code_ms", "runtime_ms", "init_ms"),
        lambda value: None if value is None else float(value),
    ),
}


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _log(row: sa.Row[Any]) -> InvocationLog:
    values = row._mapping
    return InvocationLog(**{name: _CONVERT.get(name, _same)(values[name]) for name in COLUMNS})


def _same(value: Any) -> Any:
    return value
