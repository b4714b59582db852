"""``flatqc thresholds``: the dated files of a folder and what is in force for a night; broken files named by file,
line and key (exit status 1, no traceback); the file parser never fails any other way (Hypothesis, on any text and
on any TOML document)."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from flatqc.cli import main
from flatqc.threshold_files import ALL_PARAMETERS
from qc.profiles import PROFILES
from qc.thresholds import OPTIONAL, REQUIRED, ThresholdFileError, parse_threshold_file

MAY = """valid_from = 2010-05-01
# fixed limits of the new lamp
[[threshold]]
parameter = "mean_flux"
kind = "fixed"
low = 200.0
high = 950.0
severity = "warn"

[[threshold]]
parameter = "median_snr"
kind = "fixed"
profile = "crires"
low = 250
"""
JUNE = """valid_from = 2010-06-01
[[threshold]]
parameter = "rms_master"
kind = "statistical"
setting = "1090.400_*"
detector = 3
window_days = 30
min_points = 4
"""
MAY_LINES = ["mean_flux fixed [200, 950] warn", "median_snr fixed [250, inf] fail (crires)"]
JUNE_LINES = ["rms_master statistical 30 d, >= 4 points, warn > 3 spread, fail > 5 spread "
              "(1090.400_*, detector 3)"]


def thresholds(folder: Path | None, *args: str) -> Result:
    """``flatqc thresholds ARGS`` with ``FLATQC_THRESHOLDS_DIR`` = ``folder`` (None: unset)."""
    env = {"FLATQC_THRESHOLDS_DIR": None if folder is None else str(folder), "FLATQC_CONFIG": None,
           "FLATQC_SETTINGS_JSON": None}
    return CliRunner().invoke(main, ["thresholds", *args], env=env)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "thresholds"
    made.mkdir()
    (made / "may.toml").write_text(MAY)
    (made / "june.toml").write_text(JUNE)
    (made / "notes.txt").write_text("not a threshold file")
    return made


@pytest.mark.parametrize(("night", "in_force", "lines"), [
    ("2010-04-30", "built-in", None),
    ("2010-05-01", "may.toml", MAY_LINES),
    ("2010-05-31", "may.toml", MAY_LINES),
    ("2010-06-01", "june.toml", JUNE_LINES),
    ("2031-01-01", "june.toml", JUNE_LINES),
])
def test_the_file_in_force_switches_at_valid_from(folder: Path, night: str, in_force: str,
                                                  lines: list[str] | None) -> None:
    shown = thresholds(folder, "--night", night, "--json")
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.stdout)
    assert listed["folder"] == str(folder) and listed["night"] == night and listed["in_force"] == in_force
    assert [(f["name"], f["valid_from"], f["sha256"], f["in_force"]) for f in listed["files"]] == [
        ("built-in", "1900-01-01", None, in_force == "built-in"),
        ("may.toml", "2010-05-01", hashlib.sha256(MAY.encode()).hexdigest(), in_force == "may.toml"),
        ("june.toml", "2010-06-01", hashlib.sha256(JUNE.encode()).hexdigest(), in_force == "june.toml")]
    if lines is not None:
        assert [t["text"] for t in listed["thresholds"]] == lines
        assert [t["line"] for t in listed["thresholds"]] == ([3, 10] if in_force == "may.toml" else [2])
    else:  # the contract's limits: section 5 as fail, section 7 as warn
        assert "max_flux fixed [-inf, 10000] fail (crires)" in [t["text"] for t in listed["thresholds"]]
        assert "mean_flux fixed [200, 950] warn (crires, 1090.400_25.000_Halogen)" in [
            t["text"] for t in listed["thresholds"]]


def test_the_tables_mark_the_file_in_force(folder: Path) -> None:
    shown = thresholds(folder, "--night", "2010-05-20")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert f"threshold folder: {folder}" in text
    may = next(line for line in text.splitlines() if "may.toml" in line and "2010-05-01" in line)
    june = next(line for line in text.splitlines() if "june.toml" in line)
    assert hashlib.sha256(MAY.encode()).hexdigest()[:12] in may and may.rstrip(" │").endswith("yes")
    assert not june.rstrip(" │").endswith("yes")
    assert "in force 2010-05-20: may.toml, 2 thresholds" in text
    assert all(line in text for line in MAY_LINES)


def test_without_a_folder_the_built_in_thresholds_are_in_force_today() -> None:
    shown = thresholds(None, "--json")
    listed = json.loads(shown.stdout)
    assert listed["folder"] == "none: built-in" and listed["in_force"] == "built-in"
    assert listed["night"] == datetime.now(UTC).date().isoformat()
    assert "threshold folder: none: built-in" in thresholds(None).stdout


HEADER = "valid_from = 2010-05-01\n[[threshold]]\nparameter = \"mean_flux\"\n"
BROKEN = [
    # (text, where the message points: "file, line N, key 'k'", a word of the problem)
    ("valid_from = 2010-05-01\n[[threshold]\nparameter = 1\n", "bad.toml, line 2", "not valid TOML"),
    (HEADER + "kind = \"fixed\"\nhigh = 950.0\ncolour = \"red\"\n", "bad.toml, line 6, key 'colour'", "unknown key"),
    (HEADER + "kind = \"fixed\"\nlow = \"200\"\n", "bad.toml, line 5, key 'low'", "must be a number"),
    (HEADER + "kind = \"statistical\"\nmin_points = 2.5\n", "bad.toml, line 5, key 'min_points'",
     "must be an integer"),
    ("[[threshold]]\nparameter = \"mean_flux\"\nkind = \"fixed\"\nhigh = 1\n", "bad.toml, key 'valid_from'",
     "missing"),
    ("valid_from = \"2010-05-01\"\n", "bad.toml, line 1, key 'valid_from'", "must be a TOML date"),
    (HEADER + "kind = \"fixed\"\nlow = 950\n\nhigh = 200\n", "bad.toml, line 7, key 'high'", "below low"),
    (HEADER + "kind = \"statistical\"\nk_warn = 6\n", "bad.toml, line 5, key 'k_warn'", "must not exceed k_fail"),
    ("valid_from = 2010-05-01\n[[threshold]]\nparameter = \"mean_fluxx\"\nkind = \"fixed\"\nhigh = 1\n",
     "bad.toml, line 3, key 'parameter'", "is not a QC1 parameter"),
]


@pytest.mark.parametrize(("text", "where", "problem"), BROKEN)
def test_a_broken_file_is_named_by_file_line_and_key(folder: Path, text: str, where: str, problem: str) -> None:
    (folder / "bad.toml").write_text(text)
    shown = thresholds(folder, "--night", "2010-05-20")
    assert shown.exit_code == 1
    assert shown.stderr.startswith(f"Error: {where}: ") and problem in shown.stderr, shown.stderr
    assert "Traceback" not in shown.output and shown.stdout == ""


def test_two_files_of_one_date_and_a_file_that_is_not_text_are_broken(folder: Path) -> None:
    (folder / "may-again.toml").write_text(MAY)
    shown = thresholds(folder)
    assert shown.exit_code == 1 and "key 'valid_from': 2010-05-01 is the valid_from of " in shown.stderr
    (folder / "may-again.toml").write_bytes(b"valid_from = 2010-05-02\n# caf\xe9\n")
    shown = thresholds(folder)
    assert shown.exit_code == 1 and "Error: may-again.toml: not UTF-8 text" in shown.stderr


def test_a_threshold_folder_that_is_not_there(tmp_path: Path) -> None:
    shown = thresholds(tmp_path / "nowhere")
    assert shown.exit_code == 1 and "FLATQC_THRESHOLDS_DIR is not a folder" in shown.stderr


# -- the parser never fails any other way --------------------------------------------------------------------------
def parse(text: str) -> None:
    """Parse ``text``; a ThresholdFileError is the one way to refuse it, and it names the file."""
    try:
        parse_threshold_file("any.toml", text, ALL_PARAMETERS, PROFILES)
    except ThresholdFileError as exc:
        assert str(exc).startswith("any.toml") and exc.problem


@settings(max_examples=400, deadline=None, database=None)
@given(text=st.text())
def test_any_text_parses_or_is_refused_with_a_threshold_file_error(text: str) -> None:
    parse(text)


KEYS = (*OPTIONAL, "colour")
WORDS = st.sampled_from(("fixed", "statistical", "warn", "fail", "crires", "crires+", "harps", "*", "1090.400_*",
                         *ALL_PARAMETERS[:4]))
VALUES = st.one_of(st.integers(-10, 10**4), st.floats(), st.booleans(), st.text(max_size=6), WORDS, st.dates(),
                   st.datetimes(), st.lists(st.integers(), max_size=2))


def toml_value(value: Any) -> str:
    """A TOML literal of ``value`` (a plain serializer, independent of the parser under test)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string (but for DEL)


