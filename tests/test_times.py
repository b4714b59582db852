"""One MJD epoch for the cover sheet, the pages, the trend plots and the night of a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time

from qc.sets import night_of
from qc.times import UNIX_EPOCH_MJD, datetime_to_mjd, mjd_to_datetime


def test_the_epochs() -> None:
    assert mjd_to_datetime(0) == datetime(1858, 11, 17)
    assert mjd_to_datetime(UNIX_EPOCH_MJD) == datetime(1970, 1, 1)
    assert datetime_to_mjd(datetime(2010, 5, 13, 12)) == 55329.5
    assert datetime_to_mjd(mjd_to_datetime(55329.43160)) == pytest.approx(55329.43160, abs=1e-10)


@pytest.mark.parametrize("mjd", [51544.0, 55329.43160, 60000.999])
def test_mjd_to_datetime_agrees_with_astropy(mjd: float) -> None:
    assert abs((mjd_to_datetime(np.float64(mjd)) - Time(mjd, format="mjd").to_datetime()).total_seconds()) < 1e-3


def test_the_night_of_a_file_outside_a_date_folder_starts_at_noon() -> None:
    assert night_of(Path("x.fits"), 55329.49) == "2010-05-12"  # 11:45 UTC on the 13th
    assert night_of(Path("x.fits"), 55329.51) == "2010-05-13"
