"""Alembic environment: runs on the connection that :func:`nova.store.open_store` hands in.

There is no alembic.ini and no URL here on purpose: the store opens the (async) engine, takes the
migration lock and runs ``upgrade head`` inside its own transaction via ``run_sync``, so the whole
upgrade commits or rolls back as one on both backends. ``fileConfig`` is not called: logging is
configured only by Nova's entry points.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from nova.store.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Nova's migrations run through nova.store.open_store(database_url), "
        "not the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode recreates the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
