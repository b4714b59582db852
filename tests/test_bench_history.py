"""The generated history of the benchmarks scores its rows in bulk as the service scores a set (``flatqc rescore``
reads each set's history from the database and must find the same scores)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.history import REJECTED_EVERY, write_history
from flatqc.db import connect, crires_flat, reviews, scores
from flatqc.scoring import rescore_set
from flatqc.settings import Settings
from flatqc.threshold_files import load_thresholds
from qc.profiles import PROFILES

THRESHOLDS = """\
valid_from = 2000-01-01
[[threshold]]
parameter = "mean_flux"
kind = "statistical"
window_days = 20
[[threshold]]
parameter = "badpix"
kind = "statistical"
[[threshold]]
parameter = "median_snr"
kind = "fixed"
low = 360.0
severity = "warn"
"""


def stored(engine: Engine, set_ids: list[str]) -> tuple[list, list]:
    """The score columns of the sets' QC1 rows and their ``scores`` rows, in a fixed order."""
    columns = [c for c in crires_flat.c if c.name.startswith("score") or c.name.startswith("thresholds_")]
    details = [c for c in scores.c if c.name != "id"]
    with engine.connect() as conn:
        rows = conn.execute(select(crires_flat.c.set_id, crires_flat.c.detector, *columns)
                            .where(crires_flat.c.set_id.in_(set_ids))
                            .order_by(crires_flat.c.set_id, crires_flat.c.detector)).all()
        found = conn.execute(select(*details).where(scores.c.set_id.in_(set_ids))
                             .order_by(scores.c.set_id, scores.c.detector, scores.c.parameter, scores.c.kind)).all()
    return rows, found


def test_bulk_scores_are_what_rescoring_finds(tmp_path: Path) -> None:
    folder = tmp_path / "thresholds"
    folder.mkdir()
    (folder / "2000-01-01.toml").write_text(THRESHOLDS, encoding="utf-8")
    settings = Settings()
    thresholds = load_thresholds(folder, {name: settings.qc_config(name) for name in PROFILES})
    engine = connect(f"sqlite:///{tmp_path / 'flatqc.db'}")
    n_sets = REJECTED_EVERY // 2 + 50  # 5 a night: the rejected set is 10 nights before the last
    write_history(engine, n_sets, sets_per_night=5, thresholds=thresholds, reviewed=True)
    with engine.connect() as conn:
        decided = conn.execute(select(reviews.c.set_id, reviews.c.decision)).all()
    rejected = [s for s, d in decided if d == "rejected"]
    assert rejected == [f"h{REJECTED_EVERY // 2:011x}"] and len(decided) == 6  # and the 5 sets of the last night
    sample = [f"h{index:011x}" for index in range(n_sets - 25, n_sets)]  # their 20-day window holds the rejected set
    bulk = stored(engine, sample)
    assert {row.score for row in bulk[0]} >= {"ok", "warn"} and len(bulk[1]) == 25 * 4 * 3
    for set_id in sample:
        rescore_set(engine, thresholds, crires_flat, set_id)
    assert stored(engine, sample) == bulk
    engine.dispose()
