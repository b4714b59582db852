"""Automatic re-queues of a set version: ``sets.auto_requeues``, counted by the repair pass and capped by
``FLATQC_MAX_AUTO_REQUEUES`` (:func:`flatqc.lifecycle.sets.requeue_automatically`); a person's requeue resets it.

Rows already there start at 0.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.add_column(sa.Column("auto_requeues", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.drop_column("auto_requeues")
