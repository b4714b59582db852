"""Limits, thresholds and [convention] choices of the data contract, as one frozen value.

Every default names its origin: *seed* is the original QC page (``crires_flat_qc_doc.txt``),
*contract* is ``data-contract.md`` (section given), *trend report* the CRIRES HealthCheck limits.
The service builds one :class:`QCConfig` per instrument profile from its settings and passes it in;
nothing in ``qc`` reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CRIRES_REFERENCE_KEYS: tuple[str, ...] = (
    "2199.100_15.000_Emitter",
    "2199.100_15.000_Halogen",
    "1090.400_25.000_Halogen",
    "3218.600_25.000_Halogen",
    "4092.900_25.000_Halogen",
)
"""Setting keys with reference frames (seed, COMMENTS; contract section 6)."""


@dataclass(frozen=True)
class TrendLimits:
    """HealthCheck limits of one setting key (contract section 7, from the CRIRES trend reports)."""

    mean_flux: tuple[float, float]
    """Allowed mean_flux range [ADU/s]."""
    rms_master: tuple[float, float]
    """Allowed rms_master range (normalised master, dimensionless)."""


CRIRES_TREND_LIMITS: Mapping[str, TrendLimits] = {
    "1090.400_25.000_Halogen": TrendLimits((200.0, 950.0), (0.08, 0.13)),
    "3218.600_25.000_Halogen": TrendLimits((75.0, 500.0), (0.08, 0.145)),
    "4092.900_25.000_Halogen": TrendLimits((100.0, 800.0), (0.05, 0.10)),
}


@dataclass(frozen=True)
class QCConfig:
    """Every number the QC1 definitions and the certification depend on (one instrument profile)."""

    snr_limit: float = 250.0
    """Set fails when median_snr <= this (seed CERTIF; contract 5.1)."""
    max_flux_limit: float = 10000.0
    """Set fails when max_flux > this [ADU] (seed CERTIF; contract 5.2)."""
    overexp_level: float = 10000.0
    """Pixels above this count as overexposed [ADU] (contract 4, [convention])."""
    badpix_low: float = 0.1
    """Normalised master below this is a bad pixel (seed ALGORITHM)."""
    badpix_high: float = 10.0
    """Normalised master above this is a bad pixel (seed ALGORITHM)."""
    min_flats_for_snr: int = 3
    """S/N per pixel needs at least this many raws (seed flat4; contract 4)."""
    vignetted_width: int = 256
    """Columns vignetted on the first detector (left) and the last detector (right) (contract 4, [convention])."""
    vignetted_bottom_rows: int = 0
    """Bottom rows (numpy rows 0..n-1 of the full frame) outside the unvignetted area (CRIRES+: 40, contract 8)."""
    edge_width: int = 0
    """Pixels on every side outside the unvignetted area (CRIRES+: 4, contract 8)."""
    in_order_only: bool = False
    """Raw statistics and S/N only where the master is finite (between-order NaNs excluded); CRIRES+: True
    (contract 8, [convention])."""
    default_window_starty: int = 1
    """First row (1-based) of a window when DET WINDOW STARTY is absent (contract 3, [convention])."""
    healthcheck_only_settings: tuple[str, ...] = ()
    """Setting keys not used for science: no S/N certification (contract 5.1, default empty)."""
    reference_keys: tuple[str, ...] = CRIRES_REFERENCE_KEYS
    """Setting keys for which references are expected (contract 6)."""
    trend_limits: Mapping[str, TrendLimits] = field(default_factory=lambda: dict(CRIRES_TREND_LIMITS))
    """HealthCheck limits per setting key (contract 7)."""
    thresholds_version: str = "contract-2026.1"
    """Version tag of this set of thresholds, stored with every QC1 row."""

    def trend_limit(self, setting_key: str, column: str) -> tuple[float, float] | None:
        """The HealthCheck range of QC1 ``column`` for ``setting_key``; None when none is defined."""
        return getattr(self.trend_limits.get(setting_key), column, None)


CRIRES_PLUS_CONFIG = QCConfig(
    max_flux_limit=37000.0,
    overexp_level=37000.0,
    vignetted_width=0,
    vignetted_bottom_rows=40,
    edge_width=4,
    in_order_only=True,
    reference_keys=(),
    trend_limits={},
)
"""CRIRES+ defaults (contract 8): 37000 ADU limits, bottom 40 rows and a 4-px edge vignetted, statistics over
in-order pixels only, no reference keys defined."""
