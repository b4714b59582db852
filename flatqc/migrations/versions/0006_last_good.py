"""Last good set (contract 9): the QC1 rows gain the set they were compared with, a note, the ratio statistics of
``M / M_prev`` and the change of every QC1 parameter since that set.

Rows written before stay NULL in the new columns (never compared; reprocessing compares them). Frozen column lists,
never taken from :mod:`flatqc.db`.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

QC1_COLUMNS: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "mean_level": sa.Float, "mean_flux": sa.Float, "rms_master": sa.Float, "badpix": sa.Integer,
    "median_snr": sa.Float, "max_flux": sa.Float, "num_overexp": sa.Integer, "level_overexp": sa.Float,
    "bpm_count": sa.Integer, "ref_ratio_median": sa.Float, "ref_ratio_std": sa.Float, "bpm_new": sa.Integer,
    "bpm_fixed": sa.Integer,
}
"""The QC1 columns of both tables as of this revision, with their types (each gets a ``delta_`` column)."""
BIT_COLUMNS = ("bpm_dark", "bpm_flat", "bpm_detlin", "bpm_outoforder", "bpm_edge")
"""The per-bit BPM counts (integers) of ``criresp_flat``."""
TABLES: dict[str, dict[str, type[sa.types.TypeEngine[Any]]]] = {
    "crires_flat": QC1_COLUMNS, "criresp_flat": QC1_COLUMNS | dict.fromkeys(BIT_COLUMNS, sa.Integer),
}


def columns(qc1: dict[str, type[sa.types.TypeEngine[Any]]]) -> list[sa.Column[Any]]:
    """The new columns of a QC1 table with those QC1 columns."""
    return [
        sa.Column("prev_set_id", sa.String(32)), sa.Column("prev_note", sa.Text),
        sa.Column("prev_ratio_median", sa.Float), sa.Column("prev_ratio_std", sa.Float),
        *(sa.Column(f"delta_{name}", kind) for name, kind in qc1.items()),
    ]


def upgrade() -> None:
    for name, qc1 in TABLES.items():
        with op.batch_alter_table(name) as batch:
            for column in columns(qc1):
                batch.add_column(column)


def downgrade() -> None:
    for name, qc1 in TABLES.items():
        with op.batch_alter_table(name) as batch:
            for column in columns(qc1):
                batch.drop_column(column.name)
