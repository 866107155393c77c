"""Tenancy of keys and audit entries: the environment each belongs to.

A key's ``environment`` is ``org/project/env``, or NULL for a key of every environment (the
admin key made on first start). An audit entry's ``environment`` is where the request acted.

Revision ID: 0016
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

DEFAULT = "default/default/default"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("environment", sa.String(), nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(
            sa.Column("environment", sa.String(), nullable=False, server_default=DEFAULT)
        )
        batch.create_index("ix_audit_log_environment_seq", ["environment", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_environment_seq")
        batch.drop_column("environment")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("environment")
