"""Trends: QC1 parameters of the HealthCheck reports over time, per setting, with their limits."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, abort, jsonify, render_template, request, url_for

from flatqc.db import QC1_TABLES
from flatqc.trend_data import (
    AXIS_LABELS,
    COUNTS,
    TREND_COLUMNS,
    TREND_REPORTS,
    SetSeries,
    load_trends,
    report_applies,
    setting_keys,
)
from flatqc.web.svg import trend_svg
from flatqc.web.views import backends, page_and_api, wants_json
from qc.profiles import PROFILES, profile_for_table

blueprint = Blueprint("trends", __name__)


@page_and_api(blueprint, "/trends")
def trends_page() -> Any:
    """One chart per report, setting and parameter of an instrument's table, over the last ``days`` (or all)."""
    web = backends()
    table_name = request.args.get("table", "crires_flat")
    if table_name not in QC1_TABLES:
        abort(400, f"table must be one of {sorted(QC1_TABLES)}")
    days_arg = request.args.get("days", "90")
    if days_arg != "all" and not days_arg.isdigit():
        abort(400, "days must be a whole number or 'all'")
    key = request.args.get("key") or None
    table = QC1_TABLES[table_name]
    profile = profile_for_table(table_name)
    config = web.settings.qc_config(profile.name)
    trends = load_trends(web.engine, table, TREND_COLUMNS, key, None if days_arg == "all" else int(days_arg))
    charts: list[dict[str, Any]] = [{"report": report, "key": k, "parameter": parameter,
               "limits": config.trend_limit(k, parameter), "series": trends[k][parameter]}
              for report, parameters in TREND_REPORTS.items() for k in sorted(trends)
              if report_applies(report, k) for parameter in parameters]
    if wants_json():
        return jsonify([c | {"series": [series_json(s) for s in c["series"]]} for c in charts])
    for chart in charts:
        chart["svg"] = trend_svg(chart["series"], chart["limits"], f"{chart['parameter']} ({chart['key']})",
                                 AXIS_LABELS[chart["parameter"]], chart["parameter"] in COUNTS,
                                 link=lambda set_id: url_for("sets.set_page", set_id=set_id))
    instruments = [(p.table, p.title) for p in PROFILES.values()]
    return render_template("trends.html", charts=charts, days=days_arg, table=table_name, key=key,
                           keys=setting_keys(web.engine, table), instruments=instruments, instrument=profile.title,
                           reports=list(TREND_REPORTS))


def series_json(series: SetSeries) -> dict[str, Any]:
    """One detector's trend for the API: times, values, sets and scores of its points, and per point the band and
    fixed bounds it was scored against (``null`` where none)."""
    def numbers(values: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else v for v in values.tolist()]

    band, fixed = series.band, series.fixed
    return {"detector": series.label, "mjd_obs": series.mjd.tolist(), "values": numbers(series.values),
            "set_ids": list(series.set_ids), "scores": list(series.point_scores()),
            "band": None if band is None or band.centre is None else {
                "low": numbers(band.low), "centre": numbers(band.centre), "high": numbers(band.high)},
            "fixed": None if fixed is None else {"low": numbers(fixed.low), "high": numbers(fixed.high)}}
