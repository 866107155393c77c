"""Bring the database schema to the newest revision, programmatically, at every start.

No alembic.ini exists at runtime: the Alembic config is built here and the migrations directory
ships inside the package. The upgrade runs in one transaction on the store's own engine (through
``run_sync``, as Alembic itself is synchronous), so a failed migration leaves nothing half done.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

from nova.core.errors import StoreUnavailable
from nova.store.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Nodes sharing one PostgreSQL database (F29) may start together; a transaction-scoped advisory
# lock makes the second wait for the first upgrade and then find nothing left to do. The key is
# an arbitrary constant of this application.
_MIGRATION_LOCK_KEY = 0x4E6F76614D696772  # "NovaMigr"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection  # read by migrations/env.py
    return config


async def upgrade_to_head(database: Database, schema: str | None) -> None:
    try:
        async with database.transaction(write_lock=True) as connection:
            await connection.run_sync(_upgrade, schema)
    except DBAPIError as exc:
        # At startup every database error (a missing privilege, say) means the same thing to
        # the operator: Nova cannot use this database yet.
        raise database.unavailable(exc) from exc
    except CommandError as exc:
        raise StoreUnavailable(
            f"cannot migrate the database {database.display_url!r}: {exc}; if another Nova "
            "version created it, run that version or a newer one"
        ) from exc


def _upgrade(connection: sa.Connection, schema: str | None) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
        )
        if schema is not None:
            # The name was validated against a strict pattern by the engine factory.
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    command.upgrade(alembic_config(connection), "head")
