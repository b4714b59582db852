"""Last good set (contract 9): ``M / M_prev`` on the rows both masters read against a plain loop implementation,
the choice of the last good set in the database, the QC1 columns written by ``flatqc process`` and the QC job alike,
flat6, the cover and the set page."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import Engine, insert, select

from flatqc.cli import main
from flatqc.db import connect, crires_flat, criresp_flat, sets
from flatqc.files import path_text, sha256_file
from flatqc.last_good import find_last_good
from flatqc.lifecycle.sets import Members, SetKeys, claim_complete
from flatqc.settings import Settings
from flatqc.web.app import create_app
from qc.analysis import analyse_set
from qc.fitsio import FrameInfo, inspect_file
from qc.last_good import LastGoodSet, common_rows, window_ratio
from qc.plots import BAR_AREA, GAP, LEFT, PANEL_WIDTH, flat6
from qc.profiles import CRIRES
from qc.records import QC1_NAMES
from qc.sets import FlatSet, group_sets
from qc.stats import ratio_stats
from qc.synth_fits import product_cards
from tests.tiny_set import NIGHT, TinyFile, raw_cards, write_file
from worker import jobs

KEY = "2340.000_25.000_Halogen"
OTHER_KEY = "2400.000_25.000_Halogen"
NX = CRIRES.nx


# --- the independent implementation ------------------------------------------------------------------------------

def plain_ratio(master: np.ndarray, starty: int, previous: np.ndarray,
                prev_starty: int) -> tuple[float | None, float | None]:
    """Median and population std of the finite ``master / previous`` over the full-detector rows both read, pixel
    by pixel."""
    values = []
    for row in range(master.shape[0]):
        prev_row = starty + row - prev_starty
        if not 0 <= prev_row < previous.shape[0]:
            continue
        for col in range(master.shape[1]):
            a, b = float(master[row, col]), float(previous[prev_row, col])
            if b == 0.0 or math.isnan(a) or math.isnan(b):
                continue
            value = a / b
            if math.isfinite(value):
                values.append(value)
    if not values:
        return None, None
    values.sort()
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    mean = math.fsum(values) / n
    return median, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n)


def assert_ratio(got: tuple[float | None, float | None], expected: tuple[float | None, float | None]) -> None:
    if expected[0] is None:
        assert got == (None, None)
        return
    assert got[0] == pytest.approx(expected[0], rel=1e-12)
    assert got[1] == pytest.approx(expected[1], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("starty", "ny", "prev_starty", "prev_ny", "rows"), [
    (1, 512, 1, 512, 512),  # full frame both
    (201, 4, 1, 512, 4),  # a window against a full frame
    (1, 512, 199, 6, 6),  # a full frame against a window
    (202, 4, 199, 6, 3),  # windows overlapping on rows 202..204
    (199, 6, 202, 4, 3),
    (100, 4, 300, 4, 0),  # no common row
])
def test_common_rows_are_the_rows_both_read(starty: int, ny: int, prev_starty: int, prev_ny: int, rows: int) -> None:
    mine, theirs = common_rows(starty, ny, prev_starty, prev_ny)
    full = np.arange(1, 513)
    current, previous = full[starty - 1:starty - 1 + ny], full[prev_starty - 1:prev_starty - 1 + prev_ny]
    assert list(current[mine]) == list(previous[theirs]) == sorted(set(current) & set(previous))
    assert len(current[mine]) == rows


@pytest.mark.parametrize(("starty", "ny", "prev_starty", "prev_ny"), [
    (1, 16, 1, 16), (5, 6, 1, 16), (1, 16, 9, 5), (7, 6, 4, 6), (4, 6, 7, 6), (1, 4, 9, 4),
])
def test_window_ratio_equals_the_plain_loops(starty: int, ny: int, prev_starty: int, prev_ny: int) -> None:
    rng = np.random.default_rng(starty * 100 + prev_starty)
    master = (1 + 0.05 * rng.standard_normal((ny, 24))).astype(np.float32)
    previous = (1 + 0.05 * rng.standard_normal((prev_ny, 24))).astype(np.float32)
    master[0, 3] = np.nan  # not finite in the current master
    previous[-1, 5] = np.nan  # ... in the previous one
    previous[0, 7] = 0.0  # ratio +inf
    previous[min(1, prev_ny - 1), 8] = -0.0
    master[min(1, ny - 1), 9] = 0.0
    ratio = window_ratio(master, starty, previous, prev_starty)
    assert ratio.shape == master.shape and ratio.dtype == np.float64
    assert_ratio(ratio_stats(ratio), plain_ratio(master, starty, previous, prev_starty))


def test_window_ratio_of_float64_masters_with_nan_between_orders() -> None:
    """CRIRES+-like: float64 masters with NaN rows (between orders) in either."""
    rng = np.random.default_rng(3)
    master, previous = 1 + 0.1 * rng.standard_normal((2, 20, 30))
    master[4:6] = np.nan
    previous[10:13] = np.nan
    assert_ratio(ratio_stats(window_ratio(master, 1, previous, 1)), plain_ratio(master, 1, previous, 1))


# --- tiny sets on disk ---------------------------------------------------------------------------------------------

def dated_set(tag: str, minute: int, master: np.ndarray, n_raw: int = 1, raw_level: float = 6000.0,
              starty: int = 201, cwlen: float = 2340.0, seed: int = 0) -> list[TinyFile]:
    """A tiny CRIRES set observed ``minute`` minutes after 10:00 of the night: raws at ``raw_level`` ADU with 20 ADU
    noise (N = 3: S/N ~ 300, passed; N = 1: not assessable; 14000 ADU: failed on max_flux), ``master`` (rows x
    1024) on every detector from row ``starty``, a BPM with two bad pixels."""
    rng = np.random.default_rng(seed)
    ny = master.shape[0]
    names = [f"CRIRE.{NIGHT}T1{minute // 60}:{minute % 60:02d}:0{i}.000.fits" for i in range(n_raw)]
    files = []
    for index, name in enumerate(names):
        cards = raw_cards(name, 0, cwlen, ny, starty) | {
            "DATE-OBS": name[6:-5], "MJD-OBS": 55328.0 + (600 + minute) / 1440 + index / 86400}
        chips = [(raw_level + 20 * rng.standard_normal((ny, NX))).astype(np.float32) for _ in CRIRES.detectors]
        files.append(TinyFile(name, "raw", cards, list(chips)))
    bpm = np.zeros((ny, NX), dtype=np.int16)
    bpm[0, 10:12] = 1
    files.append(TinyFile(f"master_{tag}.fits", "master", product_cards(files[0].cards, CRIRES.master_catg, names),
                          [master] * 4))
    files.append(TinyFile(f"bpm_{tag}.fits", "bpm", product_cards(files[0].cards, CRIRES.bpm_catg, names),
                          [bpm] * 4))
    return files


def master_of(seed: int, ny: int) -> np.ndarray:
    """A normalised master: ~1 with 2 % spread and a NaN pixel."""
    chip = (1 + 0.02 * np.random.default_rng(seed).standard_normal((ny, NX))).astype(np.float32)
    chip[ny // 2, 100 + seed] = np.nan
    return chip


def write_set(files: list[TinyFile], root: Path) -> Path:
    folder = root / "dfs_product" / "FLT_WIN" / NIGHT
    for tiny in files:
        write_file(tiny, folder)
    return root


def flatset_of(root: Path) -> FlatSet:
    folder = root / "dfs_product" / "FLT_WIN" / NIGHT
    (flatset,) = group_sets([inspect_file(p) for p in sorted(folder.iterdir())]).complete
    return flatset


SETS: dict[str, dict[str, Any]] = {
    # tag: minute, master window (STARTY, NY), raws, level, setting
    "A": {"minute": 0, "starty": 199, "ny": 6, "n_raw": 3, "level": 6000.0, "cwlen": 2340.0},  # passed
    "B": {"minute": 10, "starty": 201, "ny": 4, "n_raw": 1, "level": 14000.0, "cwlen": 2340.0},  # failed
    "C": {"minute": 20, "starty": 202, "ny": 4, "n_raw": 1, "level": 6000.0, "cwlen": 2340.0},  # not assessable
    "D": {"minute": 30, "starty": 201, "ny": 4, "n_raw": 3, "level": 6000.0, "cwlen": 2400.0},  # other setting
    "E": {"minute": 40, "starty": 201, "ny": 4, "n_raw": 1, "level": 6000.0, "cwlen": 2340.0},  # not assessable
}
"""The night of the end-to-end tests: E's last good set is C (B failed, D is of another setting), C's is A."""


@pytest.fixture()
def night(tmp_path: Path) -> dict[str, Path]:
    """Each set of :data:`SETS` in a folder of its own (so that each can be processed alone)."""
    roots = {}
    for seed, (tag, spec) in enumerate(SETS.items()):
        files = dated_set(tag, spec["minute"], master_of(seed, spec["ny"]), spec["n_raw"], spec["level"],
                          spec["starty"], spec["cwlen"], seed)
        roots[tag] = write_set(files, tmp_path / "sets" / tag)
    return roots


def process(db_url: str, out: Path, *roots: Path) -> None:
    answer = CliRunner().invoke(main, ["process", *(str(r) for r in roots), "--db", db_url, "--out", str(out),
                                       "--json"])
    assert answer.exit_code == 0, answer.output


def rows_of(engine: Engine, set_id: str) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["detector"]: dict(r) for r in conn.execute(
            select(crires_flat).where(crires_flat.c.set_id == set_id)).mappings()}


def set_ids(night: dict[str, Path]) -> dict[str, str]:
    return {tag: flatset_of(root).set_id for tag, root in night.items()}


def assert_compared(engine: Engine, night: dict[str, Path], tag: str, last: str) -> None:
    """The rows of set ``tag`` hold its comparison with set ``last``: ratios from the two master files by the plain
    loops, and every delta as the difference of the two sets' stored values."""
    ids = set_ids(night)
    mine, theirs = rows_of(engine, ids[tag]), rows_of(engine, ids[last])
    folder = "dfs_product/FLT_WIN/" + NIGHT
    current = master_of(list(SETS).index(tag), SETS[tag]["ny"])
    previous = master_of(list(SETS).index(last), SETS[last]["ny"])
    assert Path(mine[1]["master_file"]) == night[tag] / folder / f"master_{tag}.fits"
    expected = plain_ratio(current, SETS[tag]["starty"], previous, SETS[last]["starty"])
    for det, row in mine.items():
        assert row["prev_set_id"] == ids[last]
        assert row["prev_note"] == f"last good set {ids[last]} (night {NIGHT})"
        assert_ratio((row["prev_ratio_median"], row["prev_ratio_std"]), expected)
        for name in QC1_NAMES:
            before, now = theirs[det][name], row[name]
            if before is None or now is None:
                assert row[f"delta_{name}"] is None, name
            else:
                assert row[f"delta_{name}"] == pytest.approx(now - before, rel=1e-12, abs=1e-12), name


