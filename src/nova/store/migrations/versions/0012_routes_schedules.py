"""HTTP triggers (custom routes, function URL settings) and schedules.

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)

revision = "0012"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def _function_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["function_id"],
        ["functions.id"],
        name=f"fk_{table}_function_id_functions",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "http_routes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path_prefix", sa.String(), nullable=False),
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("function_name", sa.String(), nullable=False),
        sa.Column("qualifier", sa.String(), nullable=False),
        sa.Column("auth", sa.String(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_http_routes"),
        sa.UniqueConstraint("method", "path_prefix", name="uq_http_routes_method_path_prefix"),
        _function_fk("http_routes"),
    )
    op.create_table(
        "function_urls",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("auth", sa.String(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("function_id", name="pk_function_urls"),
        _function_fk("function_urls"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", KEYSET_TEXT, nullable=False),
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("function_name", sa.String(), nullable=False),
        sa.Column("qualifier", sa.String(), nullable=False),
        sa.Column("expression", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("catch_up", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", TIME, nullable=False),
        sa.Column("last_run_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        _function_fk("schedules"),
    )
    op.create_index("ix_schedules_enabled_next_run_at", "schedules", ["enabled", "next_run_at"])
    op.create_index("ix_schedules_function_name_id", "schedules", ["function_name", "id"])


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("function_urls")
    op.drop_table("http_routes")
