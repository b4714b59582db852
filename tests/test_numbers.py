"""One rule for writing a QC1 value where a person reads it: the console report, the cover sheet and the pages."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from flatqc.console import qc1_table
from flatqc.set_qc import SetOutcome
from qc.cover import check_rows
from qc.numbers import format_number
from tests.test_plots import make_result


@pytest.mark.parametrize(("value", "shown"), [
    (None, "—"), (float("nan"), "—"), (float("-inf"), "—"), (np.float64("inf"), "—"), (1234, "1234"), (0, "0"),
    (0.0123456, "0.012346"), (412.3749, "412.37"), (np.float64(9418.46), "9418.5"), (123456.7, "1.2346e+05"),
])
def test_a_qc1_value_has_five_significant_digits(value: float | None, shown: str) -> None:
    assert format_number(value) == shown


def test_the_console_report_and_the_cover_write_a_value_alike() -> None:
    """A mean flux of 432.12345 ADU/s and an S/N of 412.3749: 432.12 and 412.37 in both (the console wrote four
    digits, 432.1, before)."""
    result = make_result(snr_level=412.3749, raw_level=4321.2345)
    console = Console(record=True, width=200)
    console.print(qc1_table(result.set_id, SetOutcome(result, {}, {})))
    text = console.export_text()
    assert "432.12" in text and "412.37" in text and "432.1 " not in text
    snr = next(r for r in check_rows(result) if r[0] == "median_snr")
    assert snr[2] == "412.37"
