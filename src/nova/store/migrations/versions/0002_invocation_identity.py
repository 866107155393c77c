"""Invocation logs name the function by id, and carry the daemon's total time apart.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

Logs outlive their function; keyed only by name, they attached to a new function created under
the same name. ``function_id`` is filled for existing rows from the function that has their
name today (rows of functions deleted since stay NULL: no function owns them). ``total_ms``
takes the old ``duration_ms`` (which was the daemon's total); ``duration_ms`` now means the
handler's own time, as in the invoke response, and old rows keep the total there too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("invocation_logs", sa.Column("function_id", sa.String(36), nullable=True))
    op.add_column(
        "invocation_logs",
        sa.Column("total_ms", sa.Float(), nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        "UPDATE invocation_logs SET total_ms = duration_ms, function_id = "
        "(SELECT functions.id FROM functions WHERE functions.name = invocation_logs.function_name)"
    )
    op.create_index(
        "ix_invocation_logs_function_id_created_at_id",
        "invocation_logs",
        ["function_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_invocation_logs_function_id_created_at_id", "invocation_logs")
    op.drop_column("invocation_logs", "total_ms")
    op.drop_column("invocation_logs", "function_id")
