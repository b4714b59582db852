"""Detector geometry: the unvignetted area and the reference rows of a windowed read-out (contract 4, 8)."""

from __future__ import annotations

import numpy as np

from qc.config import QCConfig
from qc.profiles import InstrumentProfile


def reference_rows(starty: int, ny: int) -> slice:
    """Rows ``STARTY-1 .. STARTY-1+NY-1`` (numpy, 0-based) of a full frame for a window (STARTY 1-based)."""
    return slice(starty - 1, starty - 1 + ny)


def unvignetted_mask(profile: InstrumentProfile, config: QCConfig, detector: int, ny: int,
                     starty: int = 1) -> np.ndarray:
    """Boolean (ny, nx) mask of the read-out rows: True where a pixel is outside the vignetted area.

    CRIRES: columns ``0..w-1`` of the first and ``nx-w..nx-1`` of the last detector (w = ``vignetted_width``).
    CRIRES+: the bottom ``vignetted_bottom_rows`` full-frame rows and an ``edge_width`` border on every side.
    """
    nx = profile.nx
    mask = np.ones((ny, nx), dtype=bool)
    width = config.vignetted_width
    if width:
        if detector == 1:
            mask[:, :width] = False
        if detector == profile.n_detectors:
            mask[:, nx - width:] = False
    full_rows = np.arange(starty - 1, starty - 1 + ny)
    blocked_rows = full_rows < config.vignetted_bottom_rows
    edge = config.edge_width
    if edge:
        blocked_rows |= (full_rows < edge) | (full_rows >= profile.full_ny - edge)
        mask[:, :edge] = False
        mask[:, nx - edge:] = False
    mask[blocked_rows, :] = False
    return mask
