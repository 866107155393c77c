"""The compile state of compiled functions: the last build and the last good one.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "compile_states",
        sa.Column("function_id", sa.String(36), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("build_key", sa.String(), nullable=False),
        sa.Column("good_code_hash", sa.String(64), nullable=True),
        sa.Column("good_build_key", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("function_id"),
    )


def downgrade() -> None:
    op.drop_table("compile_states")
