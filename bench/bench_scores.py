"""Scores over a long history (contract 9): what scoring adds to a CRIRES set's QC path, and how the board, a night
page and a trend page scale from one month of history to ten years, on SQLite and PostgreSQL in one run.

    python -m bench.bench_scores [--repeat 9] [--sets-per-night 10] [--pg URL | --no-pg]

Two histories (``bench/history.py``), 30 nights and 3,650 nights (~10 years: 10 sets a night, 4 detectors, ~146k
QC1 rows), each ending the night before the passing CRIRES set of a synthetic night (``snr_pass``, 2010-05-12). Every
row is scored as the QC job scores it, against :data:`THRESHOLDS` (fixed and statistical thresholds) and the earlier
good rows, with its ``scores`` rows; one set in 500 is rejected in review, the sets of the last night accepted. The
set's setting is one of the history's five, two sets a night, so its statistical history holds ~90 days of rows.

For each database (a SQLite file; a fresh schema of the PostgreSQL database, ``VACUUM ANALYZE``d after the bulk insert
as autovacuum would, dropped at the end) and each history, the median of ``--repeat`` after one warm-up of:

- QC path (``bench/bench_set.py``: ``compute_qc``, then QC1 rows + set state + alert in one transaction) with
  scoring, and without: ``flatqc.set_qc.scored_rows`` replaced by the identity (run in pairs, back to back, so load
  on the shared machine hits both alike; the ratio is the median within pairs); and ``scored_rows`` alone over the
  set's stored rows (threshold file in force, history query, scores, its ``scores`` rows replaced, committed);
- :data:`PAGES` through the Flask test client (``create_app(settings, engine, None)``).

Prints the table, the ratios 10 years / 1 month, and what scoring adds at 10 years. Targets (issue 22): scoring
adds <= 25 % to the QC path at 10 years; every page at 10 years <= 2x its one-month time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from unittest.mock import patch

from flask.testing import FlaskClient
from sqlalchemy import select, text

from bench.bench_set import Bench, claim
from bench.common import pg_schema, snr_pass_set
from bench.history import GeneratedHistory, generate_history, insert_history
from flatqc.db import crires_flat, reviews, scores, sets
from flatqc.scoring import scored_rows
from flatqc.threshold_files import thresholds_of
from flatqc.web import create_app
from qc.profiles import CRIRES

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HISTORIES = {"1 month": 30, "10 years": 3650}
"""History name -> nights."""
THRESHOLDS = """\
valid_from = 2000-01-01
[[threshold]]
parameter = "median_snr"
kind = "fixed"
low = 250.0
[[threshold]]
parameter = "max_flux"
kind = "fixed"
high = 10000.0
[[threshold]]
parameter = "mean_flux"
kind = "statistical"
[[threshold]]
parameter = "rms_master"
kind = "statistical"
[[threshold]]
parameter = "median_snr"
kind = "statistical"
[[threshold]]
parameter = "badpix"
kind = "statistical"
"""
"""The threshold file in force for the whole history and the set: contract 5's limits as fixed thresholds, and
statistical ones (90 days, >= 5 points, 3 / 5 spreads) on four parameters."""
PAGES = {
    "front page / (board, nights)": "/",
    "board /api/board": "/api/board",
    "night /nights/<last night>": "/nights/{night}",
    "trends, one setting, 30 d": "/trends?key={key}&days=30",
    "trends, one setting, 90 d": "/trends?key={key}",
}
"""Page name -> path (``{night}``: the history's last night, ``{key}``: the set's setting)."""
HISTORY_TABLES = (sets, crires_flat, scores, reviews)
"""The tables a generated history fills."""
SCORING, NO_SCORING, SCORING_ALONE = "QC path, scoring", "QC path, no scoring", "scored_rows alone"
PAIRED = "QC path scoring / no scoring, paired"
"""Not a time: the median ratio of the two QC paths run back to back."""


def in_turn(calls: Sequence[Callable[[], object]], repeat: int,
            setup: Callable[[], object] | None = None) -> list[list[float]]:
    """Wall times [s] of each of ``calls``, run one after the other in ``repeat`` rounds after one warm-up round, each
    call first in turn (``setup`` untimed before each call), so that load on the shared machine hits them alike."""
    times: list[list[float]] = [[] for _ in calls]
    for round_number in range(repeat + 1):
        for index in (*range(round_number % len(calls), len(calls)), *range(round_number % len(calls))):
            if setup is not None:
                setup()
            start = time.perf_counter()
            calls[index]()
            if round_number:
                times[index].append(time.perf_counter() - start)
    return times


def paired_ratio(first: list[float], second: list[float]) -> float:
    """The median within a round of the first call's time over the second's."""
    return statistics.median(a / b for a, b in zip(first, second, strict=True))


def fill(bench: Bench, history: GeneratedHistory) -> None:
    """Write ``history`` into the set's database (PostgreSQL: then ``VACUUM ANALYZE`` its tables)."""
    engine = bench.engine
    start = time.perf_counter()
    written = insert_history(engine, history)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"VACUUM ANALYZE {', '.join(t.name for t in HISTORY_TABLES)}"))
    print(f"    {written} QC1 rows, {len(history.score_rows)} scores rows written in "
          f"{time.perf_counter() - start:.1f} s")


