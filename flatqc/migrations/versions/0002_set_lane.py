"""sets.lane: the QC queue of a set version (``realtime``, or ``backfill`` for backfill and reprocessing), so that
a job queued again goes back to the queue it belongs to. Sets before it were all real time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.add_column(sa.Column("lane", sa.String(16), nullable=False, server_default="realtime"))


def downgrade() -> None:
    with op.batch_alter_table("sets") as batch:
        batch.drop_column("lane")
