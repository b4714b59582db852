"""Time the pictures of one 4-flat set per profile (flat1..flat5 + cover) against the previous implementation.

    python -m bench.bench_pictures [--profile crires|crires+] [--repeat 3]

For each profile (both unless ``--profile`` picks one) the ``snr_pass`` set of a synthetic night (4 flats, with
reference) is written into a temporary folder and analysed once with display views. Then, in this process:

- ``draw_pictures`` (``flatqc.set_qc``, the production code) into one folder;
- the baseline ``bench.pictures_before.draw_pictures_before`` (the matplotlib code before issue 13, kept only in
  ``bench/``) into another, on the same views converted once to the old shape.

Each is called once to warm up (imports, fonts, colour tables), then ``--repeat`` times; the best warm time is
printed with the ratio baseline / new. Nothing is asserted (the machine is shared).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import first_and_best, main_per_profile, snr_pass_set
from bench.pictures_before import baseline_result, draw_pictures_before
from flatqc.set_qc import analyse, draw_pictures
from flatqc.settings import Settings
from qc.records import SetResult


def analysed_set(profile: str, work: Path) -> tuple[SetResult, Settings]:
    """The ``snr_pass`` set of a synthetic night of ``profile``, analysed with display views."""
    flatset, settings = snr_pass_set(profile, work)
    return analyse(flatset, settings, with_views=True), settings


def run_profile(profile: str, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pictures-") as tmp:
        result, settings = analysed_set(profile, Path(tmp))
        before = baseline_result(result)
        first_new, t_new = first_and_best(lambda: draw_pictures(result, settings), repeat)
        first_old, t_old = first_and_best(lambda: draw_pictures_before(before, Path(tmp) / "before"), repeat)
    print(f"profile {profile}: set {result.set_id}, N = {result.n_raw}, {len(result.views)} detectors; "
          f"six PNGs (flat1..flat5 + cover), best of {repeat} warm calls")
    print(f"  draw_pictures (new)        {t_new:7.3f} s   (first call {first_new:.3f} s)")
    print(f"  baseline (before issue 13) {t_old:7.3f} s   (first call {first_old:.3f} s)")
    print(f"  baseline / new             {t_old / t_new:7.1f} x")


if __name__ == "__main__":
    main_per_profile(__doc__.splitlines()[0], run_profile)