def scoring_figures(bench: Bench, repeat: int) -> dict[str, float]:
    """The QC path [s] with scoring and with ``scored_rows`` replaced by the identity, their ratio (:data:`PAIRED`),
    and ``scored_rows`` alone over the set's stored rows (committed)."""
    def qc_path(scoring: bool) -> Callable[[], None]:
        def run() -> None:
            with patch("flatqc.set_qc.scored_rows", scored_rows if scoring else lambda _c, _p, rows, _t: rows):
                bench.qc_path()
        return run

    with_scores, without = in_turn([qc_path(True), qc_path(False)], repeat, setup=bench.take)
    figures = {SCORING: statistics.median(with_scores), NO_SCORING: statistics.median(without),
               PAIRED: paired_ratio(with_scores, without)}
    flatset, engine = bench.flatset, bench.engine
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(crires_flat).where(crires_flat.c.set_id == flatset.set_id)
                                              .order_by(crires_flat.c.detector)).mappings()]

    def score() -> None:
        with engine.begin() as conn:
            scored_rows(conn, CRIRES, rows, thresholds_of(bench.settings).for_night(flatset.night))

    figures[SCORING_ALONE] = statistics.median(in_turn([score], repeat)[0])
    with engine.connect() as conn:
        points = list(conn.execute(select(scores.c.n_points).where(
            scores.c.set_id == flatset.set_id, scores.c.parameter == "mean_flux", scores.c.kind == "statistical")
            .order_by(scores.c.detector)).scalars())
    print(f"    the set's mean_flux scored against {points} earlier rows (detectors 1-4)")
    return figures


def fetch(client: FlaskClient, path: str) -> None:
    """One answer of the dashboard to a GET of ``path``."""
    client.get(path).close()


def page_figures(short: Bench, long: Bench, night: str, repeat: int) -> dict[str, tuple[float, float, float]]:
    """Per page of :data:`PAGES`: its time [s] over the ``short`` and the ``long`` history, fetched in turn, and the
    median ratio long / short."""
    figures = {}
    for name, page in PAGES.items():
        path = page.format(night=night, key=short.flatset.setting_key)
        fetches = []
        for bench in (long, short):
            client = create_app(bench.settings, bench.engine, None).test_client()
            answer = client.get(path)
            if answer.status_code != 200:
                raise SystemExit(f"{path} answered {answer.status_code}")
            fetches.append(partial(fetch, client, path))
        t_long, t_short = in_turn(fetches, repeat)
        figures[name] = (statistics.median(t_short), statistics.median(t_long), paired_ratio(t_long, t_short))
    return figures


