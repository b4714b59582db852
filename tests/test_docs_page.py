"""The procedure's documentation page (``/docs/<QC1 table>``): generated from the code's definitions and the limits in
force, every QC1 column with its unit, linked from set pages; the README's QC1 table equals :mod:`qc.parameters`."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from flatqc.cli import main
from flatqc.db import QC1_TABLES, connect
from flatqc.settings import Settings
from flatqc.web.app import create_app
from qc import __version__
from qc.certify import sentence
from qc.parameters import NO_UNIT, QC1_PARAMETERS, UNITS, readme_table, table_columns, units
from qc.procedure import CHANGES, PICTURES, TREND_REPORT_DOCS
from qc.profiles import CRIRES, CRIRES_PLUS, PROFILES, InstrumentProfile
from qc.records import QC1_NAMES, Finding, FindingKind
from qc.reference import references_found
from qc.sets import set_id_for
from tests.test_web import chromium, open_dashboard  # noqa: F401 - chromium: the fixture, shared
from tests.tiny_set import healthy_set, write_files

ROOT = Path(__file__).resolve().parents[1]


class Cells(HTMLParser):
    """Rows of the page's tables by their ``id``: ``{row id: [cell texts]}``; and every ``id`` and ``href``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "tr":
            self._row = found.get("id")
            if self._row:
                self.rows[self._row] = []
        elif tag in ("td", "th") and self._row:
            self.rows[self._row].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row and self.rows[self._row]:
            self.rows[self._row][-1] += data.strip()


def parsed(client: FlaskClient, path: str) -> Cells:
    answer = client.get(path)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    cells = Cells()
    cells.feed(answer.get_data(as_text=True))
    return cells


def settings_for(tmp_path: Path, **given: object) -> Settings:
    """Settings of a dashboard over ``tmp_path`` (SQLite ledger, QC output, references), ``given`` on top."""
    tmp_path.mkdir(exist_ok=True)
    return Settings(db_url=f"sqlite:///{tmp_path / 'flatqc.db'}", qc_output=tmp_path / "qc",
                    run_dir=tmp_path / "run", qc_reference=tmp_path / "reference", **given)  # type: ignore[arg-type]


def client_for(tmp_path: Path, **given: object) -> FlaskClient:
    settings = settings_for(tmp_path, **given)
    return create_app(settings, connect(settings.db_url), None).test_client()


@pytest.fixture()
def empty(tmp_path: Path) -> FlaskClient:
    """A dashboard over an empty ledger with the default limits."""
    return client_for(tmp_path)


def test_a_limit_changed_in_the_settings_changes_the_page(tmp_path: Path, empty: FlaskClient) -> None:
    default = parsed(empty, "/docs/crires_flat")
    assert default.rows["limit-snr_limit"][:3] == ["snr_limit", "250", "250"]
    changed = client_for(tmp_path / "changed", crires={"snr_limit": 300, "badpix_high": 8.0})
    page = changed.get("/docs/crires_flat").get_data(as_text=True)
    assert '<b class="limit">300</b>' in page and '<b class="limit">250</b>' not in page
    cells = Cells()
    cells.feed(page)
    assert cells.rows["limit-snr_limit"][:3] == ["snr_limit", "300", "250"]
    assert "outside [0.1, 8]" in cells.rows["param-badpix"][3]  # the algorithm states the limits in force
    assert changed.get("/api/docs/crires_flat").get_json()["certification"]["snr_limit"] == 300
    assert parsed(changed, "/docs/criresp_flat").rows["limit-snr_limit"][1] == "250"  # the other profile keeps its


