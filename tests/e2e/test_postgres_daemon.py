"""The daemon on PostgreSQL: the same story as on SQLite, and it survives a restart.

Each run gets a throwaway database (CREATE DATABASE … / DROP DATABASE …) on the server at
NOVA_TEST_POSTGRES_URL, so the daemon's migrations run from scratch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.daemon_process import DaemonProcess
from tests.store.backends import _unreachable, postgres_url


def _admin_dsn() -> str:
    url = make_url(postgres_url())
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _run(sql: str) -> None:
    connection = await asyncpg.connect(_admin_dsn(), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    name = f"nova_e2e_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unreachable(
            f"PostgreSQL at {make_url(postgres_url()).render_as_string()} is unreachable: {exc}"
        )
    yield make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_daemon_on_postgres_survives_restart(database_url: str, tmp_path: Path) -> None:
    env = {"NOVA_DATABASE_URL": database_url}
    code = "def handler(event, context):\n    return {'pg': event}\n"
    first = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with first.client() as api:
            assert api.get("/health").json()["store"]["ok"] is True
            api.post(
                "/functions", json={"name": "pg-fn", "runtime": "python", "code": code}
            ).raise_for_status()
            assert api.post("/functions/pg-fn/invoke", json=1).json()["output"] == {"pg": 1}
    finally:
        assert first.stop() == 0
    # A new data dir: everything must come from PostgreSQL, not from local files.
    second = DaemonProcess(tmp_path / "other-data", env=env).start()
    try:
        with second.client() as api:
            assert [item["name"] for item in api.get("/functions").json()["items"]] == ["pg-fn"]
            assert api.post("/functions/pg-fn/invoke", json=2).json()["output"] == {"pg": 2}
            logs = api.get("/functions/pg-fn/logs").json()["items"]
            assert len(logs) >= 1
    finally:
        second.stop()