def print_table(results: dict[str, dict[str, tuple[float, float, float]]],
                at_long: dict[str, dict[str, float]]) -> None:
    """``results``: per database, each figure's time [s] over one month and ten years and their ratio; ``at_long``:
    per database, the scoring figures at ten years."""
    short, long = HISTORIES
    header = "".join(f" | {db + ' ' + short:>18s} {long:>9s} {'ratio':>6s}" for db in results)
    print(f"\n{'[ms], median':32s}{header}")
    for figure in (SCORING, NO_SCORING, SCORING_ALONE, *PAGES):
        cells = [f" | {a * 1000:18.1f} {b * 1000:9.1f} {ratio:5.2f}x"
                 for a, b, ratio in (figures[figure] for figures in results.values())]
        print(f"{figure:32s}{''.join(cells)}")
    print()
    for db, figures in results.items():
        at = at_long[db]
        print(f"{db}, 10 years: scoring adds {(at[PAIRED] - 1) * 100:+.1f} % to the QC path (median within pairs of "
              f"runs; medians {at[NO_SCORING] * 1000:.0f} -> {at[SCORING] * 1000:.0f} ms); scored_rows alone "
              f"{at[SCORING_ALONE] * 1000:.1f} ms = {at[SCORING_ALONE] / at[NO_SCORING] * 100:.1f} % of the path "
              "without scoring (target <= 25 %)")
        ratios = ", ".join(f"{name} {figures[name][2]:.2f}x" for name in PAGES)
        print(f"{db}, pages 10 years / 1 month (median within pairs): {ratios} (target <= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--sets-per-night", type=int, default=10)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL database (a schema is made and dropped)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    databases = ["SQLite"] if args.no_pg else ["SQLite", "PostgreSQL"]
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-scores-") as tmp:
        work = Path(tmp)
        flatset, settings = snr_pass_set(CRIRES.name, work)
        folder = work / "thresholds"
        folder.mkdir()
        (folder / "2000-01-01.toml").write_text(THRESHOLDS, encoding="utf-8")
        settings = settings.model_copy(update={"thresholds_dir": folder})
        histories: dict[str, GeneratedHistory] = {}
        for name, nights in HISTORIES.items():
            start = time.perf_counter()
            first = date.fromisoformat(flatset.night) - timedelta(days=nights)
            histories[name] = generate_history(nights * args.sets_per_night, first.isoformat(), sets_per_night=
                                               args.sets_per_night, thresholds=thresholds_of(settings),
                                               reviewed=True)
            print(f"history {name}: {nights} nights from {first}, {len(histories[name].qc1_rows)} QC1 rows "
                  f"generated and scored in {time.perf_counter() - start:.1f} s")
        gc.freeze()  # the millions of generated rows kept for the next database: no collection walks them again
        results: dict[str, dict[str, tuple[float, float, float]]] = {}
        at_long: dict[str, dict[str, float]] = {}
        for db in databases:
            with ExitStack() as stack:
                benches, scoring = [], []
                for name, history in histories.items():
                    print(f"{db}, {name}:")
                    url = stack.enter_context(pg_schema(args.pg) if db == "PostgreSQL" else
                                              nullcontext(f"sqlite:///{work / name.replace(' ', '-')}.db"))
                    bench = claim(flatset, settings.model_copy(update={"db_url": url}), work)
                    stack.callback(bench.engine.dispose)  # before its schema is dropped
                    fill(bench, history)
                    benches.append(bench)
                    scoring.append(scoring_figures(bench, args.repeat))
                short, long = scoring
                results[db] = {figure: (short[figure], long[figure], long[figure] / short[figure])
                               for figure in (SCORING, NO_SCORING, SCORING_ALONE)}
                night = history.set_rows[-1]["night"]  # the last night of both
                results[db] |= page_figures(benches[0], benches[1], night, args.repeat)
                at_long[db] = long
        print_table(results, at_long)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
