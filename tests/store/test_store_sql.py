"""What only the SQL store has: migrations, files on disk, connections and their failures."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from nova.core.errors import StoreUnavailable
from nova.core.models import CodeBundle, CodeFile, FunctionConfig, InvocationLog
from nova.store import Store
from nova.store.database import Database, create_engine, ensure_sqlite_directory, parse_url
from nova.store.migrator import alembic_config
from nova.store.schema import VERSION_TABLE, code_files, metadata
from nova.store.sql_store import SqlStore, open_store

from .backends import Target, postgres_schema, postgres_url

CONFIG = FunctionConfig(name="hello", runtime="python", handler="handler.handler")
CODE = CodeBundle({"handler.py": CodeFile(b"def handler(e, c):\n    return e\n")})
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def sql(store: Store) -> SqlStore:
    assert isinstance(store, SqlStore)
    return store


async def scalar(store: Store, statement: str) -> object:
    async with sql(store).database.transaction() as connection:
        return (await connection.execute(sa.text(statement))).scalar_one()


@pytest.fixture
async def sql_store(sql_target: Target) -> AsyncIterator[Store]:
    opened = await sql_target.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_migrations_are_idempotent(sql_target: Target) -> None:
    for _ in range(3):
        store = await sql_target.open()
        try:
            assert await scalar(store, f"SELECT version_num FROM {VERSION_TABLE}") == HEAD
            assert await scalar(store, f"SELECT count(*) FROM {VERSION_TABLE}") == 1
        finally:
            await store.close()


async def test_concurrent_first_opens_migrate_once(sql_target: Target) -> None:
    # Several nodes (or processes) starting together on a fresh database: the advisory lock
    # (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serialises their upgrades.
    stores = await asyncio.gather(*(sql_target.open() for _ in range(4)))
    try:
        assert await scalar(stores[0], f"SELECT count(*) FROM {VERSION_TABLE}") == 1
    finally:
        for store in stores:
            await store.close()


async def test_opening_while_another_writer_commits_switches_to_wal(tmp_path: Path) -> None:
    # Another process inside a write transaction on a fresh (rollback-journal) file: SQLite
    # answers the WAL switch of a connection opening meanwhile with "database is locked" at
    # once, without waiting, when that writer commits (a lock deadlock it resolves by failing
    # the switch). Opening must retry rather than fail the daemon's start.
    path = tmp_path / "nova.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    commit = threading.Timer(0.3, writer.execute, ("COMMIT",))
    commit.start()
    try:
        store = await open_store(f"sqlite:///{path}")
        await store.close()
    finally:
        commit.join()
        writer.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_reopening_keeps_the_data(sql_target: Target) -> None:
    first = await sql_target.open()
    try:
        created = await first.functions.create(CONFIG, CODE)
        now = datetime.now(UTC)
        log = InvocationLog(
            "r1",
            created.id,
            "hello",
            "python",
            "$LATEST",
            "",
            2.5,
            3.0,
            True,
            True,
            None,
            None,
            1,
            2,
            "out",
            "",
            now,
        )
        await first.invocations.add_many([log])
    finally:
        await first.close()

    second = await sql_target.open()
    try:
        assert await second.functions.get("hello") == created
        assert await second.functions.get_code("hello") == CODE
        assert (await second.invocations.list()).items == [log]
    finally:
        await second.close()


async def test_upgrading_keeps_functions_code_and_logs(sql_target: Target) -> None:
    """A database made by the first release, upgraded: records of an existing function get its
    id (a deleted function's keep NULL), the old duration (the daemon's total) becomes
    total_ms, and the function's config and files read back unchanged."""
    assert sql_target.url is not None
    url = parse_url(sql_target.url)
    ensure_sqlite_directory(url)
    database = Database(create_engine(url, schema=sql_target.schema), url)
    async with database.transaction() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
        now = datetime.now(UTC)
        await connection.execute(
            sa.text(
                "INSERT INTO functions (id, name, runtime, handler, memory_mb, timeout_s, env, "
                "mode, min_replicas, max_replicas, instance_concurrency, network, description, "
                "code_hash, code_size, revision, created_at, updated_at) VALUES ('f-1', 'live', "
                "'python', 'h.h', 128, 3, '{}', 'persistent', 0, 1, 1, false, '', 'x', 1, 1, "
                ":now, :now)"
            ),
            {"now": now},
        )
        await connection.execute(
            sa.text(
                "INSERT INTO function_files (function_id, path, content, executable) "
                "VALUES ('f-1', 'h.py', :content, true)"
            ),
            {"content": b"def h(e, c):\n    return 1\n"},
        )
        for log_id, name in (("a", "live"), ("b", "gone")):
            await connection.execute(
                sa.text(
                    "INSERT INTO invocation_logs (id, function_name, runtime, version, "
                    "duration_ms, cold_start, success, input_size, output_size, stdout, stderr, "
                    "created_at) VALUES (:id, :name, 'python', '$LATEST', 7.5, false, true, 0, 0, "
                    "'', '', :now)"
                ),
                {"id": log_id, "name": name, "now": now},
            )
    await database.close()

    store = await sql_target.open()
    try:
        logs = {log.id: log for log in (await store.invocations.list()).items}
        live = await store.functions.get("live")
        code = await store.functions.get_code("live")
    finally:
        await store.close()
    assert (logs["a"].function_id, logs["b"].function_id) == ("f-1", None)
    assert logs["a"].total_ms == logs["a"].duration_ms == 7.5
    # 0003: the config columns became one document, the files moved to code_files.
    assert live.config == FunctionConfig(
        name="live", runtime="python", handler="h.h", timeout_s=3.0, max_replicas=1
    )
    assert code.files == {"h.py": CodeFile(b"def h(e, c):\n    return 1\n", executable=True)}


