"""Property: whatever a file's headers and pixels say, ``flatqc process`` never crashes, every set ends with QC1 rows
and a verdict or a rejection with a reason, and every page and API answer renders it (200, or 404 for what does not
exist).

Hypothesis mutates a tiny hand-made set (4 windowed rows per detector, ~200 kB): header values and types, missing
keywords, NaN / inf / zero / huge / constant pixels, wrong shapes, missing extensions, BPM values, FITS scaling
keywords. The number of examples is bounded so the test stays well under a minute.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flatqc.cli import main
from flatqc.db import connect, crires_flat, sets
from flatqc.settings import Settings
from flatqc.web.app import create_app
from qc.records import QC1_NAMES
from qc.sets import set_id_for
from tests.tiny_set import NIGHT, NY, TinyFile, healthy_set, write_files

MAX_EXAMPLES = 30
"""Bounded for CI: a processed example costs ~1.5 s (six PNGs), a rejected one a fraction of that."""
TARGETS = ("raw0", "raw1", "raw2", "master", "bpm")
HEADER_KEYS = ("ESO DET DIT", "ESO DET NDIT", "ESO DET WINDOW NY", "ESO DET WINDOW STARTY", "ESO INS WLEN CWLEN",
               "ESO INS BAFFLE POS", "ESO INS LAMP1 NAME", "MJD-OBS", "ARCFILE")
DELETE = "<delete>"
FILL_VALUES = (math.nan, math.inf, -math.inf, 0.0, 7.0, 3e38, -5000.0, 1.0, 2.0, -1.0)


@dataclass(frozen=True)
class Mutation:
    what: str
    """``header``, ``fill``, ``shape``, ``drop``, ``scale`` or ``blank``."""
    target: str
    detector: int = 1
    key: str = ""
    value: Any = None
    where: str = "all"
    """``all``, ``row`` or ``pixel`` for fills."""


def header_mutations() -> st.SearchStrategy[Mutation]:
    values = st.one_of(st.just(DELETE), st.sampled_from(["abc", "", True, False]), st.integers(-3, 600),
                       st.floats(-1e300, 1e300, allow_nan=False), st.sampled_from([1e-320, 0.0, 0.5, 2.0]))
    return st.builds(Mutation, what=st.just("header"), target=st.sampled_from(TARGETS),
                     key=st.sampled_from(HEADER_KEYS), value=values)


def data_mutations() -> st.SearchStrategy[Mutation]:
    detectors = st.integers(1, 4)
    fills = st.builds(Mutation, what=st.just("fill"), target=st.sampled_from(TARGETS), detector=detectors,
                      value=st.sampled_from(FILL_VALUES), where=st.sampled_from(["all", "row", "pixel"]))
    shapes = st.builds(Mutation, what=st.just("shape"), target=st.sampled_from(TARGETS), detector=detectors,
                       value=st.sampled_from([(NY - 1, 1024), (NY + 1, 1024), (NY, 512), (NY, 2048)]))
    drops = st.builds(Mutation, what=st.just("drop"), target=st.sampled_from(TARGETS), detector=detectors)
    scales = st.builds(Mutation, what=st.just("scale"), target=st.sampled_from(TARGETS), detector=detectors,
                       value=st.sampled_from([(0.5, 10000.0), (2.0**-10, 1.0), (1.0, 32768.0), (0.25, 0.0),
                                              ("x", 0.0), (0.0, 0.0), (1.0, "y")]))
    blanks = st.builds(Mutation, what=st.just("blank"), target=st.sampled_from(TARGETS), detector=detectors,
                       value=st.sampled_from([-32768, 32767, 0, 1.5]))
    return st.one_of(fills, shapes, drops, scales, blanks)


def as_int16(physical: np.ndarray, bscale: float, bzero: float) -> np.ndarray:
    """Stored int16 for ``physical`` under BSCALE/BZERO (clipped to the int16 range; NaN stored as -32768)."""
    stored = np.nan_to_num((physical.astype(np.float64) - bzero) / bscale, nan=-32768, posinf=32767, neginf=-32768)
    return np.clip(np.round(stored), -32768, 32767).astype(np.int16)


def apply(files: list[TinyFile], mutation: Mutation) -> None:
    """Change the TinyFile named by ``mutation.target`` in place."""
    kinds = {"master": "master", "bpm": "bpm"}
    candidates = [f for f in files if f.kind == kinds.get(mutation.target, "raw")]
    tiny = candidates[int(mutation.target[3:]) if mutation.target.startswith("raw") else 0]
    index = mutation.detector - 1
    chip = tiny.chips[index]
    if mutation.what == "header":
        if mutation.value == DELETE:
            tiny.cards.pop(mutation.key, None)
        else:
            tiny.cards[mutation.key] = mutation.value
    elif chip is None:
        return  # the extension was dropped by an earlier mutation
    elif mutation.what == "fill":
        changed = chip.astype(np.float32)
        region = {"all": np.s_[:, :], "row": np.s_[1, :], "pixel": np.s_[2, 5]}[mutation.where]
        changed[region] = mutation.value
        tiny.chips[index] = changed
    elif mutation.what == "shape":
        tiny.chips[index] = np.resize(chip, mutation.value)
    elif mutation.what == "drop":
        tiny.chips[index] = None
    elif mutation.what == "scale":
        bscale, bzero = mutation.value
        if isinstance(bscale, float) and isinstance(bzero, float) and bscale != 0:
            tiny.chips[index] = as_int16(chip, bscale, bzero)
        tiny.chip_cards[index] = tiny.chip_cards[index] | {"BSCALE": bscale, "BZERO": bzero}
    elif mutation.what == "blank":
        stored = chip if chip.dtype.kind in "iu" else as_int16(chip, 1.0, 0.0)
        if isinstance(mutation.value, int):
            stored = stored.copy()
            stored[0, :3] = mutation.value
        tiny.chips[index] = stored
        tiny.chip_cards[index] = tiny.chip_cards[index] | {"BLANK": mutation.value}


def must_not_pass(mutation: Mutation) -> bool:
    """Mutations that leave no meaningful QC1 values: the set must not end with a verdict."""
    if mutation.what in ("shape", "drop"):
        return True
    if mutation.what != "fill":
        return False
    value, everywhere = mutation.value, mutation.where == "all"
    if math.isinf(value):
        return True
    if mutation.target == "bpm":
        return math.isnan(value) or value not in (0.0, 1.0) or everywhere and value == 1.0
    if mutation.target == "master":
        return everywhere and (math.isnan(value) or value <= 0)
    return everywhere  # a raw all NaN, all zero or constant


BASE = healthy_set(np.random.default_rng(11))
SET_ID = set_id_for([f.name for f in BASE if f.kind == "raw"])


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN / Infinity (which browsers' JSON.parse reject)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"invalid JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def check_pages(app_settings: Settings, stored: bool) -> None:
    """Every page and API answer of the night and the set: 200 when the set was recorded, else 404 (JSON under
    /api); the front page and the pages of things that never existed too."""
    engine = connect(app_settings.db_url)
    client = create_app(app_settings, engine, None).test_client()
    for path in ("/", "/api/nights"):
        answer = client.get(path)
        assert answer.status_code == 200, path
    strict_json(client.get("/api/nights").get_data(as_text=True))
    expected = 200 if stored else 404
    for path in (f"/nights/{NIGHT}", f"/sets/{SET_ID}", "/nights/2099-01-01", "/sets/0000000000000000"):
        code = expected if "2099" not in path and "0000" not in path else 404
        assert client.get(path).status_code == code, path
        answer = client.get(f"/api{path}")
        assert answer.status_code == code, f"/api{path}"
        body = strict_json(answer.get_data(as_text=True))
        assert code == 200 or body["status"] == 404
    if stored:
        page = client.get(f"/sets/{SET_ID}").get_data(as_text=True)
        assert "None" not in page.split("<main>", 1)[1], "a NULL rendered as None"
    engine.dispose()


@pytest.mark.slow  # MAX_EXAMPLES runs of `flatqc process` and the pages
@pytest.mark.filterwarnings("ignore:Invalid value for 'BLANK'")  # astropy's word on a BLANK of 1.5
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.one_of(header_mutations(), data_mutations()), min_size=0, max_size=3))
def test_process_and_pages_survive_any_mutation(mutations: list[Mutation]) -> None:
    files = copy.deepcopy(BASE)
    for mutation in mutations:
        apply(files, mutation)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_files(files, root)
        db_url = f"sqlite:///{root / 'qc1.db'}"
        result = CliRunner().invoke(main, ["process", str(root / "dfs_product"), "--db", db_url,
                                           "--out", str(root / "qc"), "--raw", str(root / "dfs_raw"),
                                           "--reference", str(root / "reference"), "--json"])
        assert result.exception is None and result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        done = [s for s in report["sets"] if s["set_id"] == SET_ID]
        rejected = [s for s in report["rejected_sets"] if s["set_id"] == SET_ID]
        incomplete = [s for s in report["incomplete_sets"] if s["set_id"] == SET_ID]
        assert len(done) + len(rejected) + len(incomplete) == 1, report
        assert all(note["reason"] for note in report["files"])
        names = [f.name for f in files]
        event("done" if done else "rejected set" if rejected else "incomplete set")
        engine = connect(db_url)
        with engine.connect() as conn:
            row = conn.execute(select(sets).where(sets.c.set_id == SET_ID)).first()
            qc1 = conn.execute(select(crires_flat).where(crires_flat.c.set_id == SET_ID)).all()
        engine.dispose()
        if done:
            assert not any(must_not_pass(m) for m in mutations), done
            assert done[0]["verdict"] in ("passed", "failed", "not_assessable")
            assert row.state == "done" and row.verdict == done[0]["verdict"] and len(qc1) == 4
            for qc_row in qc1:
                for name in QC1_NAMES:
                    value = qc_row._mapping[name]
                    assert value is None or math.isfinite(value), (name, value)
        elif rejected:
            reason = rejected[0]["reason"]
            assert not reason.startswith("not processed"), f"an unexpected error, not a reason: {reason}"
            assert reason and not qc1
            assert row is not None and row.state == "rejected" and row.reason == reason  # a page to show it on
            if "disagree" not in reason:  # members that disagree are named by what differs, the rest by file
                assert any(n in reason for n in names) or f"set {SET_ID}" in reason, reason
        else:
            assert row is None and incomplete[0]["missing"]
            unused = [n for n in report["files"] if Path(n["path"]).name in names]
            assert unused, "an incomplete set must name the file that was not taken"
        check_pages(Settings(db_url=db_url, qc_output=root / "qc", web_secret_key="test"), row is not None)
