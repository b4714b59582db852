"""Exact medians of detector-sized arrays with one selection on a small bracket of values.

``np.median`` copies the values (after boolean indexing, another copy), partitions the copy around the middle and
once more to find NaN. Here a seeded random sample of the usable values brackets the middle ranks, two counting
passes check that the bracket holds them, and only the values inside the bracket are copied and partitioned. The
result is numpy's median of the usable values exactly: the middle value, or the mean in float64 of the two middle
values of an even count. When the bracket misses (the sample would have to be more than six standard deviations
off), all usable values are partitioned instead: slower, same answer.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_EXPONENT = 2 / 3
"""Values drawn (with replacement) to place the bracket: ``(3 n) ** (2/3)`` of n, which balances the selection in
the sample against the one in the bracket (about ``6 / sqrt(sample)`` of the values)."""
BRACKET_SIGMAS = 6.0
"""Half-width of the bracket in standard deviations of a sample rank (binomial)."""
DIRECT_SIZE = 65_536
"""Up to this many values, partition them all: bracketing would not pay."""
_SEED = 20_061_215


def median(values: np.ndarray, usable: np.ndarray | None = None) -> float | None:
    """Median of ``values[usable]`` (of every value when ``usable`` is None), None when there is none.

    ``usable`` must leave out NaN (``values`` must hold none when it is None): NaN has no rank.
    """
    flat = values.reshape(-1)
    mask = None if usable is None else usable.reshape(-1)
    count = flat.size if mask is None else int(np.count_nonzero(mask))
    if count == 0:
        return None
    low, high = (count - 1) // 2, count // 2
    if count > DIRECT_SIZE:
        bracket = _bracket(flat, mask, count, low)
        if bracket is not None:
            inside, below = bracket
            if below <= low and high < below + inside.size:
                return _middle(inside, low - below, high - below)
    return _middle(flat.copy() if mask is None else flat[mask], low, high)


def _middle(values: np.ndarray, low: int, high: int) -> float:
    """Mean (float64) of the ``low``-th and ``high``-th smallest of ``values`` (``high`` = ``low`` or ``low + 1``);
    ``values`` is a scratch copy, partitioned in place."""
    values.partition(high)
    upper = float(values[high])
    if low == high:
        return upper
    return (float(values[:high].max()) + upper) / 2


def _bracket(flat: np.ndarray, mask: np.ndarray | None, count: int, rank: int) -> tuple[np.ndarray, int] | None:
    """``(values inside [lo, hi], number of usable values below lo)`` for a bracket placed by a random sample around
    ``rank``; None if too few usable values were drawn to place it."""
    draws = int((3 * count) ** SAMPLE_EXPONENT)
    picks = np.random.default_rng(_SEED).integers(0, flat.size, draws)
    sample = flat[picks] if mask is None else flat[picks][mask[picks]]
    if sample.size < draws * count // flat.size // 2:
        return None  # far fewer usable values drawn than expected: let the caller partition them all
    centre = rank / count * sample.size
    spread = BRACKET_SIGMAS * math.sqrt(sample.size) / 2 + 1
    first = max(int(centre - spread), 0)
    last = min(int(centre + spread) + 1, sample.size - 1)
    sample.partition((first, last))
    lo, hi = sample[first], sample[last]
    below = flat < lo
    inside = flat >= lo
    inside &= flat <= hi
    if mask is not None:
        below &= mask
        inside &= mask
    return flat[inside], int(np.count_nonzero(below))
