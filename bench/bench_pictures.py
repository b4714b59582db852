"""Time the pictures of one 4-flat set per profile (flat1..flat5 + cover) against the previous implementation.

    python -m bench.bench_pictures [--profile crires|crires+] [--repeat 3]

For each profile (both unless ``--profile`` picks one) the ``snr_pass`` set of a synthetic night (4 flats, with
reference) is written into a temporary folder and analysed once with display views. Then, in this process:

- ``draw_pictures`` (``flatqc.pipeline``, the production code) into one folder;
- the baseline ``bench.pictures_before.draw_pictures_before`` (the matplotlib code before issue 13, kept only in
  ``bench/``) into another, on the same views converted once to the old shape.

Each is called once to warm up (imports, fonts, colour tables), then ``--repeat`` times; the best warm time is
printed with the ratio baseline / new. Nothing is asserted (the machine is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.pictures_before import baseline_result, draw_pictures_before
from flatqc.pipeline import analyse, draw_pictures
from flatqc.process import inspect_tree
from flatqc.settings import Settings
from qc.profiles import PROFILES
from qc.records import SetResult
from qc.sets import group_sets
from qc.synth import write_night


def warm_time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(first call, best of ``repeat`` later calls) wall time [s]."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, min(times)


def analysed_set(profile: str, work: Path) -> tuple[SetResult, Settings]:
    """The ``snr_pass`` set of a synthetic night of ``profile``, analysed with display views."""
    manifest = write_night(work / "night", seed=7, profile=profile, sets=["snr_pass"])
    spec = next(s for s in manifest.sets if s.name == "snr_pass")
    night = work / "night"
    settings = Settings(dfs_product=night / "dfs_product", dfs_raw=night / "dfs_raw",
                        qc_reference=night / "reference", qc_output=work / "qc",
                        db_url=f"sqlite:///{work / 'unused.db'}")
    folders = {(night / spec.master).parent, *((night / raw).parent for raw in spec.raws)}
    frames = inspect_tree(sorted(folders), settings, [])
    flatset = next(s for s in group_sets(frames).complete if s.set_id == spec.set_id)
    return analyse(flatset, settings, with_views=True), settings


def run_profile(profile: str, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pictures-") as tmp:
        result, settings = analysed_set(profile, Path(tmp))
        before = baseline_result(result)
        first_new, t_new = warm_time(lambda: draw_pictures(result, settings), repeat)
        first_old, t_old = warm_time(lambda: draw_pictures_before(before, Path(tmp) / "before"), repeat)
    print(f"profile {profile}: set {result.set_id}, N = {result.n_raw}, {len(result.views)} detectors; "
          f"six PNGs (flat1..flat5 + cover), best of {repeat} warm calls")
    print(f"  draw_pictures (new)        {t_new:7.3f} s   (first call {first_new:.3f} s)")
    print(f"  baseline (before issue 13) {t_old:7.3f} s   (first call {first_old:.3f} s)")
    print(f"  baseline / new             {t_old / t_new:7.1f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), help="only this profile (default: both)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name in [args.profile] if args.profile else ["crires", "crires+"]:
        run_profile(name, args.repeat)


if __name__ == "__main__":
    main()