def assert_none_before(engine: Engine, set_id: str) -> None:
    for row in rows_of(engine, set_id).values():
        assert row["prev_set_id"] is None and row["prev_note"] == f"no earlier good set of {KEY}"
        assert row["prev_ratio_median"] is None and row["prev_ratio_std"] is None
        assert all(row[f"delta_{name}"] is None for name in QC1_NAMES)


def test_flatqc_process_compares_each_set_with_its_last_good_set(night: dict[str, Path], tmp_path: Path,
                                                                  sqlite_url: str) -> None:
    """All at once (processed in MJD-OBS order): failed B is skipped, not-assessable C counts, D is of another
    setting; A has nothing before it."""
    process(sqlite_url, tmp_path / "qc", *night.values())
    engine = connect(sqlite_url)
    ids = set_ids(night)
    assert {tag: rows_of(engine, i)[1]["verdict"] for tag, i in ids.items()} == {
        "A": "passed", "B": "failed", "C": "not_assessable", "D": "passed", "E": "not_assessable"}
    assert_none_before(engine, ids["A"])
    assert_compared(engine, night, "B", "A")  # a failed set is compared too; it only cannot be the last good one
    assert_compared(engine, night, "C", "A")  # windows 202..205 against 199..204: rows 202..204
    assert_compared(engine, night, "E", "C")
    assert all(r["prev_set_id"] is None for r in rows_of(engine, ids["D"]).values())
    engine.dispose()


