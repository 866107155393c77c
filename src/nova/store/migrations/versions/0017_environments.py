"""Environments and their quotas, with the default environment every store starts with.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None

KEYSET_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    table = op.create_table(
        "environments",
        sa.Column("path", KEYSET_TEXT, primary_key=True),
        sa.Column("quotas", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":  # naive UTC, as the store keeps times there
        now = now.replace(tzinfo=None)
    op.bulk_insert(table, [{"path": "default/default/default", "quotas": {}, "created_at": now}])


def downgrade() -> None:
    op.drop_table("environments")
