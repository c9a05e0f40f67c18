"""Numba kernels of the colour metrics: the distinct (original colour, compressed colour) pairs
of a frame pair (accelerating ``colour.deltae``) and the candidate-patch statistics of the
gradient-region search (accelerating ``colour.banding``).

``colour.deltae`` computes CIEDE2000 once per distinct colour pair, in the pairs' sorted order.
numpy finds them with ``np.unique`` over a 48-bit key per pixel (a sort of every pixel);
:func:`colour_pairs` finds the same pairs in the same order with two hash tables of colours
(GIF frames hold at most a few hundred colours each) and a count per (rank, rank) cell, no
per-pixel sort. Its output is integers, so the values computed from it are the numpy path's
bit for bit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import _numba

__all__ = ["colour_pairs"]

_PAIRS_SIGNATURE = (
    "void(uint8[:, ::1], uint8[:, ::1], int32[::1], int32[::1], int32[::1], int32[::1], "
    "int32[::1], int32[::1], int64[::1], int64[::1])"
)

_lock = threading.Lock()
_kernels: dict[str, Callable[..., None]] = {}
_failed = False


def _codes(pixels, codes):  # pragma: no cover - compiled by numba
    """24-bit colour codes ``(R << 16) | (G << 8) | B`` of ``pixels`` (n, 3) into ``codes``."""
    n = pixels.shape[0]
    flat = pixels.reshape(n * 3)
    for q in range(n):
        r, g, b = np.int32(flat[3 * q]), np.int32(flat[3 * q + 1]), np.int32(flat[3 * q + 2])
        codes[q] = (r << 16) | (g << 8) | b


def _lookup(codes, colours, bits):  # pragma: no cover - compiled by numba
    """Replace each code by its colour's position among the distinct ``colours`` (first-seen
    order, written there); returns how many, or -1 once the table of ``2**bits`` slots is over
    1/8 full (the caller starts again with a larger one).

    Open addressing (multiplicative hash, linear probing), kept sparse so that almost every
    pixel finds its colour in the first slot it looks at.
    """
    mask = (1 << bits) - 1
    keys = np.full(1 << bits, -1, np.int32)
    slots = np.empty(1 << bits, np.int32)
    limit = (1 << bits) // 8
    count = 0
    for q in range(codes.size):
        code = codes[q]
        slot = ((np.uint32(code) * np.uint32(0x9E3779B1)) >> np.uint32(32 - bits)) & mask
        while keys[slot] != code and keys[slot] >= 0:
            slot = (slot + 1) & mask
        if keys[slot] < 0:
            if count == limit:
                return -1
            keys[slot] = code
            slots[slot] = count
            colours[count] = code
            count += 1
        codes[q] = slots[slot]
    return count


def _distinct(pixels, index, colours):  # pragma: no cover - compiled by numba
    """Distinct 24-bit colours of ``pixels`` (n, 3) into ``colours`` (first-seen order) and each
    pixel's position among them into ``index``; returns how many."""
    bits = 12  # 512 colours before the first retry: GIF frames hold at most a few hundred
    while True:
        _codes(pixels, index)
        count = _lookup(index, colours, bits)
        if count >= 0:
            return count
        bits += 2


def _sort_ranks(colours, count, index):  # pragma: no cover - compiled by numba
    """Sort ``colours[:count]`` in place and map ``index`` to the sorted positions."""
    order = np.argsort(colours[:count])
    rank = np.empty(count, np.int32)
    for j in range(count):
        rank[order[j]] = j
    sorted_ = colours[:count][order]
    colours[:count] = sorted_
    for q in range(index.size):
        index[q] = rank[index[q]]


