from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.daemon_process import DaemonProcess
from tests.store.backends import _unreachable, postgres_url

pytestmark = pytest.mark.e2e
# The cases several backends' modules share get pytest's assertion messages too.
pytest.register_assert_rewrite("tests.e2e.zig_wasm_cases")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path / "data").start()
    yield process
    process.stop()


@pytest.fixture
def api(daemon: DaemonProcess) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


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
    """A throwaway PostgreSQL database for daemons to share (dropped afterwards), on the
    server at NOVA_TEST_POSTGRES_URL; skips where it is unreachable, fails under CI=true."""
    name = f"nova_e2e_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unreachable(
            f"PostgreSQL at {make_url(postgres_url()).render_as_string()} is unreachable: {exc}"
        )
    yield make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for a test run on each store: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    url: str = request.getfixturevalue("database_url")
    return url