def usually(draw: st.DrawFn) -> bool:
    """True nine times in ten: most documents get far into the checks, some stop early."""
    return draw(st.integers(0, 9)) > 0


def likely(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Any:
    """Usually one of ``values``, else any value."""
    return draw(values if usually(draw) else VALUES)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A TOML document near the format: usually a date ``valid_from`` (else something else, or nothing), rarely an
    unknown top key, and tables ``[[threshold]]`` usually with a parameter and a kind, then known and unknown keys
    with values of any type."""
    lines = []
    if usually(draw):
        lines.append(f"valid_from = {toml_value(likely(draw, st.dates()))}")
    if not usually(draw):
        lines.append(f"note = {toml_value(draw(VALUES))}")
    for table in draw(st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6), max_size=4)):
        lines.append("[[threshold]]")
        if usually(draw):
            lines.append(f"parameter = {toml_value(likely(draw, st.sampled_from(ALL_PARAMETERS)))}")
        if usually(draw):
            lines.append(f"kind = {toml_value(likely(draw, st.sampled_from(('fixed', 'statistical'))))}")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items() if key not in REQUIRED]
    return "\n".join(lines) + "\n"


@settings(max_examples=500, deadline=None, database=None)
@given(text=documents())
def test_any_toml_document_parses_or_is_refused_with_a_threshold_file_error(text: str) -> None:
    parse(text)
