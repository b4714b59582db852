"""The procedure as its documentation page tells it (the seed's qcDocu page, ``crires_flat_qc_doc.txt``): name,
version history of this service, purpose, pictures, trend reports and comments, as data.

Parameters and their units are in :mod:`qc.parameters`; limits are settings (:class:`qc.config.QCConfig`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NAME = "flatqc (crires_flat.py)"
"""The procedure: this service, in the place of the seed's ``crires_flat.py``."""
PURPOSE = "QC check of raw and product flat field exposures, automatically, as each set arrives"
"""Seed PURPOSE; the service runs it on every complete set."""


@dataclass(frozen=True)
class Change:
    """One entry of the version history."""

    version: str
    date: str
    """YYYY-MM-DD."""
    text: str


CHANGES: tuple[Change, ...] = (
    Change("0.1.0", "2026-11-25", "first version: the seed's QC1 parameters, certification and flat1..flat5 for every "
           "complete set as it arrives (watcher, SQL ledger, rq workers), alerts, HealthCheck trend reports, "
           "dashboard; CRIRES+ as a second instrument profile"),
    Change("0.1.0", "2026-11-26", "pictures show their limits and numbers; cover sheet with value, limit and margin; "
           "schema migrations (Alembic)"),
    Change("0.1.0", "2026-12-06", "findings stored as data and worded in one place; monitoring (Prometheus, "
           "Grafana); supervision of workers by flatqc up; container image"),
    Change("0.1.0", "2026-12-06", "documentation page per QC1 table, generated from the code's definitions and "
           "the limits in force; one source of names, units and meanings of the QC1 columns"),
)
"""Version history, oldest first; the last entry's version is the package's (``qc.__version__``)."""


@dataclass(frozen=True)
class PictureDoc:
    """One picture of a set (seed QC1PLOTS; contract 7)."""

    name: str
    """File stem: ``<name>.png`` in the set's output folder."""
    shows: str


PICTURES: tuple[PictureDoc, ...] = (
    PictureDoc("cover", "one page per set: keys, observation time and files, every certified value against its "
               "limit with its margin, the QC1 table with units, the verdict with its reasons, the comparison with the "
               "last good set, thumbnails of flat1..flat6"),
    PictureDoc("flat1", "left: current master flat; right: current flat / reference flat"),
    PictureDoc("flat2", "as flat1, central regions per detector"),
    PictureDoc("flat3", "left: current bad pixel map (bad pixels grown to be visible, a colour per BPM class, "
               "counts per detector); right: current map - reference map (new and fixed bad pixels)"),
    PictureDoc("flat4", "S/N per pixel on a fixed scale [0, 2 x S/N limit] with the limit on the colour bar, a "
               "contour where the local median S/N is at or below the limit, the median S/N per detector; only "
               "with at least min_flats_for_snr flats; the vignetted area shaded grey"),
    PictureDoc("flat5", "cuts through the mean raw (with the max-flux limit) and the reference, histogram of the "
               "raw values of pixels good in the BPM (with the limit), master / reference along the cut"),
    PictureDoc("flat6", "current master / the last good set's master per detector (contract 9) on a scale centred "
               "on 1, rows read by only one of them grey, both sets named, median and std of the ratio per "
               "detector; the reason instead when there is no earlier good set"),
)
"""The pictures of a set, in the order the set page shows them."""

TREND_REPORT_DOCS: Mapping[str, str] = {
    "FLATSTAB": "mean_flux and rms_master per detector against time, per setting key, with the trend limits",
    "FLAT_IRHa": "mean_flux of Halogen sets per detector against time, per setting key",
    "BADPIX": "badpix per detector against time, per setting key",
}
"""What each HealthCheck trend report shows (seed TRENDPLOT; contract 7); points outside the limits are ringed."""

INPUT_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("ESO PRO CATG", "kind of a product: master flat or BPM"),
    ("ESO PRO REC1 RAWi NAME", "the raws a product was made from (i = 1..N): which files form a set"),
    ("ESO DPR CATG, ESO DPR TYPE, ESO DPR TECH", "a raw flat"),
    ("ARCFILE", "archive name of a raw, as products list it"),
    ("MJD-OBS, DATE-OBS", "start of exposure"),
)
"""Primary-header keywords every profile reads (``qc.fitsio``); the profile adds its own (DIT, NDIT, setting,
window)."""

COMMENTS: tuple[str, ...] = (
    "The seed's procedure skipped scoreQC (v1.1.2): certification is its two rules (section Certification), and "
    "the HealthCheck trend limits give warnings, not failures.",
    "S/N exists only for sets of at least min_flats_for_snr flats; a typical night has one flat per set, so most "
    "sets are \"not assessable\" on S/N, which is not a failure.",
    "max_flux and num_overexp leave out pixels flagged in the BPM, so a single hot pixel does not fail a set "
    "(a convention of the data contract).",
)
"""Remarks of the seed's COMMENTS that still hold, and the conventions people ask about; the reference keys of the
seed's COMMENTS come from the settings (``QCConfig.reference_keys``)."""
