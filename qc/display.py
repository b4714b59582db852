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
    blocks = data.reshape(data.shape[0] // block, block, data.shape[1] // block, block)
    if how == "max":
        return np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)  # fmax ignores NaN unless all are NaN
    if how != "mean":
        raise ValueError(f"unknown reduction {how!r}; choose mean or max")
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=3, dtype=np.float64).sum(axis=1)
    count = finite.sum(axis=3).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def block_or(codes: np.ndarray, block: int) -> np.ndarray:
    """Reduce an integer image (e.g. a BPM bit mask) by ``block`` x ``block`` blocks with bitwise OR, so every bit
    set anywhere in a block is kept (int32 result; a remainder at the edges forms a smaller last block)."""
    data = np.asarray(codes, dtype=np.int32)
    if block == 1:
        return data.copy()
    ny, nx = data.shape
    data = np.pad(data, ((0, -ny % block), (0, -nx % block)))
    blocks = data.reshape(data.shape[0] // block, block, data.shape[1] // block, block)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)
