"""The procedure's documentation page per QC1 table (``/docs/crires_flat``, ``/docs/criresp_flat``): the seed's
qcDocu sections, generated from the code's definitions (:mod:`qc.parameters`, :mod:`qc.procedure`, the instrument
profile) and the limits in force (the running settings), with the pictures of the newest set."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from flask import Blueprint, abort, jsonify, render_template

from flatqc.settings import Settings
from flatqc.trend_data import TREND_REPORTS
from flatqc.web import queries
from flatqc.web.views import backends, page_and_api, wants_json
from qc import __version__
from qc.certify import TREND_PARAMETERS
from qc.config import QCConfig
from qc.parameters import UNITS, algorithm, table_columns
from qc.procedure import (
    CHANGES,
    COMMENTS,
    INPUT_KEYWORDS,
    NAME,
    PICTURES,
    PURPOSE,
    TREND_REPORT_DOCS,
)
from qc.profiles import InstrumentProfile, profile_for_table
from qc.reference import references_found

blueprint = Blueprint("docs", __name__)

SHOWN_APART = ("reference_keys", "trend_limits")
"""QCConfig fields with a section of their own on the page (not in the table of limits)."""


@page_and_api(blueprint, "/docs/<table>")
def docs_page(table: str) -> Any:
    """The documentation of the procedure writing QC1 table ``table``; 404 for any other name."""
    try:
        profile = profile_for_table(table)
    except ValueError as error:
        abort(404, str(error))
    web = backends()
    doc = procedure_doc(profile, web.settings) | {"latest": queries.newest_set(web.engine, table)}
    if wants_json():
        return jsonify(doc)
    return render_template("docs.html", **doc)


def procedure_doc(profile: InstrumentProfile, settings: Settings) -> dict[str, Any]:
    """Everything the page says about ``profile``'s procedure under ``settings``, as data."""
    config = settings.qc_config(profile.name)
    return {
        "name": NAME, "table": profile.table, "instrument": profile.title, "version": __version__,
        "changes": [asdict(c) for c in reversed(CHANGES)], "purpose": PURPOSE,
        "inputs": inputs(profile, settings), "keywords": keywords(profile),
        "columns": [asdict(c) | {"unit_label": c.unit_label, "algorithm": algorithm(c, profile, config)}
                    for c in table_columns(profile)],
        "limits": limits(profile, config),
        "certification": {"snr_limit": config.snr_limit, "max_flux_limit": config.max_flux_limit,
                          "min_flats_for_snr": config.min_flats_for_snr,
                          "healthcheck_only_settings": list(config.healthcheck_only_settings)},
        "trend_reports": [{"name": name, "shows": TREND_REPORT_DOCS[name], "parameters": list(columns)}
                          for name, columns in TREND_REPORTS.items()],
        "trend_limits": [{"setting_key": key} | {p: list(getattr(ranges, p)) for p in TREND_PARAMETERS}
                         for key, ranges in sorted(config.trend_limits.items())],
        "trend_units": {p: UNITS[p] for p in TREND_PARAMETERS},
        "pictures": [asdict(p) for p in PICTURES],
        "references": references(profile, config, settings),
        "comments": list(COMMENTS),
    }


def inputs(profile: InstrumentProfile, settings: Settings) -> list[dict[str, str]]:
    """The files a set is made of and how each is recognised."""
    prefix = profile.reference_prefix
    return [
        {"kind": "master flat", "recognised by": f"PRO CATG = {profile.master_catg}"},
        {"kind": "bad-pixel map", "recognised by": f"PRO CATG = {profile.bpm_catg}"},
        {"kind": "raw flats", "recognised by": "DPR CATG, TYPE, TECH = " + ", ".join(profile.raw_dpr)},
        {"kind": "reference master and BPM",
         "recognised by": f"{prefix}_FLAT_<setting key>.fits and {prefix}_BPM_<setting key>.fits in "
                          f"QC_REFERENCE ({settings.qc_reference})"},
    ]


def keywords(profile: InstrumentProfile) -> list[dict[str, str]]:
    """The header keywords the procedure reads, with what for."""
    own = [(profile.dit_key, "DIT [s]"), (profile.ndit_key, "NDIT"),
           *((c.keyword, f"setting (column {c.name})") for c in profile.setting_columns),
           (profile.window_ny_key, "rows read out (windowed read-out)"),
           (profile.window_starty_key, "first row of the window (1-based)"),
           ("EXTNAME", "detector extensions " + ", ".join(profile.chip_extname(d) for d in profile.detectors))]
    return [{"keyword": k, "use": use} for k, use in (*INPUT_KEYWORDS, *own) if k is not None]


def limits(profile: InstrumentProfile, config: QCConfig) -> list[dict[str, Any]]:
    """Each limit and convention of ``config`` with its value in force, its default and the setting that changes
    it."""
    default = profile.default_config
    shown = [f.name for f in fields(config) if f.name not in SHOWN_APART]
    return [{"name": name, "value": getattr(config, name), "default": getattr(default, name),
             "shown": _shown(getattr(config, name)), "default_shown": _shown(getattr(default, name)),
             "changed": getattr(config, name) != getattr(default, name),
             "setting": f"FLATQC_{profile.settings_name.upper()}__{name.upper()}"} for name in shown]


def _shown(value: Any) -> str:
    """A limit as the page shows it: numbers without trailing zeros, a list comma-separated (empty: none)."""
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def references(profile: InstrumentProfile, config: QCConfig, settings: Settings) -> list[dict[str, Any]]:
    """Reference files found in QC_REFERENCE for ``profile``, and the expected keys (``reference_keys``) even when
    their files are missing."""
    found = {r.setting_key: r for r in references_found(settings.qc_reference, profile)}
    keys = sorted(found.keys() | set(config.reference_keys))
    return [{"setting_key": key, "expected": key in config.reference_keys,
             "master": found[key].master if key in found else None,
             "bpm": found[key].bpm if key in found else None} for key in keys]