def test_reprocessing_compares_with_earlier_sets_only(night: dict[str, Path], tmp_path: Path,
                                                      sqlite_url: str) -> None:
    """E processed first has nothing to compare with; once the others are in, E again finds C, and A and C
    reprocessed later still compare with what came before them (not with E)."""
    engine = connect(sqlite_url)
    ids = set_ids(night)
    process(sqlite_url, tmp_path / "qc", night["E"])
    for row in rows_of(engine, ids["E"]).values():
        assert row["prev_set_id"] is None and row["prev_note"] == f"no earlier good set of {KEY}"
    process(sqlite_url, tmp_path / "qc", night["A"], night["B"], night["C"], night["D"])
    process(sqlite_url, tmp_path / "qc", night["E"])
    assert_compared(engine, night, "E", "C")
    process(sqlite_url, tmp_path / "qc", night["A"], night["C"])
    assert_none_before(engine, ids["A"])
    assert_compared(engine, night, "C", "A")
    engine.dispose()


def run_job(db_url: str, tmp_path: Path, root: Path, pictures: bool = False) -> str:
    """Claim ``root``'s set in the ledger and run its QC job here (no Redis), and its picture job if asked;
    returns its version."""
    flatset = flatset_of(root)
    paths = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
    members = Members(tuple(path_text(p) for p in paths), tuple(sha256_file(p) for p in paths))
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", qc_reference=tmp_path / "reference",
                        run_dir=tmp_path / "run", redis_url=None)
    engine = jobs.prepare(settings).engine
    try:
        with engine.begin() as conn:
            claim_complete(conn, SetKeys(flatset.set_id, NIGHT, "crires", flatset.setting_key, flatset.n_raw),
                           members, [], None)
        assert jobs.run_set_qc(members.version)["state"] == "done"
        if pictures:
            assert "flat6" in jobs.draw_set_pictures(members.version)["pictures"]
    finally:
        jobs.release()
    return members.version


