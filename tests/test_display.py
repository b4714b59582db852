"""Display reduction (block averaging, never decimation) and what the pictures show."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qc.analysis import local_median
from qc.display import block_or, block_reduce, display_block
from tests.conftest import ProcessedNight


def test_block_mean_equals_hand_computed_means() -> None:
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    expected = np.array([[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])
    np.testing.assert_allclose(block_reduce(image, 2), expected)


def test_block_max_keeps_a_single_bad_pixel_anywhere() -> None:
    for y, x in [(0, 0), (1023, 1023), (517, 3)]:
        bpm = np.zeros((1024, 1024), dtype=np.float32)
        bpm[y, x] = 1
        reduced = block_reduce(bpm, display_block(bpm.shape), "max")
        assert reduced.sum() == 1 and reduced[y // 2, x // 2] == 1


def test_remainder_block_ignores_padding_and_nan() -> None:
    image = np.ones((5, 5), dtype=np.float32)
    image[4, 3] = np.nan
    reduced = block_reduce(image, 2)
    assert reduced.shape == (3, 3)
    np.testing.assert_allclose(reduced, 1.0)


@pytest.mark.parametrize(("shape", "block"), [((1024, 1024), 2), ((2048, 2048), 4), ((256, 1024), 2), ((10, 10), 1)])
def test_display_block(shape: tuple[int, int], block: int) -> None:
    assert display_block(shape) == block


def distinct_colours(path: Path) -> int:
    with Image.open(path) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_flat4_is_a_message_panel_when_fewer_than_three_flats(processed_night: ProcessedNight) -> None:
    plots = {s["n_raw"]: s["plots"] for s in processed_night.report["sets"]}
    few, many = plots[1], plots[4]
    # The S/N map uses the colour map's 256 colours and more; the "not available" panel is text on a flat background.
    assert distinct_colours(Path(many["flat4"])) > 4 * distinct_colours(Path(few["flat4"]))
    for name in ("flat1", "flat2", "flat3", "flat4", "flat5", "cover"):
        with Image.open(few[name]) as image:
            assert image.width >= 1000 and image.height >= 400, name


def per_block(image: np.ndarray, block: int, reduce: Callable[[np.ndarray], float]) -> np.ndarray:
    """``reduce`` of every block x block square, one at a time (the remainder forms smaller ones)."""
    ny, nx = image.shape
    return np.array([[reduce(image[y:y + block, x:x + block]) for x in range(0, nx, block)]
                     for y in range(0, ny, block)])


@pytest.mark.parametrize("block", [2, 3, 4, 5])
def test_block_reductions_agree_with_one_block_at_a_time(block: int) -> None:
    rng = np.random.default_rng(block)
    image = (rng.normal(1.0, 0.1, (37, 53)) * 10.0 ** rng.integers(-3, 4, (37, 53))).astype(np.float32)
    image[rng.random(image.shape) < 0.2] = np.nan
    image[:block, :block] = np.nan  # one block without a finite pixel
    image[rng.random(image.shape) < 0.02] = np.inf  # not finite: left out like NaN
    finite = np.where(np.isfinite(image), image, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN block
        mean = per_block(finite.astype(np.float64), block, np.nanmean)
        high = per_block(image, block, np.nanmax)
    np.testing.assert_allclose(block_reduce(image, block), mean, rtol=1e-6)
    np.testing.assert_array_equal(block_reduce(image, block, "max"), high)
    codes = rng.integers(0, 1 << 5, image.shape).astype(np.int32)
    expected_or = per_block(codes, block, lambda b: np.bitwise_or.reduce(b.ravel()))
    np.testing.assert_array_equal(block_or(codes, block), expected_or)


def test_local_median_agrees_with_nanmedian_cell_by_cell() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(300.0, 50.0, (150, 200)).astype(np.float32)
    image[rng.random(image.shape) < 0.3] = np.nan
    image[:, :40] = np.nan  # cells with too few pixels
    counted = rng.random(image.shape) < 0.8
    cell = 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = per_block(np.where(counted, image, np.nan), cell, np.nanmedian)
    enough = per_block(counted & np.isfinite(image), cell, np.sum) >= cell * cell // 4
    np.testing.assert_array_equal(local_median(image, counted, cell),
                                  np.where(enough, expected, np.nan).astype(np.float32))
