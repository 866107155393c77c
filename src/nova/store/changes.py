"""The change log in SQL (the ``ChangeLog`` port) and the one way a change is written.

Sequence numbers must appear in commit order, or a follower that read up to 6 would miss a 5
committed after it. SQLite has one writer at a time, so that holds by itself; on PostgreSQL
every writer first takes a transaction-scoped advisory lock, so entries are numbered and
committed one transaction after the other. There, each entry also sends a ``NOTIFY``, which
PostgreSQL delivers at commit: a daemon listening wakes at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.changes import Change, ChangeKind
from nova.store.database import Database
from nova.store.schema import UTCDateTime, change_log

logger = logging.getLogger(__name__)

_c = change_log.c
CHANNEL = "nova_changes"
# An arbitrary constant of this application ("NovaChng"), distinct from the migration lock.
_WRITE_LOCK_KEY = 0x4E6F76614368_6E67


async def record_change(
    conn: AsyncConnection,
    kind: ChangeKind,
    function_id: str,
    function_name: str,
    *,
    version: int | None = None,
    alias: str | None = None,
    secret: str | None = None,
    api_key: str | None = None,
) -> None:
    """Append an entry inside the caller's transaction (it commits or rolls back with it)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK_KEY})
    await conn.execute(
        change_log.insert().values(
            at=datetime.now(UTC),
            kind=kind.value,
            function_id=function_id,
            function_name=function_name,
            version=version,
            alias=alias,
            secret=secret,
            api_key=api_key,
        )
    )
    if postgres:
        await conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


class SqlChangeLog:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._listener: Any = None  # asyncpg connection LISTENing on CHANNEL, once opened
        self._notified = asyncio.Event()

    async def head(self) -> int:
        async with self._db.transaction() as conn:
            value = (await conn.execute(sa.select(sa.func.max(_c.seq)))).scalar()
        return int(value or 0)

    async def since(self, seq: int, limit: int = 500) -> list[Change]:
        query = sa.select(change_log).where(_c.seq > seq).order_by(_c.seq).limit(limit)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Change(
                seq=row.seq,
                kind=ChangeKind(row.kind),
                function_id=row.function_id,
                function_name=row.function_name,
                version=row.version,
                alias=row.alias,
                at=row.at,
                secret=row.secret,
                api_key=row.api_key,
            )
            for row in rows
        ]

    async def wait(self, timeout_s: float) -> None:
        """Return when a change may have been committed (a NOTIFY on PostgreSQL) or after
        ``timeout_s``, whichever is first; followers poll with it."""
        if self._db.url.get_backend_name() == "postgresql":
            await self._listen()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._notified.wait()
        self._notified.clear()

    async def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``; followers far behind then reload everything."""
        statement = sa.delete(change_log).where(_c.at < sa.literal(before, UTCDateTime()))
        async with self._db.transaction(write_lock=True) as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            import asyncpg  # the driver behind the engine; only this module may touch it

            url = self._db.url
            self._listener = await asyncpg.connect(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
                timeout=10,
            )
            await self._listener.add_listener(CHANNEL, self._on_notify)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            # Polling still finds every change; the listener only makes it prompt.
            logger.warning("cannot LISTEN for changes (polling instead): %s", exc)
            self._listener = None

    def _on_notify(self, *_: object) -> None:
        self._notified.set()

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                await self._listener.close()
            self._listener = None
