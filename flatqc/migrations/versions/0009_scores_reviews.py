"""Scores and review (contract 9): the QC1 rows gain ``score_<parameter>``, ``score``, ``thresholds_file`` and
``thresholds_sha256``; the ``scores`` table holds what each score was scored against; the ``reviews`` table every
review decision.

Rows written before stay NULL in the new columns (not scored: ``flatqc rescore`` scores them). Frozen column lists,
never taken from :mod:`flatqc.db`.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

QC1_NAMES = ("mean_level", "mean_flux", "rms_master", "badpix", "median_snr", "max_flux", "num_overexp",
             "level_overexp", "bpm_count", "ref_ratio_median", "ref_ratio_std", "bpm_new", "bpm_fixed")
BIT_COLUMNS = ("bpm_dark", "bpm_flat", "bpm_detlin", "bpm_outoforder", "bpm_edge")
TABLES: dict[str, tuple[str, ...]] = {"crires_flat": QC1_NAMES, "criresp_flat": QC1_NAMES + BIT_COLUMNS}
"""The scored parameters of each QC1 table as of this revision."""


def columns(parameters: tuple[str, ...]) -> list[sa.Column[Any]]:
    return [*(sa.Column(f"score_{name}", sa.String(8)) for name in parameters), sa.Column("score", sa.String(8)),
            sa.Column("thresholds_file", sa.Text), sa.Column("thresholds_sha256", sa.String(64))]


def upgrade() -> None:
    for name, parameters in TABLES.items():
        with op.batch_alter_table(name) as batch:
            for column in columns(parameters):
                batch.add_column(column)
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qc1_table", sa.String(32), nullable=False),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("detector", sa.Integer, nullable=False),
        sa.Column("parameter", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("score", sa.String(8)),
        sa.Column("value", sa.Float),
        sa.Column("low", sa.Float),
        sa.Column("high", sa.Float),
        sa.Column("centre", sa.Float),
        sa.Column("spread", sa.Float),
        sa.Column("n_points", sa.Integer),
    )
    op.create_index("ix_scores_set", "scores", ["set_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("night", sa.String(10)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("replaced_by", sa.Integer),
    )
    op.create_index("ix_reviews_set", "reviews", ["set_id", "replaced_by"])
    op.create_index("ix_reviews_night", "reviews", ["night"])


def downgrade() -> None:
    op.drop_table("reviews")
    op.drop_table("scores")
    for name, parameters in TABLES.items():
        with op.batch_alter_table(name) as batch:
            for column in columns(parameters):
                batch.drop_column(column.name)
