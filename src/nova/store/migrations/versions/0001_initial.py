"""Functions, their files and invocation logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Hand-written and frozen: it spells out every type and constraint name instead of importing
``nova.store.schema``, so later edits to the metadata cannot change what this revision did.
Only types that mean the same on SQLite and PostgreSQL are used (see ``nova.store.schema``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Ordered/paginated text compares bytes on PostgreSQL too, as it does on SQLite.
KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", KEYSET_TEXT, nullable=False),
        sa.Column("runtime", sa.String(), nullable=False),
        sa.Column("handler", sa.String(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("instance_concurrency", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(), nullable=True),
        sa.Column("network", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_functions"),
        sa.UniqueConstraint("name", name="uq_functions_name"),
    )
    op.create_table(
        "function_files",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("executable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("function_id", "path", name="pk_function_files"),
        sa.ForeignKeyConstraint(
            ["function_id"],
            ["functions.id"],
            name="fk_function_files_function_id_functions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "invocation_logs",
        sa.Column("id", KEYSET_TEXT, nullable=False),
        sa.Column("function_name", KEYSET_TEXT, nullable=False),
        sa.Column("runtime", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("cold_start", sa.Boolean(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_type", sa.String(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("input_size", sa.BigInteger(), nullable=False),
        sa.Column("output_size", sa.BigInteger(), nullable=False),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invocation_logs"),
    )
    op.create_index(
        "ix_invocation_logs_function_name_created_at_id",
        "invocation_logs",
        ["function_name", "created_at", "id"],
    )
    op.create_index("ix_invocation_logs_created_at_id", "invocation_logs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("invocation_logs")
    op.drop_table("function_files")
    op.drop_table("functions")
