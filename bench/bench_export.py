"""``flatqc export`` over ten years of QC1 rows: peak memory stays flat however many rows are written.

    python -m bench.bench_export [--rows 150000] [--format csv] [--pg URL]

Fills a SQLite file (and, with ``--pg``, a fresh schema of that PostgreSQL database) with a generated history
(``bench/history.py``: 10 sets a night, 4 detectors: 150k rows are ~10 years), then runs ``flatqc export`` as a
subprocess over every night and over the first nights holding ~1% of the rows, and prints each run's peak RSS, time
and rows/s, and the ratio of the two peaks. For scale, the same rows read with ``fetchall`` and written at once in a
child (what the export must not do) and its peak.

The peak is the child's own ``VmHWM`` (``/proc/self/status``), written at its exit: ``getrusage``'s ``ru_maxrss`` of a
child counts the RSS of this process at the fork (Linux carries it across ``exec``), which would hide the child's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from bench.common import pg_schema
from bench.history import write_history
from flatqc.db import connect, crires_flat

PEAK = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write(f"PEAK_KB {line.split()[1]}\\n")
atexit.register(peak)
"""
"""Prefix of a child's code: at exit, write its peak resident set to stderr."""
EXPORT = 'from flatqc.cli import main\nmain(sys.argv[1:], prog_name="flatqc")\n'
NAIVE = """
import csv
from sqlalchemy import create_engine, text
with create_engine(sys.argv[1]).connect() as conn:
    result = conn.execute(text("SELECT * FROM crires_flat ORDER BY night, set_id, detector"))
    names, rows = list(result.keys()), result.fetchall()
with open(sys.argv[2], "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows(rows)
"""
"""Every row in memory, then written: the baseline a streamed export is measured against."""


def run_child(code: str, *args: str) -> tuple[float, float]:
    """Wall time [s] and peak RSS [MB] of a Python child running ``code`` with ``args``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK + code, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{args} failed with {done.returncode}: {done.stderr}")
    peak_kb = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB "))
    return seconds, peak_kb / 1024


def small_range(url: str, share: int) -> tuple[str, str, int]:
    """First and last night of the first nights holding about 1/``share`` of the rows, and their row count."""
    engine = connect(url)
    with engine.connect() as conn:
        per_night = conn.execute(select(crires_flat.c.night, func.count()).group_by(crires_flat.c.night)
                                 .order_by(crires_flat.c.night)).all()
    engine.dispose()
    total, rows = sum(n for _, n in per_night), 0
    for night, count in per_night:
        rows += count
        if rows * share >= total:
            return per_night[0][0], night, rows
    raise SystemExit("no QC1 rows")


def bench_database(label: str, url: str, n_rows: int, kind: str, work: Path) -> None:
    engine = connect(url)
    start = time.perf_counter()
    written = write_history(engine, n_rows // 4, sets_per_night=10)
    engine.dispose()
    print(f"{label}: {written} QC1 rows written in {time.perf_counter() - start:.1f} s")
    first, last_small, small_rows = small_range(url, 100)
    with create_engine(url).connect() as conn:
        last = conn.execute(text("SELECT max(night) FROM crires_flat")).scalar()
    results = []
    for nights, rows in (((first, last_small), small_rows), ((first, last), written)):
        out = work / f"export-{label}-{rows}.{kind}"
        seconds, peak = run_child(EXPORT, "export", "--db", url, "--from", nights[0], "--to", nights[1],
                                  "--format", kind, "--out", str(out))
        results.append(peak)
        print(f"  flatqc export {nights[0]}..{nights[1]}: {rows:7d} rows, {out.stat().st_size / 1e6:6.1f} MB in "
              f"{seconds:5.1f} s ({rows / seconds:8.0f} rows/s), peak RSS {peak:6.1f} MB")
    print(f"  peak RSS {written} rows / {small_rows} rows: {results[1] / results[0]:.2f}")
    seconds, peak = run_child(NAIVE, url, str(work / "naive.csv"))
    print(f"  for scale, fetchall then write ({written} rows): {seconds:5.1f} s, peak RSS {peak:6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--format", dest="kind", choices=("csv", "json"), default="csv")
    parser.add_argument("--pg", default=None, help="also a PostgreSQL database (a schema is made and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        bench_database("sqlite", f"sqlite:///{work / 'flatqc.db'}", args.rows, args.kind, work)
        if args.pg:
            with pg_schema(args.pg) as url:
                bench_database("postgresql", url, args.rows, args.kind, work)


if __name__ == "__main__":
    main()
