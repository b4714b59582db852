"""Baseline: the schema of flatqc 0.1.0, the last release that built its tables without migrations.

Frozen DDL, written out here and never taken from :mod:`flatqc.db` (whose ``metadata`` moves on with later
revisions); :func:`tables` also tells :func:`flatqc.migrations.upgrade` what a database made before migrations existed
must hold before it is stamped with this revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

QC1_NAMES = (
    "mean_level", "mean_flux", "rms_master", "badpix", "median_snr", "max_flux", "num_overexp",
    "level_overexp", "bpm_count", "ref_ratio_median", "ref_ratio_std", "bpm_new", "bpm_fixed",
)
"""The QC1 columns of contract section 4, as of this revision."""


def _qc1_table(name: str, setting_columns: list[sa.Column], extra_qc1: tuple[str, ...] = ()) -> list[SchemaItem]:
    int_names = {"badpix", "num_overexp", "bpm_count", "bpm_new", "bpm_fixed", *extra_qc1}
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("night", sa.String(10), nullable=False),
        sa.Column("mjd_obs", sa.Float),
        sa.Column("setting_key", sa.Text, nullable=False),
        *setting_columns,
        sa.Column("dit", sa.Float),
        sa.Column("ndit", sa.Integer),
        sa.Column("n_raw", sa.Integer, nullable=False),
        sa.Column("ny", sa.Integer),
        sa.Column("window_starty", sa.Integer),
        sa.Column("raw_type", sa.String(16), nullable=False),
        sa.Column("detector", sa.Integer, nullable=False),
        *(sa.Column(n, sa.Integer if n in int_names else sa.Float) for n in (*QC1_NAMES, *extra_qc1)),
        sa.Column("vignetted_pixels", sa.Integer),
        sa.Column("certified", sa.Boolean, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reasons", sa.Text),
        sa.Column("master_file", sa.Text, nullable=False),
        sa.Column("master_sha256", sa.String(64)),
        sa.Column("bpm_file", sa.Text),
        sa.Column("bpm_sha256", sa.String(64)),
        sa.Column("raw_files", sa.JSON),
        sa.Column("raw_sha256", sa.JSON),
        sa.Column("reference", sa.Text),
        sa.Column("thresholds_version", sa.String(64)),
        sa.Column("software_version", sa.String(32)),
        sa.Column("processed_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("set_id", "detector", name=f"uq_{name}_set_det"),
        sa.Index(f"ix_{name}_night", "night"),
        sa.Index(f"ix_{name}_key_mjd", "setting_key", "mjd_obs"),
    ]


def tables() -> dict[str, list[SchemaItem]]:
    """Each table of the baseline: its columns, constraints and indexes (new objects at every call)."""
    return {
        "files": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("path", sa.Text, nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("mtime", sa.Float, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(16)),
            sa.Column("profile", sa.String(16)),
            sa.Column("arcfile", sa.Text),
            sa.Column("set_id", sa.String(32)),
            sa.Column("night", sa.String(10)),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("reason", sa.Text),
            sa.Column("first_seen", sa.DateTime, nullable=False),
            sa.Column("last_seen", sa.DateTime, nullable=False),
            sa.Column("current_since", sa.DateTime),
            sa.UniqueConstraint("path", "sha256", name="uq_files_path_sha"),
            sa.Index("ix_files_night", "night"),
            sa.Index("ix_files_set", "set_id"),
            sa.Index("ix_files_arcfile", "arcfile"),
        ],
        "sets": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("set_id", sa.String(32), nullable=False),
            sa.Column("version", sa.String(64), nullable=False, unique=True),
            sa.Column("night", sa.String(10)),
            sa.Column("profile", sa.String(16)),
            sa.Column("setting_key", sa.Text),
            sa.Column("raw_type", sa.String(16)),
            sa.Column("n_raw", sa.Integer),
            sa.Column("members", sa.JSON),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("reason", sa.Text),
            sa.Column("verdict", sa.String(16)),
            sa.Column("job_id", sa.String(128)),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("transient", sa.Boolean),
            sa.Column("pictures", sa.String(16)),
            sa.Column("pictures_error", sa.Text),
            sa.Column("first_arrival", sa.DateTime),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("queued_at", sa.DateTime),
            sa.Column("started_at", sa.DateTime),
            sa.Column("finished_at", sa.DateTime),
            sa.Index("ix_sets_night", "night"),
            sa.Index("ix_sets_set_id", "set_id"),
        ],
        "job_events": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("job_id", sa.String(128)),
            sa.Column("event", sa.String(16), nullable=False),
            sa.Column("detail", sa.Text),
            sa.Column("at", sa.DateTime, nullable=False),
            sa.Index("ix_job_events_version", "version"),
        ],
        "alerts": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("set_id", sa.String(32), nullable=False),
            sa.Column("version", sa.String(64)),
            sa.Column("night", sa.String(10)),
            sa.Column("profile", sa.String(16)),
            sa.Column("setting_key", sa.Text),
            sa.Column("reasons", sa.Text, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
            sa.Column("acknowledged_by", sa.Text),
            sa.Column("acknowledged_at", sa.DateTime),
            sa.Column("comment", sa.Text),
            sa.Column("resolved_at", sa.DateTime),
            sa.Column("notify_attempts", sa.Integer, nullable=False),
            sa.Column("notified_at", sa.DateTime),
            sa.Column("notify_error", sa.Text),
            sa.Column("severity", sa.String(16)),
            sa.Column("cover_sent_at", sa.DateTime),
            sa.Index("ix_alerts_set", "set_id"),
            sa.Index("ix_alerts_state", "state"),
        ],
        "crires_flat": _qc1_table(
            "crires_flat",
            [sa.Column("cwlen", sa.Float), sa.Column("baffle_pos", sa.Float), sa.Column("lamp", sa.String(32))],
        ),
        "criresp_flat": _qc1_table(
            "criresp_flat",
            [sa.Column("wlen_id", sa.String(32)), sa.Column("decker", sa.String(32))],
            extra_qc1=("bpm_dark", "bpm_flat", "bpm_detlin", "bpm_outoforder", "bpm_edge"),
        ),
    }


def upgrade() -> None:
    for name, items in tables().items():
        op.create_table(name, *items)


def downgrade() -> None:
    for name in reversed(tables()):
        op.drop_table(name)
