"""Fencing token of a set version: ``sets.token``, the attempt that owns the set (:mod:`flatqc.lifecycle.sets`).

Rows already there start at 0 (no attempt holds them).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.add_column(sa.Column("token", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.drop_column("token")
