"""The front page's board over ten years of QC1 rows against one month: the answer time must not grow with history.

    python -m bench.bench_board [--nights 3650] [--repeat 15] [--pg URL]

Fills a SQLite file (and, with ``--pg``, fresh schemas of that PostgreSQL database) twice with a generated history
(``bench/history.py``, 10 sets a night, 4 detectors): 30 nights (1,200 QC1 rows) and ``--nights`` (3,650 nights:
146,000 rows, ~10 years). Every row gets a score, every set a review decision (one in fifty rejected, one in ten
decided twice), so the board's last-good-set and review questions meet tables of that size. Then it times ``GET /``
(the board above the nights list), ``GET /api/board`` and ``GET /api/nights`` with the Flask test client, the two
histories in turn (median of ``--repeat`` after one warm-up), and prints each figure and its ratio long / short.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import case, create_engine, select, text, update
from sqlalchemy.engine import Engine

from bench.history import write_history
from flatqc.db import connect, crires_flat
from flatqc.lifecycle.reviews import Decision, decide
from flatqc.settings import Settings
from flatqc.web.app import create_app

SETS_PER_NIGHT = 10
PAGES = ("/", "/api/board", "/api/nights")
CHUNK = 500
"""Sets decided per ``decide`` call."""


def fill(engine: Engine, nights: int) -> int:
    """A history of ``nights`` nights with scores and reviews; returns its QC1 rows."""
    rows = write_history(engine, nights * SETS_PER_NIGHT, sets_per_night=SETS_PER_NIGHT)
    with engine.begin() as conn:
        conn.execute(update(crires_flat).values(score=case(
            (crires_flat.c.verdict == "failed", "fail"), ((crires_flat.c.id % 7) == 0, "warn"), else_="ok")))
        set_ids = conn.execute(select(crires_flat.c.set_id).distinct().order_by(crires_flat.c.set_id)).scalars().all()
        for start in range(0, len(set_ids), CHUNK):
            chunk = set_ids[start:start + CHUNK]
            decide(conn, chunk, Decision.ACCEPTED, "bench")
            decide(conn, chunk[::50], Decision.REJECTED, "bench", "rejected in review")
            decide(conn, chunk[1::10], Decision.ACCEPTED, "bench", "second look")
        conn.execute(text("ANALYZE"))
    return rows


def client_for(url: str, tmp: Path, nights: int) -> tuple[FlaskClient, Engine, int, float]:
    """A test client of a dashboard over a new history of ``nights`` nights at ``url``, its engine, QC1 rows and
    fill time [s]."""
    engine = connect(url)
    start = time.perf_counter()
    rows = fill(engine, nights)
    filled = time.perf_counter() - start
    settings = Settings(db_url=url, qc_output=tmp / "qc", run_dir=tmp / "run")
    return create_app(settings, engine, None).test_client(), engine, rows, filled


def interleaved(clients: list[FlaskClient], page: str, repeat: int) -> list[float]:
    """Median wall time [s] of ``GET page`` from each client, called in turn ``repeat`` times after one warm-up
    each (in turn, so that a change of the machine's load meets every client alike)."""
    times: list[list[float]] = [[] for _ in clients]
    for round_ in range(repeat + 1):
        for client, measured in zip(clients, times, strict=True):
            start = time.perf_counter()
            answer = client.get(page)
            if round_:
                measured.append(time.perf_counter() - start)
            assert answer.status_code == 200, (page, answer.status_code)
    return [statistics.median(measured) for measured in times]


@contextmanager
def databases(tmp: Path, pg: str | None, name: str) -> Iterator[list[tuple[str, str]]]:
    """(kind, URL) of an empty SQLite file and, with ``pg``, of a fresh schema dropped at the end."""
    urls = [("sqlite", f"sqlite:///{tmp / name}.db")]
    schema = f"bench_board_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT") if pg else None
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        urls.append(("postgresql", f"{pg}?options=-csearch_path%3D{schema}"))
    try:
        yield urls
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=3650, help="nights of the long history (default ~10 years)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pg", help="PostgreSQL URL (postgresql+psycopg://...) to measure there too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-board-") as folder:
        tmp = Path(folder)
        with databases(tmp, args.pg, "month") as short, databases(tmp, args.pg, "decade") as long:
            for (kind, short_url), (_, long_url) in zip(short, long, strict=True):
                month, month_engine, month_rows, month_fill = client_for(short_url, tmp, 30)
                decade, decade_engine, decade_rows, decade_fill = client_for(long_url, tmp, args.nights)
                print(f"{kind}: {month_rows} QC1 rows (filled in {month_fill:.1f} s) against {decade_rows} "
                      f"(filled in {decade_fill:.1f} s); median of {args.repeat}")
                for page in PAGES:
                    short_s, long_s = interleaved([month, decade], page, args.repeat)
                    print(f"  {page:14s} {short_s * 1000:8.2f} ms {long_s * 1000:8.2f} ms x{long_s / short_s:.2f}")
                month_engine.dispose()
                decade_engine.dispose()

if __name__ == "__main__":
    main()