def test_the_qc_job_stores_what_flatqc_process_stores(night: dict[str, Path], tmp_path: Path, db_url: str) -> None:
    for tag in ("A", "B", "C", "D"):
        run_job(db_url, tmp_path, night[tag])
    engine = connect(db_url)
    assert_compared(engine, night, "C", "A")
    run_job(db_url, tmp_path, night["E"], pictures=True)
    assert_compared(engine, night, "E", "C")
    with Image.open(tmp_path / "qc" / NIGHT / set_ids(night)["E"] / "flat6.png") as image:
        assert image.size == flat6_size()
    engine.dispose()


def test_a_superseded_version_is_no_candidate(night: dict[str, Path], tmp_path: Path, sqlite_url: str) -> None:
    """New bytes of C's master make a new version of C (queued, not run yet): C's rows, of the superseded version,
    no longer make it the last good set of E, which falls back to A."""
    for tag in ("A", "C"):
        run_job(sqlite_url, tmp_path, night[tag])
    flatset = flatset_of(night["C"])
    write_file(dated_set("C", SETS["C"]["minute"], master_of(7, 4), starty=202)[-2], flatset.master.path.parent)
    paths = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
    engine = connect(sqlite_url)
    with engine.begin() as conn:
        claim_complete(conn, SetKeys(flatset.set_id, NIGHT, "crires", KEY, 1),
                       Members(tuple(path_text(p) for p in paths), tuple(sha256_file(p) for p in paths)), [], None)
        assert {r.state for r in conn.execute(select(sets.c.state).where(sets.c.set_id == flatset.set_id))} == {
            "superseded", "queued"}
    run_job(sqlite_url, tmp_path, night["E"])
    assert_compared(engine, night, "E", "A")
    engine.dispose()


def test_a_master_gone_or_changed_gives_null_ratios_with_a_note(night: dict[str, Path], tmp_path: Path,
                                                                sqlite_url: str) -> None:
    """The set is processed all the same: NULL ratios, a note saying why, the deltas from the stored values."""
    process(sqlite_url, tmp_path / "qc", night["A"])
    engine = connect(sqlite_url)
    ids = set_ids(night)
    master_a = flatset_of(night["A"]).master.path
    moved = master_a.rename(tmp_path / "kept.fits")
    process(sqlite_url, tmp_path / "qc", night["C"])
    for row in rows_of(engine, ids["C"]).values():
        assert row["prev_set_id"] == ids["A"] and row["verdict"] == "not_assessable"
        assert row["prev_ratio_median"] is None and row["prev_ratio_std"] is None
        assert row["prev_note"] == f"last good set {ids['A']} (night {NIGHT}): master master_A.fits is gone; no ratios"
        assert row["delta_mean_level"] is not None and row["delta_bpm_count"] == 0
    shutil.copyfile(moved, master_a)
    with master_a.open("r+b") as fh:  # same size, other bytes
        fh.seek(-8, 2)
        fh.write(b"\x3f\x80\x00\x00\x3f\x80\x00\x00")
    process(sqlite_url, tmp_path / "qc", night["C"])
    assert rows_of(engine, ids["C"])[1]["prev_note"].endswith(
        "master master_A.fits holds other bytes than the set was processed with; no ratios")
    engine.dispose()


