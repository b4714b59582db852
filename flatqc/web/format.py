"""Values as the dashboard shows them: strict JSON (no NaN or inf), ISO 8601 and page times, and the same-site
check on redirect targets (QC1 numbers: :func:`qc.numbers.format_number`, the ``number`` filter)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from flask.json.provider import DefaultJSONProvider


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or inf float (nested in dicts, lists, tuples) replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def iso_time(value: Any) -> Any:
    """Times as ISO 8601 (the ledger's and rq's naive times are UTC: ``Z``); anything else as Flask does."""
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    return DefaultJSONProvider.default(value)


def when(value: Any) -> str:
    """A time on a page: UTC to the second (no microseconds); an rq ISO string likewise; nothing as ""."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.removesuffix("Z"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S")


def same_site_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (``/alerts?state=open``), else None: it must start with one "/"
    (not ``//host``, protocol-relative) and hold no backslash or control character (browsers read ``/\\host`` and
    ``/<tab>/host`` as ``//host``)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        return None
    return target
