"""The cover sheet: one page per set with keys, observation time and file names, every certified value against its
limit with its margin, the QC1 table with units, the verdict, the change since the last good set of the setting and
thumbnails of flat1..flat6."""

from __future__ import annotations

from collections.abc import Mapping

from PIL import Image

from qc.certify import sentence
from qc.numbers import QC1_DIGITS, format_number
from qc.parameters import NO_UNIT, UNITS, units
from qc.profiles import profile_named
from qc.raster import BLACK, GREY, RED, WHITE, Canvas, Colour, font
from qc.records import QC1_NAMES, CheckResult, SetResult
from qc.times import mjd_to_datetime

VERDICT_COLOURS: dict[str, Colour] = {"passed": (26, 127, 55), "failed": (198, 40, 40), "not_assessable": (178, 106, 0)}
AMBER: Colour = (178, 106, 0)
PAGE = (1286, 910)
"""A4 landscape at 110 dpi [px]."""
PICTURES = ("flat1", "flat2", "flat3", "flat4", "flat5", "flat6")
"""The pictures shown as thumbnails, in this order, side by side across the page."""
CLOSE_MARGIN = 0.10
"""A passed check within this fraction of its limit is flagged "close"."""
MUST_EXCEED = {"median_snr": True, "max_flux": False}
"""Per certified parameter: True if the value must be above its limit, False if it must not exceed it."""


def margin(check: CheckResult) -> tuple[float, float] | None:
    """Room between a checked value and its limit, (absolute, relative to the limit): positive inside the limit,
    negative beyond it; None when the value is missing."""
    if check.value is None:
        return None
    room = check.value - check.limit if MUST_EXCEED.get(check.name, False) else check.limit - check.value
    return room, room / check.limit if check.limit else float("inf")


def check_rows(result: SetResult) -> list[tuple[str, str, str, str, str, str]]:
    """The certification table: (parameter, detector, value, limit, margin, result) per check."""
    rows = []
    for check in result.certification.checks:
        unit = UNITS[check.name]
        relation = ">" if MUST_EXCEED.get(check.name, False) else "<="
        room = margin(check)
        if check.passed is None or room is None:
            outcome, room_text = "not assessable", "—"
        else:
            outcome = "FAIL" if not check.passed else "pass (close)" if room[1] < CLOSE_MARGIN else "pass"
            room_text = f"{room[0]:+.{QC1_DIGITS}g}{' ' + unit if unit else ''} ({room[1]:+.1%})"
        limit = f"{relation} {check.limit:g}" + (f" {unit}" if unit else "")
        rows.append((check.name, str(check.detector), format_number(check.value), limit, room_text, outcome))
    return rows


def observed(mjd: float | None) -> str:
    """MJD-OBS as a UTC calendar time (with the MJD), or "unknown"."""
    if mjd is None:
        return "unknown"
    return f"{mjd_to_datetime(mjd):%Y-%m-%d %H:%M:%S} UTC (MJD {mjd:.5f})"


def key_lines(result: SetResult) -> list[tuple[str, str]]:
    """Name / value lines of the key block: set keys, observation time, reference and input files."""
    lines = [
        ("night", result.night), ("observed", observed(result.mjd_obs)), ("profile", result.profile),
        ("setting", result.setting_key), ("raw type", result.raw_type), ("N raws", str(result.n_raw)),
        ("DIT x NDIT", f"{result.dit:g} s x {result.ndit}"),
    ]
    if profile_named(result.profile).window_ny_key is not None:  # windowed read-out exists on this instrument
        lines.append(("window", f"NY {result.window_ny}, STARTY {result.window_starty}"))
    lines.append(("reference", result.reference_note))
    lines.append(("last good", result.last_good.note))
    if result.input_files:
        master, bpm, *raws = result.input_files
        lines += [("master", master), ("BPM", bpm)]
        shown = raws[:4] + ([f"… and {len(raws) - 4} more"] if len(raws) > 4 else [])
        lines += [("raws" if i == 0 else "", name) for i, name in enumerate(shown)]
    return lines


def _table(canvas: Canvas, x: int, y: int, widths: list[int], rows: list[list[str]], row_h: int,
           fills: Mapping[tuple[int, int], Colour], align_right_from: int) -> int:
    """Rows of cells with grid lines (row 0 is the bold header); returns the y below the table."""
    for r, row in enumerate(rows):
        left = x
        for c, (text, width) in enumerate(zip(row, widths, strict=True)):
            box = [left, y + r * row_h, left + width, y + (r + 1) * row_h]
            canvas.draw.rectangle(box, fill=fills.get((r, c), WHITE), outline=GREY)
            right = c >= align_right_from and r > 0
            canvas.text(box[2] - 5 if right else box[0] + 5, box[1] + row_h / 2, text, size=11,
                        anchor="rm" if right else "lm", bold=r == 0 or c == 0)
            left += width
    return y + len(rows) * row_h