# --- the choice, on rows written directly --------------------------------------------------------------------------

def qc1_row(set_id: str, mjd: float, verdict: str, key: str = KEY, version: str | None = None) -> dict[str, Any]:
    return {"set_id": set_id, "version": version or set_id * 4, "night": NIGHT, "mjd_obs": mjd, "setting_key": key,
            "n_raw": 1, "raw_type": "FLT_WIN", "detector": 1, "certified": verdict != "failed", "verdict": verdict,
            "master_file": f"/nowhere/{set_id}.fits", "ny": 4, "window_starty": 201, "mean_level": mjd}


def probe(set_id: str, mjd: float | None, key: str = KEY) -> FlatSet:
    """A CRIRES set as :func:`find_last_good` sees it (no file behind it)."""
    frame = FrameInfo(path=Path(f"{set_id}.fits"), kind="raw", profile="crires", arcfile=None, raw_names=(),
                      setting_key=key, dit=10.0, ndit=1, window_ny=4, window_starty=201, mjd_obs=mjd, date_obs=None,
                      lamp="Halogen", setting_values=())
    return FlatSet(set_id=set_id, night=NIGHT, profile="crires", master=frame, bpm=frame, raws=(frame,))


def test_the_last_good_set_is_the_latest_earlier_one_not_failed_nor_superseded(db_url: str) -> None:
    engine = connect(db_url)
    with engine.begin() as conn:
        conn.execute(insert(crires_flat), [
            qc1_row("a", 90.0, "passed"),
            qc1_row("f", 92.0, "not_assessable"),  # the answer
            qc1_row("b", 95.0, "failed"),
            qc1_row("c", 97.0, "passed", version="c-old"),  # a newer version of c was claimed
            qc1_row("d", 98.0, "passed", key=OTHER_KEY),
            qc1_row("s", 100.0, "passed"),  # the set itself, processed before
            qc1_row("t", 100.0, "passed"),  # observed at the same time: not earlier
            qc1_row("e", 105.0, "passed"),  # later
        ])
        conn.execute(insert(criresp_flat), [qc1_row("p", 99.0, "passed") | {"detector": 1}])  # other profile
        conn.execute(insert(sets), [
            {"set_id": "c", "version": "c-old", "state": "superseded"},
            {"set_id": "c", "version": "c-new", "state": "queued"},
            {"set_id": "f", "version": "f" * 4, "state": "done"},
        ])
    found = find_last_good(engine, probe("s", 100.0))
    assert found is not None and found.set_id == "f"
    assert found.qc1 == {1: {name: 92.0 if name == "mean_level" else None for name in QC1_NAMES}}
    assert (found.window_starty, found.window_ny, found.unusable) == (201, 4, "is gone")
    assert find_last_good(engine, probe("s", 91.0)).set_id == "a"  # type: ignore[union-attr]
    assert find_last_good(engine, probe("s", 90.0)) is None  # earlier sets only
    assert find_last_good(engine, probe("s", None)) is None  # MJD-OBS unknown
    assert find_last_good(engine, probe("s", 200.0, OTHER_KEY)).set_id == "d"  # type: ignore[union-attr]
    with engine.begin() as conn:  # c's new version done: its rows count again
        conn.execute(sets.update().where(sets.c.version == "c-new").values(state="done"))
        conn.execute(crires_flat.update().where(crires_flat.c.set_id == "c").values(version="c-new"))
    assert find_last_good(engine, probe("s", 100.0)).set_id == "c"  # type: ignore[union-attr]
    engine.dispose()


# --- analyse_set, flat6 and the page -------------------------------------------------------------------------------

def analysed(tmp_path: Path, last_good: LastGoodSet | None) -> Any:
    root = write_set(dated_set("now", 50, master_of(11, 4)), tmp_path / "now")
    return analyse_set(flatset_of(root), CRIRES, CRIRES.default_config, None, with_views=True, last_good=last_good)


def last_good_file(tmp_path: Path, chips: list[np.ndarray | None], name: str = "prev.fits") -> LastGoodSet:
    tiny = TinyFile(name, "master", {"INSTRUME": "CRIRES"}, chips)
    path = write_file(tiny, tmp_path / "prev")
    return LastGoodSet("0123abcd", NIGHT, path, 6, 199, {d: {"mean_level": 5000.0, "badpix": 3} for d in (1, 2, 3, 4)})


