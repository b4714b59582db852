"""How a QC1 value is written wherever a person reads it: the console report, the cover sheet, the pages."""

from __future__ import annotations

import math

QC1_DIGITS = 5
"""Significant digits of a QC1 value (fluxes and S/N of up to five figures in full, a relative rms to 1e-5)."""
MISSING = "—"
"""A value that is NULL, NaN or infinite."""


def format_number(value: float | None, signed: bool = False) -> str:
    """``value`` for a person: NULL, NaN and inf as :data:`MISSING`, a count (int) as it is, any other number with
    :data:`QC1_DIGITS` significant digits; ``signed``: a change, with its sign also when positive (``+3``)."""
    if value is None:
        return MISSING
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign}d}"
    return f"{value:{sign}.{QC1_DIGITS}g}" if math.isfinite(value) else MISSING
