"""Set grouping by provenance (contract 2), on FrameInfo records built by hand."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from qc.errors import InconsistentSet
from qc.fitsio import FrameInfo
from qc.sets import check_consistency, group_sets, night_of, set_id_for

SETTING = (("ESO INS WLEN CWLEN", "1090.4"), ("ESO INS BAFFLE POS", "25.0"), ("ESO INS LAMP1 NAME", "Halogen"))


def raw(name: str, dit: float = 10.0, **changes: object) -> FrameInfo:
    frame = FrameInfo(
        path=Path(f"/raw/2010-05-12/{name}"), kind="raw", profile="crires", arcfile=name, raw_names=(),
        setting_key="1090.400_25.000_Halogen", dit=dit, ndit=1, window_ny=512, window_starty=1,
        mjd_obs=55328.4, date_obs="2010-05-12T10:00:00", lamp="Halogen", setting_values=SETTING,
    )
    return replace(frame, **changes)


def product(kind: str, names: tuple[str, ...], path: str) -> FrameInfo:
    return replace(raw("x"), path=Path(path), kind=kind, arcfile=None, raw_names=tuple(sorted(names)))


def test_set_id_is_sha256_of_sorted_names_and_order_free() -> None:
    expected = hashlib.sha256(b"A.fits\nB.fits").hexdigest()[:16]
    assert set_id_for(["B.fits", "A.fits"]) == expected
    assert set_id_for(["A.fits", "B.fits"]) == expected


def test_complete_set_matches_master_and_bpm_by_raw_list_not_name() -> None:
    names = ("CRIRE.1.fits", "CRIRE.2.fits")
    frames = [
        product("bpm", names[::-1], "/p/DARK/2010-05-12/whatever_b.fits"),
        raw(names[1]), raw(names[0]),
        product("master", names, "/p/DARK/2010-05-12/some_name.fits"),
    ]
    grouping = group_sets(frames)
    assert len(grouping.complete) == 1 and not grouping.partial
    flat_set = grouping.complete[0]
    assert flat_set.set_id == set_id_for(names)
    assert flat_set.night == "2010-05-12"
    assert [r.arcfile for r in flat_set.raws] == list(names)
    assert flat_set.master.kind == "master" and flat_set.bpm.kind == "bpm"


def test_partial_set_names_what_is_missing() -> None:
    names = ("CRIRE.1.fits", "CRIRE.2.fits")
    grouping = group_sets([product("master", names, "/p/DARK/2010-05-12/m.fits"), raw(names[0])])
    assert not grouping.complete
    (partial,) = grouping.partial
    assert set(partial.missing) == {"BPM", "raw CRIRE.2.fits"}


def test_inconsistent_dit_rejects_the_set_naming_the_keyword() -> None:
    names = ("CRIRE.1.fits", "CRIRE.2.fits")
    frames = [product("master", names, "/p/m.fits"), product("bpm", names, "/p/b.fits"),
              raw(names[0], dit=10.0), raw(names[1], dit=20.0)]
    grouping = group_sets(frames)
    assert not grouping.complete
    (_, reason, members) = grouping.rejected[0]
    assert "DIT" in reason and "10.0" in reason and "20.0" in reason
    assert len(members) == 4


def test_setting_disagreement_is_named() -> None:
    other = (SETTING[0], SETTING[1], ("ESO INS LAMP1 NAME", "Emitter"))
    with pytest.raises(InconsistentSet, match="LAMP1 NAME"):
        check_consistency([raw("a"), raw("b", setting_values=other)])


def test_newest_product_wins_and_older_is_reported_superseded() -> None:
    names = ("CRIRE.1.fits",)
    old = product("master", names, "/p/old.fits")
    new = product("master", names, "/p/new.fits")
    frames = [old, new, product("bpm", names, "/p/b.fits"), raw(names[0])]
    grouping = group_sets(frames, {old.path: 100.0, new.path: 200.0})
    assert grouping.complete[0].master.path == new.path
    assert grouping.superseded[0][0].path == old.path


def test_unlisted_raw_is_reported_unused() -> None:
    grouping = group_sets([raw("CRIRE.lonely.fits")])
    assert [f.arcfile for f in grouping.unused_raws] == ["CRIRE.lonely.fits"]


def test_night_from_folder_else_from_mjd_minus_half_a_day() -> None:
    assert night_of(Path("/p/DARK/2010-05-12/x.fits"), None) == "2010-05-12"
    # MJD 55329.25 = 2010-05-13 06:00 UT, which belongs to the night of 2010-05-12.
    assert night_of(Path("/elsewhere/x.fits"), 55329.25) == "2010-05-12"
