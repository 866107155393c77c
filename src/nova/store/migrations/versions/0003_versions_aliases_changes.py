"""Versions, aliases and the change log; a function's config as one JSON document.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

- ``functions``: the thirteen config columns become one ``config`` JSON document (a field added
  to the config later needs no migration; readers fill defaults for fields a document lacks),
  plus ``last_version``, the highest version number ever published (numbers are not reused).
- ``code_files`` replaces ``function_files``: files keyed by (function, code hash, path), so
  $LATEST and every published version with the same code share one copy.
- ``function_versions``, ``function_aliases``, ``alias_history``: immutable versions, weighted
  aliases and every routing change of an alias with its reason.
- ``change_log``: one row per control-plane change, written in the change's transaction, in
  commit order (PostgreSQL writers serialise on an advisory lock; SQLite has one writer).
- ``invocation_logs.qualifier``: what the caller asked for (an alias, a number, or empty).

On SQLite, dropping columns rebuilds ``functions``; foreign keys are enforced and cannot be
switched off inside the migration's transaction, so ``function_files`` (whose rows would cascade
away with the old table) is emptied into ``code_files`` and dropped first, and the tables that
reference ``functions`` are created after the rebuild.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")
# SQLite autoincrements only an INTEGER PRIMARY KEY (an alias of the rowid).
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

CONFIG_COLUMNS = (
    "runtime",
    "handler",
    "memory_mb",
    "timeout_s",
    "env",
    "mode",
    "min_replicas",
    "max_replicas",
    "instance_concurrency",
    "backend",
    "network",
    "description",
)


def upgrade() -> None:
    _move_files_to_code_files()
    _fold_config_into_a_document()
    _create_versions_and_aliases()
    op.create_table(
        "change_log",
        sa.Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("function_name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(), nullable=True),
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])
    op.add_column(
        "invocation_logs",
        sa.Column("qualifier", sa.String(), nullable=False, server_default=sa.text("''")),
    )
    op.create_index(
        "ix_invocation_logs_function_id_version_created_at",
        "invocation_logs",
        ["function_id", "version", "created_at"],
    )


def _move_files_to_code_files() -> None:
    op.create_table(
        "code_files",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("executable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("function_id", "code_hash", "path", name="pk_code_files"),
    )
    op.execute(
        "INSERT INTO code_files (function_id, code_hash, path, content, executable) "
        "SELECT function_files.function_id, functions.code_hash, function_files.path, "
        "function_files.content, function_files.executable "
        "FROM function_files JOIN functions ON functions.id = function_files.function_id"
    )
    op.drop_table("function_files")


def _fold_config_into_a_document() -> None:
    op.add_column("functions", sa.Column("config", sa.JSON(), nullable=True))
    op.add_column(
        "functions",
        sa.Column("last_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    functions = sa.table(
        "functions",
        sa.column("id", sa.String()),
        sa.column("config", sa.JSON()),
        *(sa.column(name, sa.JSON() if name == "env" else None) for name in CONFIG_COLUMNS),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(functions.c.id, *(functions.c[n] for n in CONFIG_COLUMNS)))
    for row in rows.all():
        document = {name: row._mapping[name] for name in CONFIG_COLUMNS}
        document["timeout_s"] = float(document["timeout_s"])
        document["network"] = bool(document["network"])
        bind.execute(functions.update().where(functions.c.id == row.id).values(config=document))
    with op.batch_alter_table("functions") as batch:
        for name in CONFIG_COLUMNS:
            batch.drop_column(name)
        batch.alter_column("config", existing_type=sa.JSON(), nullable=False)
    _code_files_foreign_key()


def _code_files_foreign_key() -> None:
    # Added only now that functions is rebuilt (see the module docstring). SQLite adds a
    # constraint by rebuilding the table; code_files holds only $LATEST's files at this point.
    with op.batch_alter_table("code_files") as batch:
        batch.create_foreign_key(
            "fk_code_files_function_id_functions",
            "functions",
            ["function_id"],
            ["id"],
            ondelete="CASCADE",
        )


def _create_versions_and_aliases() -> None:
    op.create_table(
        "function_versions",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("function_id", "number", name="pk_function_versions"),
        sa.ForeignKeyConstraint(
            ["function_id"],
            ["functions.id"],
            name="fk_function_versions_function_id_functions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "function_aliases",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("name", KEYSET_TEXT, nullable=False),
        sa.Column("routing", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=True),
        sa.Column("analysis", sa.JSON(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("function_id", "name", name="pk_function_aliases"),
        sa.ForeignKeyConstraint(
            ["function_id"],
            ["functions.id"],
            name="fk_function_aliases_function_id_functions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("alias", sa.String(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["function_id"],
            ["functions.id"],
            name="fk_alias_history_function_id_functions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_alias_history_function_id_alias_id", "alias_history", ["function_id", "alias", "id"]
    )


def downgrade() -> None:
    raise NotImplementedError("0003 cannot be undone: restore a backup taken before upgrading")
