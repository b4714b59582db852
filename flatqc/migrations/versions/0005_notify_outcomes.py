"""Per-channel outcomes of notifications: ``deliveries``, one row per alert (or cover sheet) and apprise URL
(:mod:`flatqc.notify`). Alerts already there keep their summary columns (``notify_attempts``, ``notify_error``,
``notified_at``) and get no rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("attachment", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("due_at", sa.DateTime),
    )
    op.create_index("ix_deliveries_alert", "deliveries", ["alert_id"])
    op.create_index("ix_deliveries_due", "deliveries", ["due_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
