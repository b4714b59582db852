"""Time ``flatqc process`` over a whole synthetic night against the naive work on every set of it, all as whole
processes (start-up, imports and all), interleaved in one run.

    python -m bench.bench_process_night [--runs 3]

A synthetic CRIRES night (``qc.synth.write_night``, what ``flatqc synth --out DIR`` writes: 9 sets, of which
``flatqc process`` computes the 7 complete and consistent ones) is written into a temporary folder and processed once
by ``flatqc process`` (warm page cache; the database and QC output folder then exist, as after a first night). Then
``--runs`` rounds of, in turn:

- ``flatqc process NIGHT``: classification of every file, QC1 rows, flat1..flat5 and a cover sheet per set, the
  printed report, in one process;
- the naive version (``bench.naive``: astropy defaults, float64, full-resolution matplotlib pictures and a cover) of
  the same 7 sets with their references (a windowed set against its window's reference rows), in one process that
  imports once, like ``flatqc process``;
- the same naive work in a fresh process per set (start-up paid per set, as a script run set by set would).

Prints each one's median wall and CPU (user + sys) time and the ratios naive / ``flatqc process``: of the medians,
and the median of the rounds' ratios (robust to the machine's speed drifting between rounds). Nothing is asserted
(the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flatqc.batch import inspect_tree
from flatqc.settings import Settings
from qc.config import QCConfig
from qc.geometry import reference_rows
from qc.profiles import profile_named
from qc.reference import find_reference
from qc.sets import FlatSet, group_sets
from qc.synth import write_night

ROOT = Path(__file__).resolve().parents[1]
"""The checkout; the children run ``python -m`` from it, so they import its code."""
PROCESS, ONE, PER_SET = "flatqc process", "naive, one process", "naive, a process per set"


def night_plan(night: Path, out: Path) -> list[dict]:
    """The sets ``flatqc process`` computes on ``night`` (complete, consistent), as :func:`bench.naive.run_plan`
    takes them."""
    reference_dir = night / "reference"
    settings = Settings(dfs_product=night / "dfs_product", dfs_raw=night / "dfs_raw", qc_reference=reference_dir)
    flatsets: list[FlatSet] = group_sets(inspect_tree([night], settings, [], skip=[reference_dir])).complete
    plan = []
    for flatset in flatsets:
        profile = profile_named(flatset.profile)
        config: QCConfig = settings.qc_config(profile.name)
        reference = find_reference(reference_dir, profile, config, flatset.setting_key)
        first = flatset.raws[0]
        window = reference_rows(first.window_starty, first.window_ny)
        plan.append({"raws": [str(r.path) for r in flatset.raws], "master": str(flatset.master.path),
                     "bpm": str(flatset.bpm.path),
                     "ref_master": str(reference.master) if reference.available else None,
                     "ref_bpm": str(reference.bpm) if reference.available else None,
                     "window": [window.start, window.stop], "out": str(out / flatset.set_id),
                     "n_det": profile.n_detectors})
    return plan


def run(command: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) time [s] of ``python -m COMMAND`` as a whole process (output discarded; a failure
    raises)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", *command], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (after one warm-up run of flatqc process)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-process-night-") as tmp:
        work = Path(tmp)
        night = work / "night"
        write_night(night, seed=0)
        plan = night_plan(night, work / "naive")
        plan_files = [work / f"plan{index}.json" for index in range(len(plan) + 1)]
        for path, part in zip(plan_files, [plan, *([entry] for entry in plan)], strict=True):
            path.write_text(json.dumps(part))
        process = ["flatqc", "process", str(night), "--db", f"sqlite:///{work / 'flatqc.db'}", "--out",
                   str(work / "qc")]
        run(process)
        times: dict[str, list[tuple[float, float]]] = {PROCESS: [], ONE: [], PER_SET: []}
        for _ in range(args.runs):
            times[PROCESS].append(run(process))
            times[ONE].append(run(["bench.naive", str(plan_files[0])]))
            per_set = [run(["bench.naive", str(path)]) for path in plan_files[1:]]
            times[PER_SET].append((sum(w for w, _ in per_set), sum(c for _, c in per_set)))
    print(f"synthetic CRIRES night, {len(plan)} sets computed: median of {args.runs} interleaved rounds, whole "
          "processes")
    for name, values in times.items():
        print(f"  {name:36s} wall {statistics.median(w for w, _ in values):6.2f} s   "
              f"cpu {statistics.median(c for _, c in values):6.2f} s   "
              f"(wall per round: {', '.join(f'{w:.2f}' for w, _ in values)})")
    for naive in (ONE, PER_SET):
        for index, what in ((0, "wall"), (1, "cpu")):
            medians = statistics.median(t[index] for t in times[naive]) / statistics.median(
                t[index] for t in times[PROCESS])
            rounds = statistics.median(n[index] / p[index] for n, p in zip(times[naive], times[PROCESS], strict=True))
            print(f"  {naive} / flatqc process, {what}: {medians:5.1f} x (median of the rounds' ratios "
                  f"{rounds:.1f} x)")


if __name__ == "__main__":
    main()
