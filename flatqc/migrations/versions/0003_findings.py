"""Findings as data: the reasons, notes and trend-limit warnings of a verdict in a table of their own (``findings``),
and the reasons of an alert as a JSON list of findings; the QC1 tables lose their text ``reasons`` column.

Rows written before are converted here, once: the sentences flatqc 0.1.0 wrote (its wording, frozen below) are
parsed, and the trend-limit warnings the dashboard used to compute on every page view are computed from the stored
QC1 values with the limits of that release (contract section 7; they were not settings). A sentence in no wording
flatqc wrote stops the upgrade (its transaction rolls back) rather than be lost. The downgrade writes the sentences
back.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

QC1_TABLES = ("crires_flat", "criresp_flat")
FIELDS = ("kind", "parameter", "detector", "value", "relation", "limit", "low", "high")
"""A finding's fields, in the order of its JSON object (``dataclasses.asdict`` of ``qc.records.Finding``)."""
TREND_LIMITS = {
    "1090.400_25.000_Halogen": {"mean_flux": (200.0, 950.0), "rms_master": (0.08, 0.13)},
    "3218.600_25.000_Halogen": {"mean_flux": (75.0, 500.0), "rms_master": (0.08, 0.145)},
    "4092.900_25.000_Halogen": {"mean_flux": (100.0, 800.0), "rms_master": (0.05, 0.10)},
}
"""The HealthCheck limits of CRIRES before this revision (contract 7); CRIRES+ had none."""
UNITS = {"max_flux": " ADU", "mean_flux": " ADU/s"}

NUMBER = r"(-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|inf|nan))"
UNIT = r"(?: ADU/s| ADU)?"
WORDINGS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], dict[str, Any]]]] = [
    (re.compile(rf"detector (\d+): (\w+) = {NUMBER}{UNIT} ([<>]) {NUMBER}{UNIT} "
                rf"\(trend limits {NUMBER} \.\. {NUMBER}\)"),
     lambda m: {"kind": "trend_limit", "parameter": m[2], "detector": int(m[1]), "value": float(m[3]),
                "relation": m[4], "limit": float(m[5]), "low": float(m[6]), "high": float(m[7])}),
    (re.compile(rf"detector (\d+): (\w+) = {NUMBER}{UNIT} (<=|>=|<|>) {NUMBER}{UNIT}"),
     lambda m: {"kind": "certification", "parameter": m[2], "detector": int(m[1]), "value": float(m[3]),
                "relation": m[4], "limit": float(m[5])}),
    (re.compile(r"S/N not assessable \(N = (\d+) < (\d+)\)"),
     lambda m: {"kind": "not_assessable", "parameter": "n_raw", "value": float(m[1]), "relation": "<",
                "limit": float(m[2])}),
    (re.compile(r"S/N not certified: .* is HealthCheck-only"),
     lambda m: {"kind": "not_certified", "parameter": "median_snr"}),
]
"""The sentences of flatqc 0.1.0 (``qc/certify.py`` of that release) and the finding each one says."""


def findings_table() -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parameter", sa.String(32), nullable=False),
        sa.Column("detector", sa.Integer),
        sa.Column("value", sa.Float),
        sa.Column("relation", sa.String(2)),
        sa.Column("limit", sa.Float),
        sa.Column("low", sa.Float),
        sa.Column("high", sa.Float),
        sa.Index("ix_findings_set_version", "set_id", "version"),
    ]


def parse(text: str, where: str) -> dict[str, Any]:
    """The finding an old sentence says (every field present, in FIELDS order)."""
    for pattern, finding in WORDINGS:
        match = pattern.fullmatch(text)
        if match:
            return dict.fromkeys(FIELDS) | finding(match)
    raise RuntimeError(f"{where}: {text!r} is in no wording flatqc wrote; correct or remove it, then upgrade again")


