"""Dashboard pages over a long history: time to answer the trends, nights and API pages over real HTTP.

    python bench/bench_trends.py [--sets 11000] [--repeat 5]

Fills a SQLite file with a generated history (``bench/history.py``: ~10 years, 3 sets a night, 4 detectors),
serves the dashboard on a free loopback port and fetches each page ``repeat`` times after one warm-up. Prints the
median answer time and bytes of each page, and its ratio to the bare SQL read of every trend row (the floor).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bench.history import write_history
from flatqc.db import connect, crires_flat
from flatqc.redis_server import free_port
from flatqc.settings import Settings
from flatqc.web import start_web

logging.getLogger("werkzeug").setLevel(logging.WARNING)

PAGES = ("/trends", "/trends?days=all", "/trends?days=all&key=1090.400_25.000_Halogen", "/api/trends?days=all",
         "/", "/api/nights", "/alerts")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time [s] of ``repeat`` calls after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=11_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trends-") as tmp:
        settings = Settings(db_url=f"sqlite:///{Path(tmp) / 'flatqc.db'}", qc_output=Path(tmp) / "qc")
        engine = connect(settings.db_url)
        start = time.perf_counter()
        rows = write_history(engine, args.sets)
        print(f"history: {args.sets} sets, {rows} QC1 rows written in {time.perf_counter() - start:.1f} s")
        columns = (crires_flat.c.setting_key, crires_flat.c.detector, crires_flat.c.mjd_obs, crires_flat.c.mean_flux,
                   crires_flat.c.rms_master, crires_flat.c.badpix)

        def read_rows() -> int:
            with engine.connect() as conn:
                return len(conn.execute(select(*columns)).all())

        floor, _ = timed(read_rows, args.repeat)
        print(f"floor: bare SQL read of all {rows} trend rows {floor * 1000:.1f} ms")
        port = free_port()
        server = start_web(settings, engine, None, "127.0.0.1", port)
        try:
            print(f"{'page':50s} {'median':>9s} {'bytes':>10s} {'x floor':>8s}")
            for page in PAGES:
                def fetch(page: str = page) -> bytes:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=60) as answer:
                        return answer.read()

                seconds, body = timed(fetch, args.repeat)
                print(f"{page:50s} {seconds * 1000:7.1f} ms {len(body):10d} {seconds / floor:8.1f}")
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
