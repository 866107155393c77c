"""The backends every store test runs against: SQLite, PostgreSQL and the in-memory fake.

PostgreSQL comes from ``NOVA_TEST_POSTGRES_URL`` (default: the local trust-auth server). Each test
gets a fresh schema, dropped afterwards, so parallel runs never see each other's rows. When the
server cannot be reached the PostgreSQL cases skip, saying why - except under ``CI=true``, where
a missing database must not turn into a green run, so they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from nova.store import Store
from nova.store.database import parse_url, redact
from nova.store.memory import MemoryStore
from nova.store.sql_store import open_store

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("NOVA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _unreachable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true: PostgreSQL is required here)", pytrace=False)
    pytest.skip(reason)


@asynccontextmanager
async def postgres_schema(*, create: bool = True) -> AsyncIterator[str]:
    """A fresh schema name (created unless ``create=False``), dropped with its tables after."""
    url = parse_url(postgres_url())
    schema = f"nova_t_{secrets.token_hex(6)}"
    admin = create_async_engine(
        url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        try:
            async with admin.connect() as connection:
                if create:
                    await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            reason = getattr(exc, "orig", None) or exc
            _unreachable(
                f"PostgreSQL at {redact(url)} is unreachable ({reason}); start it or point "
                "NOVA_TEST_POSTGRES_URL at one"
            )
        try:
            yield schema
        finally:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.dispose()


@dataclass(frozen=True)
class Target:
    """Where a store lives: ``url`` is None for the in-memory fake."""

    backend: str
    url: str | None
    schema: str | None = None

    async def open(self) -> Store:
        if self.url is None:
            return MemoryStore()
        return await open_store(self.url, schema=self.schema)


SQLITE = pytest.param("sqlite", id="sqlite")
POSTGRES = pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)
MEMORY = pytest.param("memory", id="memory")


@asynccontextmanager
async def open_target(backend: str, tmp_path: Path) -> AsyncIterator[Target]:
    if backend == "sqlite":
        # A directory that does not exist yet: open_store must create it.
        yield Target("sqlite", f"sqlite:///{tmp_path}/data/nova.db")
    elif backend == "postgres":
        async with postgres_schema() as schema:
            yield Target("postgres", postgres_url(), schema)
    else:
        yield Target("memory", None)
