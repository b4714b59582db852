"""Start-up of the command line: ``flatqc --help`` against ``rq --help`` (both click programs of the same
environment), and ``flatqc status``, each as a whole process, interleaved in one run.

    python -m bench.bench_cli_startup [--runs 15]

Each round runs, in turn: the interpreter alone (``python -c pass``, the floor), ``rq --help``, ``flatqc --help``,
``flatqc status --help`` and ``flatqc status`` (a new SQLite database, no Redis: it reports the queue unreachable);
one warm-up round first. The console scripts of this environment run with this checkout first on PYTHONPATH.
Prints each command's median wall time and the ratio flatqc --help / rq --help. Nothing is asserted (the machine is
shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wall(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time [s] of ``command`` as a whole process (output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (after one warm-up round)")
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "rq --help": [str(BIN / "rq"), "--help"],
        "flatqc --help": [str(BIN / "flatqc"), "--help"],
        "flatqc status --help": [str(BIN / "flatqc"), "status", "--help"],
        "flatqc status": [str(BIN / "flatqc"), "status"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                            "FLATQC_DB_URL": f"sqlite:///{work / 'flatqc.db'}", "FLATQC_RUN_DIR": str(work / "run"),
                            "FLATQC_REDIS_URL": "", "FLATQC_CONFIG": ""}
        for round_ in range(args.runs + 1):
            for name, command in commands.items():
                elapsed = wall(command, env, work)
                if round_:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"median wall time of {args.runs} interleaved rounds, whole processes")
    for name, value in medians.items():
        print(f"  {name:22s} {value * 1000:7.0f} ms   (min {min(times[name]) * 1000:.0f}, "
              f"max {max(times[name]) * 1000:.0f})")
    print(f"  flatqc --help / rq --help {medians['flatqc --help'] / medians['rq --help']:5.2f}")


if __name__ == "__main__":
    main()
