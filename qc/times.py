"""Modified Julian Dates (MJD-OBS [d]) and UTC calendar times, from one epoch. Every time here is UTC, as a naive
:class:`~datetime.datetime` (the ledger's convention)."""

from __future__ import annotations

from datetime import datetime, timedelta

MJD_EPOCH = datetime(1858, 11, 17)
"""MJD 0: 1858-11-17 00:00 UTC."""
UNIX_EPOCH_MJD = 40587.0
"""MJD of 1970-01-01 00:00 UTC, the Unix epoch and matplotlib's date origin [d]."""


def mjd_to_datetime(mjd: float) -> datetime:
    """UTC date and time of an MJD [d] (to the microsecond; days of 86400 s)."""
    return MJD_EPOCH + timedelta(days=float(mjd))


def datetime_to_mjd(moment: datetime) -> float:
    """MJD [d] of a UTC date and time."""
    return (moment - MJD_EPOCH) / timedelta(days=1)


MJD_RANGE = (datetime_to_mjd(datetime(1, 1, 2)), datetime_to_mjd(datetime(9999, 12, 30)))
"""The MJDs [d] that have a calendar date (years 1 to 9999; a night is 12 h before): beyond, a header value is
not a time."""