def _pairs_frame(  # pragma: no cover - compiled by numba
    o, c, index_o, index_c, colours_o, colours_c, pair_o, pair_c, counts, sizes
):
    """Distinct (original, compressed) colour pairs of one frame pair, sorted by
    ``(original code, compressed code)``, with their pixel counts.

    ``o``, ``c``: (n, 3) uint8 pixels. Writes the sorted distinct colours of each frame into
    ``colours_o[:no]``, ``colours_c[:nc]``, each pair's positions in those into
    ``pair_o[:k]``, ``pair_c[:k]``, its pixel count into ``counts[:k]``, and
    ``sizes[:] = (no, nc, k)``. ``index_*`` are scratch of length n.
    """
    n = o.shape[0]
    no = _distinct(o, index_o, colours_o)
    nc = _distinct(c, index_c, colours_c)
    _sort_ranks(colours_o, no, index_o)
    _sort_ranks(colours_c, nc, index_c)
    k = 0
    cells = no * nc
    if cells <= 4 * n + 65536:  # count per cell of the (no, nc) grid: cells come out sorted
        grid = np.zeros(cells, np.int64)
        for q in range(n):
            grid[index_o[q] * nc + index_c[q]] += 1
        for p in range(cells):
            if grid[p]:
                pair_o[k] = p // nc
                pair_c[k] = p % nc
                counts[k] = grid[p]
                k += 1
    else:  # very many colours: sort the pixels' cell numbers
        keys = np.empty(n, np.int64)
        for q in range(n):
            keys[q] = np.int64(index_o[q]) * nc + index_c[q]
        keys.sort()
        q = 0
        while q < n:
            p = keys[q]
            r = q + 1
            while r < n and keys[r] == p:
                r += 1
            pair_o[k] = p // nc
            pair_c[k] = p % nc
            counts[k] = r - q
            k += 1
            q = r
    sizes[0] = no
    sizes[1] = nc
    sizes[2] = k


def _load(name: str) -> Callable[..., None] | None:
    """The compiled kernel ``name`` (compiled on first call, thread-safe); ``None`` without
    numba."""
    global _codes, _lookup, _distinct, _sort_ranks, _failed
    if name not in _kernels and not _failed:
        with _lock:
            if name not in _kernels and not _failed:
                if name == "pairs":
                    functions = (_codes, _lookup, _distinct, _sort_ranks)
                    helpers = [_numba.compile_helper(f) for f in functions]
                    if None not in helpers:  # _pairs_frame calls them as compiled functions
                        _codes, _lookup, _distinct, _sort_ranks = helpers
                        kernel = _numba.compile_kernel(_PAIRS_SIGNATURE, _pairs_frame)
                        if kernel is not None:
                            _kernels[name] = kernel
                _failed = name not in _kernels
    return _kernels.get(name)


class ColourPairs:
    """Distinct colour pairs of frame pairs of ``n`` pixels, buffers allocated once."""

    def __init__(self, n: int) -> None:
        self.kernel = _load("pairs")
        if self.kernel is None:
            return
        i32 = np.int32
        self.index_o, self.index_c = np.empty(n, i32), np.empty(n, i32)
        self.colours_o, self.colours_c = np.empty(n, i32), np.empty(n, i32)
        self.pair_o, self.pair_c = np.empty(n, i32), np.empty(n, i32)
        self.counts = np.empty(n, np.int64)
        self.sizes = np.empty(3, np.int64)

    def __call__(
        self, original: np.ndarray, compressed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(colours_o, colours_c, pair_o, pair_c, counts)`` of one frame pair (H, W, 3):
        sorted distinct 24-bit colours of each frame, and per distinct pair (sorted by
        original colour, then compressed colour) its positions in those and its pixel count."""
        assert self.kernel is not None
        o = np.ascontiguousarray(original).reshape(-1, 3)
        c = np.ascontiguousarray(compressed).reshape(-1, 3)
        self.kernel(
            o, c, self.index_o, self.index_c, self.colours_o, self.colours_c,
            self.pair_o, self.pair_c, self.counts, self.sizes,
        )  # fmt: skip
        no, nc, k = (int(v) for v in self.sizes)
        return (
            self.colours_o[:no],
            self.colours_c[:nc],
            self.pair_o[:k],
            self.pair_c[:k],
            self.counts[:k],
        )


def colour_pairs(n: int) -> ColourPairs | None:
    """A :class:`ColourPairs` for frames of ``n`` pixels, or ``None`` when numba is unusable."""
    pairs = ColourPairs(n)
    return pairs if pairs.kernel is not None else None