def test_the_limits_in_force_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATQC_CRIRES_PLUS__MAX_FLUX_LIMIT", "36000")
    cells = parsed(client_for(tmp_path), "/docs/criresp_flat")
    assert cells.rows["limit-max_flux_limit"][:3] == ["max_flux_limit", "36000", "37000"]
    assert cells.rows["limit-max_flux_limit"][3] == "FLATQC_CRIRES_PLUS__MAX_FLUX_LIMIT"


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=lambda p: p.table)
def test_every_column_of_the_table_is_on_its_page_with_a_unit(empty: FlaskClient,
                                                              profile: InstrumentProfile) -> None:
    table = QC1_TABLES[profile.table]
    in_database = [c.name for c in table.columns if c.name != "id"]
    assert [c.name for c in table_columns(profile)] == in_database
    rows = parsed(empty, f"/docs/{profile.table}").rows
    for name in in_database:
        unit = rows[f"param-{name}"][1]
        assert unit == (units(profile)[name] or NO_UNIT) and unit, name
    assert rows["param-mean_flux"][1] == "ADU/s" and rows["param-median_snr"][1] == NO_UNIT
    bits = [name for name in rows if name.startswith("param-bpm_") and name[10:] in (profile.bpm_bits or {})]
    assert len(bits) == len(profile.bpm_bits or {})


def test_other_tables_have_no_page(empty: FlaskClient) -> None:
    assert empty.get("/docs/crires_dark").status_code == 404
    answer = empty.get("/api/docs/crires_dark")
    assert answer.status_code == 404 and answer.is_json


def test_the_page_tells_the_seed_sections_from_the_code(empty: FlaskClient) -> None:
    doc = empty.get("/api/docs/criresp_flat").get_json()
    assert doc["version"] == __version__ == CHANGES[-1].version
    assert doc["changes"][0]["text"] == CHANGES[-1].text  # newest first
    assert {"keyword": "ESO DET SEQ1 DIT", "use": "DIT [s]"} in doc["keywords"]
    assert not any(k["keyword"] == "ESO DET WINDOW NY" for k in doc["keywords"])  # CRIRES+ reads no window
    assert any("CAL_FLAT_MASTER" in i["recognised by"] for i in doc["inputs"])
    assert [p["name"] for p in doc["pictures"]] == ["cover", "flat1", "flat2", "flat3", "flat4", "flat5", "flat6"]
    assert [r["name"] for r in doc["trend_reports"]] == list(TREND_REPORT_DOCS)
    assert doc["trend_limits"] == [] and doc["references"] == []
    median_snr = next(c for c in doc["columns"] if c["name"] == "median_snr")
    assert "the bottom 40 rows of the full frame and a 4-pixel edge on every side" in median_snr["algorithm"]
    assert "CRIRES+: only in-order pixels" in median_snr["algorithm"]
    crires = empty.get("/api/docs/crires_flat").get_json()
    assert crires["trend_limits"][0] == {"setting_key": "1090.400_25.000_Halogen", "mean_flux": [200.0, 950.0],
                                         "rms_master": [0.08, 0.13]}
    snr = next(c for c in crires["columns"] if c["name"] == "median_snr")["algorithm"]
    assert "columns 0..255 of detector 1 and 768..1023 of detector 4" in snr and "CRIRES:" not in snr


def test_references_found_in_the_reference_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reference"
    folder.mkdir()
    for name in ("CRIRES_FLAT_2199.100_15.000_Halogen.fits", "CRIRES_BPM_2199.100_15.000_Halogen.fits",
                 "CRIRES_FLAT_2340.000_25.000_Halogen.fits", "CRIRESP_FLAT_K2166_w_0.2.fits", "notes.txt"):
        (folder / name).write_bytes(b"")
    found = references_found(folder, CRIRES)
    assert [(r.setting_key, r.master is not None, r.bpm is not None) for r in found] == [
        ("2199.100_15.000_Halogen", True, True), ("2340.000_25.000_Halogen", True, False)]
    assert [r.setting_key for r in references_found(folder, CRIRES_PLUS)] == ["K2166_w_0.2"]
    doc = client_for(tmp_path).get("/api/docs/crires_flat").get_json()
    by_key = {r["setting_key"]: r for r in doc["references"]}
    assert by_key["2340.000_25.000_Halogen"] == {"setting_key": "2340.000_25.000_Halogen", "expected": False,
                                                 "master": "CRIRES_FLAT_2340.000_25.000_Halogen.fits", "bpm": None}
    assert by_key["1090.400_25.000_Halogen"]["expected"] and by_key["1090.400_25.000_Halogen"]["master"] is None