async def test_the_migrated_schema_matches_the_metadata(sql_store: Store) -> None:
    """The hand-written migrations and nova.store.schema describe the same tables."""

    def differences(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, metadata))

    async with sql(sql_store).database.transaction() as connection:
        assert await connection.run_sync(differences) == []


async def test_deleting_a_function_cascades_to_its_files(sql_store: Store) -> None:
    created = await sql_store.functions.create(CONFIG, CODE)
    count = sa.select(sa.func.count()).select_from(code_files)
    count = count.where(code_files.c.function_id == created.id)
    async with sql(sql_store).database.transaction() as connection:
        assert (await connection.execute(count)).scalar_one() == 1

    await sql_store.functions.delete("hello")

    async with sql(sql_store).database.transaction() as connection:
        assert (await connection.execute(count)).scalar_one() == 0


async def test_ping(sql_store: Store) -> None:
    await sql_store.ping()


async def test_a_closed_store_refuses_work(sql_store: Store) -> None:
    await sql_store.close()
    await sql_store.close()  # idempotent
    with pytest.raises(StoreUnavailable, match="closed"):
        await sql_store.ping()
    with pytest.raises(StoreUnavailable, match="closed"):
        await sql_store.functions.get("hello")


async def test_a_database_newer_than_the_code_is_refused(sql_target: Target) -> None:
    store = await sql_target.open()
    try:
        async with sql(store).database.transaction() as connection:
            await connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
    finally:
        await store.close()
    with pytest.raises(StoreUnavailable, match="f00d"):
        await sql_target.open()


async def test_sqlite_pragmas_are_set(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/nova.db")
    try:
        assert await scalar(store, "PRAGMA foreign_keys") == 1
        assert await scalar(store, "PRAGMA journal_mode") == "wal"
    finally:
        await store.close()


async def test_sqlite_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "nova.db"
    store = await open_store(f"sqlite+aiosqlite:///{path}")
    await store.close()
    assert path.is_file()


async def test_sqlite_in_memory_serves_concurrent_tasks() -> None:
    store = await open_store("sqlite://")
    try:
        await asyncio.gather(
            *(
                store.functions.create(FunctionConfig(f"f{i}", "python", "h.h"), CODE)
                for i in range(10)
            )
        )
        assert len((await store.functions.list()).items) == 10
    finally:
        await store.close()


async def test_sqlite_refuses_a_schema(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="PostgreSQL feature"):
        await open_store(f"sqlite:///{tmp_path}/nova.db", schema="nova")


async def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        await open_store("postgresql+asyncpg://nova:s3cret-pw@127.0.0.1:1/nova")
    message = caught.value.message
    assert "s3cret-pw" not in message
    assert "127.0.0.1:1/nova" in message
    assert "check that PostgreSQL is running" in message
    assert caught.value.status == 503


async def test_an_unknown_postgres_database_is_store_unavailable() -> None:
    # Reachable server (or not: either way the store is unavailable), database missing.
    url = parse_url(postgres_url()).set(database="nova_no_such_database")
    with pytest.raises(StoreUnavailable, match="nova_no_such_database"):
        await open_store(url.render_as_string(hide_password=False))


@pytest.mark.postgres
async def test_ordered_text_columns_compare_bytes_on_postgres() -> None:
    # Without COLLATE "C", a PostgreSQL created with an en_US locale would list and paginate in
    # another order than SQLite and the fake; the test server's C locale would not show it.
    # (SQLite always compares bytes.)
    query = (
        "SELECT table_name || '.' || column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND collation_name = 'C' ORDER BY 1"
    )
    async with postgres_schema() as schema:
        store = await open_store(postgres_url(), schema=schema)
        try:
            async with sql(store).database.transaction() as connection:
                columns = (await connection.execute(sa.text(query))).scalars().all()
        finally:
            await store.close()
    assert columns == [
        "api_keys.name",
        "async_events.id",
        "environments.path",
        "function_aliases.name",
        "functions.name",
        "invocation_logs.function_name",
        "invocation_logs.id",
        "queue_triggers.name",
        "schedules.id",
        "secrets.name",
    ]


@pytest.mark.postgres
async def test_postgres_creates_a_missing_schema() -> None:
    async with postgres_schema(create=False) as schema:
        store = await open_store(postgres_url(), schema=schema)
        try:
            await store.functions.create(CONFIG, CODE)
            assert await scalar(store, "SELECT current_schema()") == schema
        finally:
            await store.close()


async def test_postgres_refuses_an_unsafe_schema_name() -> None:
    with pytest.raises(StoreUnavailable, match="schema"):
        await open_store(postgres_url(), schema='x"; DROP TABLE functions; --')


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///nova.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///nova.db", "sqlite+aiosqlite"),
        ("postgres://u:p@db/nova", "postgresql+asyncpg"),
        ("postgresql://u:p@db/nova", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@db/nova", "postgresql+asyncpg"),
    ],
)
def test_database_url_spellings(url: str, driver: str) -> None:
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize(
    "url",
    ["mysql://root:hunter2@db/nova", "postgresql+psycopg2://u:hunter2@db/nova", "not a url"],
)
async def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        await open_store(url)
    assert "hunter2" not in caught.value.message
