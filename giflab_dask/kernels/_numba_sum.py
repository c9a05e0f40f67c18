"""numpy's pairwise summation, transcribed for numba kernels, so that their sums (and the
means and variances built from them) equal numpy's bit for bit.

numpy sums a contiguous float64 array with ``pairwise_sum`` (``loops_utils.h.src``): leaves of
at most 128 values summed with 8 accumulators, halves split at a multiple of 8, recursively.
:func:`sum_plan` walks that tree once for a size and returns it as a postfix program;
:func:`run_plan` replays it over an array (or over its squared deviations from a mean, as
``np.var`` computes them). Tested equal to ``np.sum`` / ``np.var`` on many sizes.
"""

from __future__ import annotations

import threading

import numpy as np

from . import _numba

__all__ = ["block_sum", "load", "run_plan", "sum_plan"]

_lock = threading.Lock()
_state: dict[str, bool] = {}


def block_sum(a, start, n, mean, squared):  # pragma: no cover - compiled by numba
    """numpy's pairwise-sum leaf (n <= 128) of ``a[start:start + n]``, or of the squared
    deviations ``(a - mean)**2`` when ``squared`` (numpy's ``subtract`` then ``square``): 8
    accumulators combined as a tree, then the remainder in order (below 8 values, a plain sum
    from -0.0)."""
    if squared:
        if n < 8:
            res = -0.0
            for i in range(n):
                d = a[start + i] - mean
                res += d * d
            return res
        d0, d1, d2, d3 = (
            a[start] - mean,
            a[start + 1] - mean,
            a[start + 2] - mean,
            a[start + 3] - mean,
        )
        d4, d5, d6, d7 = (
            a[start + 4] - mean,
            a[start + 5] - mean,
            a[start + 6] - mean,
            a[start + 7] - mean,
        )
        r0, r1, r2, r3, r4, r5, r6, r7 = (
            d0 * d0,
            d1 * d1,
            d2 * d2,
            d3 * d3,
            d4 * d4,
            d5 * d5,
            d6 * d6,
            d7 * d7,
        )
        i = 8
        while i < n - (n % 8):
            k = start + i
            d0, d1, d2, d3 = a[k] - mean, a[k + 1] - mean, a[k + 2] - mean, a[k + 3] - mean
            d4, d5, d6, d7 = a[k + 4] - mean, a[k + 5] - mean, a[k + 6] - mean, a[k + 7] - mean
            r0 += d0 * d0
            r1 += d1 * d1
            r2 += d2 * d2
            r3 += d3 * d3
            r4 += d4 * d4
            r5 += d5 * d5
            r6 += d6 * d6
            r7 += d7 * d7
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            d = a[start + i] - mean
            res += d * d
            i += 1
        return res
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[start + i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i < n - (n % 8):
        k = start + i
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


def sum_plan(n):  # pragma: no cover - compiled by numba
    """numpy's pairwise-summation tree of ``n`` values as a postfix program: rows
    ``(0, start, size)`` sum a leaf of at most 128 values (:func:`block_sum`), rows
    ``(1, 0, 0)`` add the last two partial sums. numpy recurses (``pairwise_sum`` in
    ``loops_utils.h.src``: halves split at a multiple of 8); this walks the same tree once per
    size with explicit stacks, and :func:`run_plan` replays it for every patch."""
    ops = np.empty((2 * (n // 64) + 3, 3), np.int64)
    k = 0
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    stages = np.empty(64, np.int64)
    top = 0
    starts[0], sizes[0], stages[0] = 0, n, 0
    while top >= 0:
        s, m = starts[top], sizes[top]
        if m <= 128:
            ops[k, 0], ops[k, 1], ops[k, 2] = 0, s, m
            k += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stages[top] == 0:  # left half first
            stages[top] = 1
            top += 1
            starts[top], sizes[top], stages[top] = s, half, 0
        elif stages[top] == 1:  # then the right half
            stages[top] = 2
            top += 1
            starts[top], sizes[top], stages[top] = s + half, m - half, 0
        else:  # both done: left + right
            ops[k, 0], ops[k, 1], ops[k, 2] = 1, 0, 0
            k += 1
            top -= 1
    return ops[:k]


def run_plan(a, ops, mean, squared, values):  # pragma: no cover - compiled by numba
    """The pairwise sum of ``a`` (or of its squared deviations from ``mean``) by the program
    ``ops`` of :func:`sum_plan`; ``values``: scratch for the partial sums."""
    nv = 0
    for j in range(ops.shape[0]):
        if ops[j, 0] == 0:
            values[nv] = block_sum(a, ops[j, 1], ops[j, 2], mean, squared)
            nv += 1
        else:
            values[nv - 2] = values[nv - 2] + values[nv - 1]
            nv -= 1
    return values[0]


def load() -> bool:
    """Compile these functions for numba kernels to call (once; thread-safe): they replace the
    plain functions in this module, where kernels look them up. False without numba."""
    if "loaded" not in _state:
        with _lock:
            if "loaded" not in _state:
                namespace = globals()
                names = ("block_sum", "sum_plan", "run_plan")
                compiled = [_numba.compile_helper(namespace[name]) for name in names]
                if None not in compiled:
                    namespace.update(zip(names, compiled, strict=True))
                _state["loaded"] = None not in compiled
    return _state["loaded"]