def test_readme_qc1_table_equals_the_module() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^\| QC1 name \|.*?(?=\n\n)", readme, flags=re.MULTILINE | re.DOTALL)
    assert match is not None, "README has no QC1 table"
    assert match.group(0) == readme_table(), "regenerate it with qc.parameters.readme_table()"
    assert list(QC1_PARAMETERS) == list(QC1_NAMES)


def test_units_of_sentences_come_from_the_module() -> None:
    failed = Finding(FindingKind.CERTIFICATION, "max_flux", 2, 12000.0, ">", 10000.0)
    assert sentence(failed) == f"detector 2: max_flux = 12000.0 {UNITS['max_flux']} > 10000 {UNITS['max_flux']}"
    snr = Finding(FindingKind.CERTIFICATION, "median_snr", 1, 212.34, "<=", 250.0)
    assert sentence(snr) == "detector 1: median_snr = 212.3 <= 250"


@pytest.fixture()
def processed(tmp_path: Path) -> dict:
    """One tiny CRIRES set through ``flatqc process`` (pictures drawn), and a dashboard over it."""
    files = healthy_set(np.random.default_rng(5))
    write_files(files, tmp_path)
    url = f"sqlite:///{tmp_path / 'flatqc.db'}"
    result = CliRunner().invoke(main, ["process", str(tmp_path / "dfs_product"), "--db", url, "--out",
                                       str(tmp_path / "qc"), "--raw", str(tmp_path / "raw"), "--json"])
    assert result.exit_code == 0, result.output
    return {"client": client_for(tmp_path), "settings": settings_for(tmp_path),
            "set_id": set_id_for([f.name for f in files if f.kind == "raw"])}


def test_set_page_links_reach_the_docs_anchors(processed: dict) -> None:
    client, set_id = processed["client"], processed["set_id"]
    set_page = parsed(client, f"/sets/{set_id}")
    docs_links = [h for h in set_page.hrefs if h.startswith("/docs/")]
    assert "/docs/crires_flat" in docs_links  # the "procedure" link
    anchors = {h.partition("#")[2] for h in docs_links if "#" in h}
    assert {f"param-{name}" for name in QC1_NAMES} <= anchors
    assert {f"plot-{p.name}" for p in PICTURES} <= anchors
    assert {h.partition("#")[0] for h in docs_links} == {"/docs/crires_flat"}
    docs = parsed(client, "/docs/crires_flat")
    assert anchors <= docs.ids
    thumbnails = [h for h in docs.hrefs if h.startswith("/files/")]
    assert sorted(Path(h).name for h in thumbnails) == sorted(f"{p.name}.png" for p in PICTURES)
    for href in thumbnails:
        with client.get(href) as picture:  # a file answer: closed, or its file stays open
            assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert f"/sets/{set_id}" in docs.hrefs  # the newest set the thumbnails belong to


def test_docs_page_from_a_set_page_in_chromium(chromium, processed: dict) -> None:  # noqa: ANN001, F811
    """The procedure link and a parameter link of a set page open the page at their place, without a script or
    console error (the dashboard has no favicon: that 404 is not the page's), and every thumbnail loads."""
    settings = processed["settings"]
    errors: list[str] = []
    for page in open_dashboard(chromium, settings, connect(settings.db_url), None):
        page.on("console", lambda message: errors.append(f"{message.text} {message.location['url']}")
                if message.type == "error" and not message.location["url"].endswith("/favicon.ico") else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"/sets/{processed['set_id']}")
        page.get_by_role("link", name="median_snr").click()
        page.wait_for_url("**/docs/crires_flat#param-median_snr")
        assert page.locator("#param-median_snr td.unit").inner_text() == NO_UNIT
        assert page.locator("#param-median_snr").is_visible()
        page.go_back()
        page.get_by_role("link", name="procedure").click()
        page.wait_for_url("**/docs/crires_flat")
        page.wait_for_load_state("load")
        loaded = page.eval_on_selector_all("img.thumb", "images => images.map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * len(PICTURES)
        assert page.locator("#limit-snr_limit td.value").inner_text() == "250"
    assert errors == []
