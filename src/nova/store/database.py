"""The engine: URL handling, per-backend connection setup, and driver errors translated once.

Everything that knows SQLite from PostgreSQL lives here (plus the tiny time-zone shim in
:mod:`nova.store.schema`); the repositories just ask :class:`Database` for a transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from nova.core.errors import StoreUnavailable
from nova.store.timings import TransactionTimings

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"

# Execution option read by the SQLite "begin" hook; see Database.transaction(write_lock=...).
_BEGIN_IMMEDIATE = "nova_begin_immediate"

# How long opening a fresh SQLite file retries its switch to WAL (see _enable_wal).
_WAL_SWITCH_TIMEOUT_S = 15.0

# A PostgreSQL schema name we can put into search_path and DDL without quoting surprises.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Errors that mean "the database is not there (any more)", whatever the statement was.
# OSError covers refused/reset connections that asyncpg raises before SQLAlchemy wraps anything;
# TimeoutError covers asyncpg's connect and command timeouts.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
)
# While connecting, even a plain DBAPIError (unknown database, rejected login) means the same.
_CONNECT_FAILURES: tuple[type[BaseException], ...] = (DBAPIError, *_UNREACHABLE)


def parse_url(database_url: str) -> URL:
    """``database_url`` with Nova's async driver filled in; ``StoreUnavailable`` if unusable.

    Accepts the spellings people paste from elsewhere: ``sqlite:///path``,
    ``postgres://`` and ``postgresql://`` (libpq style) next to the explicit driver forms.
    """
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise StoreUnavailable(
            f"database URL {_redact_text(database_url)!r} cannot be parsed; use "
            "sqlite:///path/to/nova.db or postgresql://user:password@host:5432/dbname"
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite" and url.drivername in ("sqlite", SQLITE_DRIVER):
        return url.set(drivername=SQLITE_DRIVER)
    if backend == "postgresql" and url.drivername in ("postgresql", POSTGRES_DRIVER):
        return url.set(drivername=POSTGRES_DRIVER)
    raise StoreUnavailable(
        f"database URL {redact(url)!r} names an unsupported database or driver "
        f"{url.drivername!r}; Nova supports SQLite (sqlite:///path) and PostgreSQL "
        "(postgresql://…, driven by asyncpg)"
    )


def redact(url: URL) -> str:
    """The URL as it may appear in messages and logs: never with the password."""
    return url.render_as_string(hide_password=True)


def _redact_text(database_url: str) -> str:
    # For strings make_url rejected: blank out anything between "user:" and "@".
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", database_url)


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def ensure_sqlite_directory(url: URL) -> None:
    """Create the SQLite file's parent directory; SQLite creates the file, not its folders."""
    database = url.database
    if url.get_backend_name() != "sqlite" or is_memory(url) or not database:
        return
    if url.query.get("uri"):  # a file: URI names more than a path; leave it to SQLite
        return
    directory = Path(database).expanduser().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot create the directory {str(directory)!r} for the SQLite database "
            f"{redact(url)!r}: {exc.strerror}; check the path and its permissions"
        ) from exc


def create_engine(url: URL, *, schema: str | None) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise StoreUnavailable(
                f"schema {schema!r} was given for the SQLite database {redact(url)!r}; schemas "
                "are a PostgreSQL feature, use a separate SQLite file instead"
            )
        return _sqlite_engine(url)
    return _postgres_engine(url, schema)


def _sqlite_engine(url: URL) -> AsyncEngine:
    options: dict[str, Any] = {}
    if is_memory(url):
        # Every SQLite connection to :memory: is a new, empty database, and the default
        # StaticPool shares one connection between concurrent transactions (a ROLLBACK in one
        # would undo another). One pooled connection, handed to one task at a time, keeps a
        # single database with real transaction boundaries.
        options.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
    # timeout = how long a writer waits for SQLite's write lock (busy_timeout) before failing.
    engine = create_async_engine(url, connect_args={"timeout": 15}, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from Python's sqlite3 module, which would not BEGIN
        # before SELECT or DDL: with BEGIN emitted below, reads are repeatable and migrations
        # are atomic, as on PostgreSQL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Off by default in SQLite, and ON DELETE CASCADE of function_files relies on it.
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL lets readers proceed while one writer commits; NORMAL sync is durable in WAL
            # mode except for the last transactions on power loss, never corrupting.
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_BEGIN_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once; it stays WAL for every later connection.

    The switch needs the file to itself, and SQLite answers "database is locked" at once instead
    of calling its busy handler when another connection holds a lock at that moment - which
    happens when several daemons (or a daemon and its log writer) open a fresh database
    together. Only that first switch can race, so it is retried briefly.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + _WAL_SWITCH_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, wrapped by the adapter
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _postgres_engine(url: URL, schema: str | None) -> AsyncEngine:
    server_settings = {"application_name": "nova"}
    if schema is not None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StoreUnavailable(
                f"schema {schema!r} is not a valid schema name; use 1-63 lower-case letters, "
                "digits and '_', starting with a letter or '_'"
            )
        # Set per connection by the server, so every unqualified table name - Alembic's
        # version table included - resolves inside the schema.
        server_settings["search_path"] = schema
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,  # waiting longer for a pooled connection only hides overload
        pool_recycle=1800,  # outlive neither server idle timeouts nor failovers
        pool_pre_ping=True,  # a restarted PostgreSQL costs one retry, not one failed request
        connect_args={
            "timeout": 10,  # asyncpg's connect timeout defaults to 60 s
            "command_timeout": 60,
            "server_settings": server_settings,
        },
    )


class Database:
    """An engine plus the one place where driver errors become :class:`StoreUnavailable`."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.display_url = redact(url)
        self.timings = TransactionTimings()
        self._closed = False

    @asynccontextmanager
    async def transaction(self, *, write_lock: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction that commits on success and rolls back on error.

        ``write_lock`` takes SQLite's write lock at BEGIN, for transactions that read before
        they write: a deferred transaction cannot upgrade to writing once another writer has
        committed, and fails at once instead of waiting. PostgreSQL ignores it.
        """
        if self._closed:
            raise StoreUnavailable(f"the store for {self.display_url!r} is closed")
        started = time.perf_counter()
        try:
            connection = await self.engine.connect()
        except _CONNECT_FAILURES as exc:
            raise self.unavailable(exc) from exc
        try:
            if write_lock:
                await connection.execution_options(**{_BEGIN_IMMEDIATE: True})
            async with connection.begin():
                yield connection
        except _UNREACHABLE as exc:
            raise self.unavailable(exc) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise self.unavailable(exc) from exc
            raise
        finally:
            await connection.close()
            self.timings.observe(time.perf_counter() - started)

    async def ping(self) -> None:
        async with self.transaction() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        self._closed = True
        await self.engine.dispose()

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        # The driver's own message, never SQLAlchemy's wrapper text (which embeds the SQL).
        reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc) or type(exc).__name__
        if self.url.get_backend_name() == "sqlite":
            hint = (
                "check that the file's directory exists and is writable and that no other "
                "process holds a long write lock on it"
            )
        else:
            hint = (
                "check that PostgreSQL is running and reachable at that host and port, and "
                "that the user, password and database name are right"
            )
        return StoreUnavailable(f"database {self.display_url!r} is unavailable: {reason}; {hint}")
