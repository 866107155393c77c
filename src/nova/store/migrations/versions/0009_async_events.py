"""The durable queue of asynchronous invocations, with their retries and dead letters.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)

revision = "0009"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "async_events",
        sa.Column("id", KEYSET_TEXT, nullable=False),
        sa.Column("function_name", sa.String(), nullable=False),
        sa.Column("qualifier", sa.String(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("available_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("last_error_type", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_async_events")),
        sa.UniqueConstraint(
            "function_name",
            "idempotency_key",
            name=op.f("uq_async_events_function_name_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_async_events_status_available_at", "async_events", ["status", "available_at"]
    )
    op.create_index(
        "ix_async_events_status_updated_at_id", "async_events", ["status", "updated_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("async_events")