def change_rows(result: SetResult) -> list[list[str]]:
    """The table of the comparison with the last good set: header, ``prev_ratio_median``, ``prev_ratio_std``, then
    ``Δ <parameter>`` (current - last good, signed) for every parameter with a value on some detector; empty
    without a last good set."""
    compared = result.last_good.detectors
    if not compared:
        return []
    rows = [["since last good", *(f"det {c.detector}" for c in compared)],
            ["prev_ratio_median", *(format_number(c.ratio_median) for c in compared)],
            ["prev_ratio_std", *(format_number(c.ratio_std) for c in compared)]]
    for name in compared[0].deltas:
        deltas = [c.deltas.get(name) for c in compared]
        if any(d is not None for d in deltas):
            rows.append([f"Δ {name}", *(format_number(d, signed=True) for d in deltas)])
    return rows


def draw_cover(result: SetResult, thumbnails: Mapping[str, Image.Image]) -> Canvas:
    """The cover sheet of one set (A4 landscape), with thumbnails of the given pictures."""
    canvas = Canvas(*PAGE)
    cert = result.certification
    canvas.text(30, 20, f"{result.profile.upper()} flat QC — set {result.set_id}", size=22, bold=True)
    y = 62
    for name, value in key_lines(result):
        canvas.text(30, y, f"{name}:" if name else "", size=12, bold=True)
        canvas.text(125, y, value, size=12)
        y += 18

    names = list(QC1_NAMES) + list(result.detectors[0].bpm_bits if result.detectors else ())
    dets = [d.detector for d in result.detectors]
    rows = [["QC1", "unit", *(f"det {d}" for d in dets)]]
    unit_of = units(profile_named(result.profile))
    rows += [[name, unit_of[name] or NO_UNIT, *(format_number(d.qc1()[name]) for d in result.detectors)]
             for name in names]
    fills = {(names.index(c.name) + 1, dets.index(c.detector) + 2): (255, 215, 215)
             for c in cert.checks if c.passed is False}
    bottom = _table(canvas, 30, y + 10, [140, 80, *[95] * len(dets)], rows, 17, fills, 2)

    colour = VERDICT_COLOURS[cert.verdict]
    verdict = cert.verdict.replace("_", " ").upper()
    width = round(canvas.draw.textlength(verdict, font=font(28, True)))
    canvas.draw.rounded_rectangle([660, 20, 660 + width + 28, 66], radius=8, fill=colour)
    canvas.text(674, 43, verdict, size=28, anchor="lm", bold=True, fill=WHITE)
    checks = check_rows(result)
    table = [["certified", "det", "value", "limit", "margin", "result"], *map(list, checks)]
    fills = {(r + 1, 5): (255, 215, 215) if row[5] == "FAIL" else (255, 236, 200) if row[5] == "pass (close)"
             else WHITE for r, row in enumerate(checks)}
    y = _table(canvas, 660, 84, [100, 40, 80, 110, 140, 110], table, 19, fills, 1) + 10
    canvas.text(660, y, "margin: room left to the limit (negative: beyond it), absolute and relative to the limit",
                size=10, fill=GREY)
    y += 20
    lines = [*((f"· {sentence(note)}", AMBER) for note in cert.notes), (f"· {result.reference_note}", BLACK),
             *((f"• {sentence(reason)}", RED) for reason in cert.reasons[:6])]
    for text, colour in lines:
        canvas.text(660, y, text, size=11, fill=colour)
        y += 17
    changes = change_rows(result)
    if changes:
        y = _table(canvas, 660, y + 8, [140, *[95] * (len(changes[0]) - 1)], changes, 17, {}, 1)


    top = max(bottom, y) + 16
    width = (PAGE[0] - 40) // len(PICTURES) - 10
    size = (width, PAGE[1] - top - 28)
    for index, key in enumerate(k for k in PICTURES if k in thumbnails):
        thumb = thumbnails[key].copy()
        thumb.thumbnail(size, Image.Resampling.BOX)
        x = 20 + index * (width + 10)
        canvas.text(x + width / 2, top, key, size=12, anchor="mt", bold=True)
        canvas.image.paste(thumb, (x + (width - thumb.width) // 2, top + 18))
    return canvas