def test_analyse_set_compares_every_detector(tmp_path: Path) -> None:
    previous = [master_of(20 + d, 6) for d in range(4)]
    result = analysed(tmp_path, last_good_file(tmp_path, list(previous)))
    current = master_of(11, 4)
    assert result.last_good.set_id == "0123abcd"
    for index, compared in enumerate(result.last_good.detectors):
        assert_ratio((compared.ratio_median, compared.ratio_std), plain_ratio(current, 201, previous[index], 199))
        qc = result.detectors[index]
        assert compared.deltas["mean_level"] == qc.mean_level - 5000.0
        assert compared.deltas["badpix"] == qc.badpix - 3
        assert compared.deltas["median_snr"] is None  # NULL on both sides
        view = result.views[index]
        assert view.prev_ratio is not None and view.prev_ratio.shape == view.master.shape


@pytest.mark.parametrize("broken", ["not a FITS file", "detector 3 missing"])
def test_an_unreadable_previous_master_leaves_every_ratio_null(tmp_path: Path, broken: str) -> None:
    if broken == "not a FITS file":
        last = last_good_file(tmp_path, [master_of(1, 6)] * 4)
        last.master.write_bytes(b"SIMPLE  = nonsense")
    else:
        last = last_good_file(tmp_path, [master_of(1, 6), master_of(2, 6), None, master_of(3, 6)])
    result = analysed(tmp_path, last)
    assert result.certification.verdict == "not_assessable"  # the set itself is fine
    assert "cannot be read" in result.last_good.note and result.last_good.note.endswith("; no ratios")
    assert all(c.ratio_median is None and c.ratio_std is None for c in result.last_good.detectors)
    assert all(c.deltas["mean_level"] is not None for c in result.last_good.detectors)
    assert all(v.prev_ratio is None for v in result.views)
    picture = flat6(result)
    assert picture.panels == {} and picture.scales == {}  # a message, no ratio image


def flat6_size() -> tuple[int, int]:
    """Width and height of flat6 of a CRIRES set (4 detectors, one row of panels of at least 250 px)."""
    panel_h = max(round(PANEL_WIDTH * CRIRES.full_ny / CRIRES.nx), 250)
    return LEFT + 4 * PANEL_WIDTH + 3 * GAP + BAR_AREA, 48 + panel_h + 112


def test_flat6_draws_the_ratio_on_a_scale_about_one(tmp_path: Path) -> None:
    result = analysed(tmp_path, last_good_file(tmp_path, [master_of(20 + d, 6) for d in range(4)]))
    picture = flat6(result)
    assert picture.canvas.image.size == flat6_size()
    scale = picture.scales["prev_ratio"]
    assert scale.vmin < 1 < scale.vmax and scale.vmin + scale.vmax == pytest.approx(2.0)
    assert scale.label == "master / master of the last good set"
    assert sorted(picture.panels) == [f"prev_ratio {d}" for d in (1, 2, 3, 4)]


def test_pictures_cover_and_set_page_show_the_comparison(night: dict[str, Path], tmp_path: Path,
                                                         sqlite_url: str) -> None:
    out = tmp_path / "qc"
    process(sqlite_url, out, *night.values())
    ids = set_ids(night)
    for tag in ("A", "E"):
        folder = out / NIGHT / ids[tag]
        with Image.open(folder / "flat6.png") as image:
            assert image.size == flat6_size()
        with Image.open(folder / "cover.png") as image:
            assert image.size == (1286, 910)
    settings = Settings(db_url=sqlite_url, qc_output=out, run_dir=tmp_path / "run")
    engine = connect(sqlite_url)
    client = create_app(settings, engine, None).test_client()
    page = client.get(f"/sets/{ids['E']}").get_data(as_text=True)
    assert f'<a href="/sets/{ids["C"]}">{ids["C"]}</a>' in page
    expected = plain_ratio(master_of(4, 4), 201, master_of(2, 4), 202)
    assert f"<td>{expected[0]:.5g}</td>" in page and f"<td>{expected[1]:.5g}</td>" in page
    assert "Δ mean_flux" in page and 'src="/files/2010-05-12/' + ids["E"] + '/flat6.png"' in page
    first = client.get(f"/sets/{ids['A']}").get_data(as_text=True)
    assert f"no earlier good set of {KEY}" in first and "Δ mean_flux" not in first
    api = client.get(f"/api/sets/{ids['E']}").get_json()
    assert {row["prev_set_id"] for row in api["qc1"]} == {ids["C"]}
    engine.dispose()
