"""Comparison with the last good set of the same setting (contract 9): ``M / M_prev`` on the rows both masters read,
and the change of every QC1 parameter.

Pure: which set is the last good one is a question for the ledger, asked by the caller, who hands in that set's
master (path and read-out window) and QC1 values as a :class:`LastGoodSet`. Reading one more master per set is the
whole cost: the last good set's raws are never read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qc.errors import FlatQCError
from qc.fitsio import check_structure, open_fits, read_chip
from qc.profiles import InstrumentProfile
from qc.records import DetectorQC, LastGoodResult, PrevComparison

if TYPE_CHECKING:
    from astropy.io import fits

QC1Values = Mapping[str, float | int | None]


@dataclass(frozen=True)
class LastGoodSet:
    """The last good set of a set as the ledger records it: what comparing with it needs."""

    set_id: str
    night: str
    master: Path
    """Its master flat, the file its QC1 rows were computed from."""
    window_ny: int
    window_starty: int
    """Read-out window of that master: NY rows from STARTY (1-based, full-detector rows)."""
    qc1: Mapping[int, QC1Values]
    """Its QC1 values by detector."""
    unusable: str | None = None
    """Why its master cannot be compared (gone, other bytes), found before reading it; None when it can be."""


def common_rows(starty: int, ny: int, prev_starty: int, prev_ny: int) -> tuple[slice, slice]:
    """The rows both windows read, as 0-based slices into the current and into the previous master's arrays
    (empty when the windows do not overlap). STARTY is the 1-based first full-detector row of a window."""
    low = max(starty, prev_starty)
    high = max(min(starty + ny, prev_starty + prev_ny), low)
    return slice(low - starty, high - starty), slice(low - prev_starty, high - prev_starty)


def window_ratio(master: np.ndarray, starty: int, previous: np.ndarray, prev_starty: int) -> np.ndarray:
    """``master / previous`` (float64) on the current window's rows; NaN on the rows the previous master did not
    read. Both arrays are (rows read, columns) of one detector."""
    ratio = np.full(master.shape, np.nan)
    mine, theirs = common_rows(starty, master.shape[0], prev_starty, previous.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(master[mine], previous[theirs], out=ratio[mine], dtype=np.float64)
    return ratio


def qc1_deltas(current: QC1Values, previous: QC1Values) -> dict[str, float | int | None]:
    """``current - previous`` of every current QC1 parameter; None where either value is NULL."""
    deltas: dict[str, float | int | None] = {}
    for name, value in current.items():
        before = previous.get(name)
        deltas[name] = None if value is None or before is None else value - before
    return deltas


class PreviousMaster:
    """The last good set's master, read detector by detector like the set's own inputs. The first problem (file
    unreadable, layout changed) stops the reading and becomes the comparison's note: then no detector has ratios,
    rather than some."""

    def __init__(self, last_good: LastGoodSet | None, profile: InstrumentProfile) -> None:
        self.last_good = last_good
        self.profile = profile
        self.problem = last_good.unusable if last_good is not None else None
        self.hdul: fits.HDUList | None = None

    def open(self, files: ExitStack) -> None:
        """Open the master for reading (closed by ``files``) after checking its structure."""
        if self.last_good is None or self.problem is not None:
            return
        try:
            check_structure(self.last_good.master)
            self.hdul = files.enter_context(open_fits(self.last_good.master))
        except (OSError, FlatQCError) as exc:
            self._failed(exc)

    def ratio(self, detector: int, master: np.ndarray, starty: int) -> np.ndarray | None:
        """:func:`window_ratio` of chip ``detector`` (``master``: the current one, read from ``starty``); None once
        the previous master cannot be read."""
        if self.hdul is None or self.last_good is None:
            return None
        try:
            previous = read_chip(self.hdul, self.profile, detector, np.dtype(self.profile.master_dtype).type,
                                 self.last_good.window_ny)
        except (OSError, FlatQCError) as exc:
            self._failed(exc)
            return None
        return window_ratio(master, starty, previous, self.last_good.window_starty)

    def _failed(self, exc: Exception) -> None:
        self.problem = f"cannot be read ({type(exc).__name__}: {exc})"
        self.hdul = None

    def result(self, detectors: Sequence[DetectorQC], ratios: Mapping[int, tuple[float | None, float | None]],
               setting_key: str, starty: int, ny: int) -> LastGoodResult:
        """The comparison of the set's ``detectors`` with the last good set, given the ratio statistics per
        detector; NULL ratios everywhere when the master could not be read (the note says why)."""
        last = self.last_good
        if last is None:
            return LastGoodResult(None, None, f"no earlier good set of {setting_key}")
        note = f"last good set {last.set_id} (night {last.night})"
        shared = common_rows(starty, ny, last.window_starty, last.window_ny)[0]
        if self.problem is not None:
            note += f": master {last.master.name} {self.problem}; no ratios"
            ratios = {}
        elif shared.start == shared.stop:
            note += (f": no rows in common (rows {starty}..{starty + ny - 1} against "
                     f"{last.window_starty}..{last.window_starty + last.window_ny - 1}); no ratios")
        return LastGoodResult(last.set_id, last.night, note, tuple(
            PrevComparison(d.detector, *ratios.get(d.detector, (None, None)),
                           deltas=qc1_deltas(d.qc1(), last.qc1.get(d.detector, {})))
            for d in detectors))
