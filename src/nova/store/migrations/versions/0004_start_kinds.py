"""Invocation logs say how the instance started, and where a cold start's time went.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

``start`` is warm, cold, prewarmed or snapshot (older rows: cold when ``cold_start``, else
warm); the four phase columns are NULL for warm invocations and for older rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

PHASES = ("sandbox_ms", "code_ms", "runtime_ms", "init_ms")


def upgrade() -> None:
    op.add_column(
        "invocation_logs",
        sa.Column("start", sa.String(), nullable=False, server_default=sa.text("'warm'")),
    )
    for name in PHASES:
        op.add_column("invocation_logs", sa.Column(name, sa.Float(), nullable=True))
    op.execute("UPDATE invocation_logs SET start = 'cold' WHERE cold_start")


def downgrade() -> None:
    for name in (*PHASES, "start"):
        op.drop_column("invocation_logs", name)
