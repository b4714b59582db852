"""File versions that vanished and that cannot be read: ``files.gone_at`` (state ``vanished``) and
``files.unreadable_since`` (:mod:`flatqc.lifecycle.files`).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("gone_at", sa.DateTime))
        batch.add_column(sa.Column("unreadable_since", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("unreadable_since")
        batch.drop_column("gone_at")
