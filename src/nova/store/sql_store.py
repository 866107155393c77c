"""The SQL-backed :class:`~nova.store.ports.Store` and :func:`open_store`, its only constructor."""

from __future__ import annotations

from nova.store.aliases import SqlAliasRepository
from nova.store.api_keys import SqlApiKeyRepository
from nova.store.audit import SqlAuditRepository
from nova.store.builds import SqlBuildRepository
from nova.store.changes import SqlChangeLog
from nova.store.counters import SqlCounterRepository
from nova.store.database import Database, create_engine, ensure_sqlite_directory, parse_url
from nova.store.environments import SqlEnvironmentRepository
from nova.store.events import SqlEventQueue
from nova.store.functions import SqlFunctionRepository
from nova.store.invocations import SqlInvocationLogRepository
from nova.store.migrator import upgrade_to_head
from nova.store.ports import Store
from nova.store.queue_triggers import SqlTriggerRepository
from nova.store.routes import SqlRouteRepository
from nova.store.schedules import SqlScheduleRepository
from nova.store.secrets import SqlSecretRepository
from nova.store.timings import TransactionTimings
from nova.store.versions import SqlVersionRepository


class SqlStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.functions = SqlFunctionRepository(database)
        self.invocations = SqlInvocationLogRepository(database)
        self.versions = SqlVersionRepository(database)
        self.aliases = SqlAliasRepository(database)
        self.changes = SqlChangeLog(database)
        self.counters = SqlCounterRepository(database)
        self.events = SqlEventQueue(database)
        self.secrets = SqlSecretRepository(database)
        self.triggers = SqlTriggerRepository(database)
        self.routes = SqlRouteRepository(database)
        self.schedules = SqlScheduleRepository(database)
        self.builds = SqlBuildRepository(database)
        self.api_keys = SqlApiKeyRepository(database)
        self.audit = SqlAuditRepository(database)
        self.environments = SqlEnvironmentRepository(database)

    @property
    def transaction_timings(self) -> TransactionTimings:
        return self.database.timings

    async def ping(self) -> None:
        await self.database.ping()

    async def close(self) -> None:
        await self.changes.close()
        await self.invocations.close()
        await self.database.close()


async def open_store(database_url: str, *, schema: str | None = None) -> Store:
    """Open the database at ``database_url``, migrate it to the newest schema, return the store.

    ``database_url``: ``sqlite:///path/nova.db`` (the file and its directory are created) or
    ``postgresql://user:password@host:5432/db`` (the ``+aiosqlite`` / ``+asyncpg`` driver forms
    are accepted too). ``schema`` (PostgreSQL only) keeps every table in that schema, created if
    missing, e.g. to share one database between deployments or test runs.

    Raises ``StoreUnavailable`` naming the URL (without its password) and what to check when the
    URL is unusable, the database unreachable, or its schema newer than this Nova.
    """
    url = parse_url(database_url)
    ensure_sqlite_directory(url)
    database = Database(create_engine(url, schema=schema), url)
    try:
        await upgrade_to_head(database, schema)
    except BaseException:
        await database.close()  # leave no pooled connection behind, even when cancelled
        raise
    return SqlStore(database)
