"""Downsampling for display: block averaging (NaN-aware), never decimation, so no pixel is skipped."""

from __future__ import annotations

import math

import numpy as np

DISPLAY_PIXELS = 512
"""Longest axis of a detector image as stored for the plots; each detector is drawn about 350 px wide."""
PNG_OPTIONS = {"compress_level": 3}
"""zlib level of the PNGs: noisy images barely compress further, and level 3 writes several times faster than 6."""


def display_block(shape: tuple[int, ...], max_pixels: int = DISPLAY_PIXELS) -> int:
    """Smallest integer block so that the longest axis of ``shape`` fits in ``max_pixels``."""
    return max(1, math.ceil(max(shape) / max_pixels))


def combine_blocks(data: np.ndarray, block: int, combine: np.ufunc, dtype: type | None = None) -> np.ndarray:
    """Combine the ``block`` x ``block`` blocks of ``data`` (its shape a multiple of ``block``) with a binary ufunc
    (add, fmax, bitwise_or) in ``dtype``: within each block first along the rows, column offset by column offset,
    then across its rows. One whole-array operation per offset: numpy's reductions over a short inner axis of a
    reshaped image take ~10 times as long."""
    columns = data[:, 0::block].astype(dtype or data.dtype)
    for offset in range(1, block):
        combine(columns, data[:, offset::block], out=columns)
    combined = columns[0::block].copy()
    for offset in range(1, block):
        combine(combined, columns[offset::block], out=combined)
    return combined


def block_reduce(image: np.ndarray, block: int, how: str = "mean") -> np.ndarray:
    """Reduce ``image`` by ``block`` x ``block`` blocks with a NaN-aware mean or max (float32 result).

    A remainder at the edges forms a smaller last block (padded with NaN, which the reduction ignores).
    """
    data = np.asarray(image, dtype=np.float32)
    if block == 1:
        return data.copy()
    ny, nx = data.shape
    py, px = -ny % block, -nx % block
    if py or px:
        data = np.pad(data, ((0, py), (0, px)), constant_values=np.nan)
    if how == "max":
        return combine_blocks(data, block, np.fmax)  # fmax ignores NaN unless all are NaN
    if how != "mean":
        raise ValueError(f"unknown reduction {how!r}; choose mean or max")
    finite = np.isfinite(data)
    total = combine_blocks(np.where(finite, data, 0.0), block, np.add, np.float64)
    count = combine_blocks(finite, block, np.add, np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def block_or(codes: np.ndarray, block: int) -> np.ndarray:
    """Reduce an integer image (e.g. a BPM bit mask) by ``block`` x ``block`` blocks with bitwise OR, so every bit
    set anywhere in a block is kept (int32 result; a remainder at the edges forms a smaller last block)."""
    data = np.asarray(codes, dtype=np.int32)
    if block == 1:
        return data.copy()
    ny, nx = data.shape
    return combine_blocks(np.pad(data, ((0, -ny % block), (0, -nx % block))), block, np.bitwise_or)