def trend_findings(row: Any) -> list[dict[str, Any]]:
    """The trend-limit warnings of one QC1 row, as the dashboard computed them before this revision."""
    found = []
    for name, (low, high) in TREND_LIMITS.get(row.setting_key, {}).items():
        value = getattr(row, name)
        if value is None or low <= value <= high:
            continue
        relation, limit = ("<", low) if value < low else (">", high)
        found.append({"kind": "trend_limit", "parameter": name, "detector": row.detector, "value": value,
                      "relation": relation, "limit": limit, "low": low, "high": high})
    return found


def sentence(finding: dict[str, Any], setting_key: str | None) -> str:
    """An old sentence back from its finding (the downgrade)."""
    kind, value, limit = finding["kind"], finding["value"], finding["limit"]
    if kind == "not_certified":
        return f"S/N not certified: {setting_key} is HealthCheck-only"
    if kind == "not_assessable":
        return f"S/N not assessable (N = {value:g} < {limit:g})"
    unit, digits = UNITS.get(finding["parameter"], ""), ".4g" if kind == "trend_limit" else ".1f"
    text = (f"detector {finding['detector']}: {finding['parameter']} = {value:{digits}}{unit} {finding['relation']} "
            f"{limit:g}{unit}")
    return text + (f" (trend limits {finding['low']:g} .. {finding['high']:g})" if kind == "trend_limit" else "")


def qc1_table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in ("set_id", "version", "detector", "setting_key", *columns)))


findings = sa.table("findings", sa.column("id"), sa.column("set_id"), sa.column("version"),
                    *(sa.column(c) for c in FIELDS))
alerts = sa.table("alerts", sa.column("id"), sa.column("reasons"))


def upgrade() -> None:
    op.create_table("findings", *findings_table())
    conn = op.get_bind()
    for name in QC1_TABLES:
        table = qc1_table(name, "reasons", "mean_flux", "rms_master")
        rows = conn.execute(sa.select(table).order_by(table.c.set_id, table.c.detector)).all()
        by_set: dict[tuple[str, str | None], list[Any]] = {}
        for row in rows:
            by_set.setdefault((row.set_id, row.version), []).append(row)
        for (set_id, version), set_rows in by_set.items():
            texts = json.loads(set_rows[0].reasons or "[]")
            found = [parse(t, f"{name} set {set_id}") for t in texts]
            if name == "crires_flat":
                found += [f for row in set_rows for f in trend_findings(row)]
            if found:
                conn.execute(sa.insert(findings), [f | {"set_id": set_id, "version": version} for f in found])
        with op.batch_alter_table(name) as batch:
            batch.drop_column("reasons")
    for alert in conn.execute(sa.select(alerts)).all():
        found = [parse(t, f"alert #{alert.id}") for t in json.loads(alert.reasons)]
        conn.execute(sa.update(alerts).where(alerts.c.id == alert.id).values(reasons=json.dumps(found)))


def downgrade() -> None:
    conn = op.get_bind()
    stored: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for row in conn.execute(sa.select(findings).where(findings.c.kind != "trend_limit").order_by(findings.c.id)):
        stored.setdefault((row.set_id, row.version), []).append(dict(row._mapping))
    for name in QC1_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("reasons", sa.Text))
        table = qc1_table(name, "reasons")
        for row in conn.execute(sa.select(table.c.set_id, table.c.version, table.c.setting_key).distinct()).all():
            texts = [sentence(f, row.setting_key) for f in stored.get((row.set_id, row.version), [])]
            conn.execute(sa.update(table).where(table.c.set_id == row.set_id, table.c.version == row.version)
                         .values(reasons=json.dumps(texts)))
    for alert in conn.execute(sa.select(alerts)).all():
        texts = [sentence(f, None) for f in json.loads(alert.reasons)]
        conn.execute(sa.update(alerts).where(alerts.c.id == alert.id).values(reasons=json.dumps(texts)))
    op.drop_table("findings")
