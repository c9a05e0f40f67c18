"""Numba kernels of the colour metrics: the distinct (original colour, compressed colour) pairs
of a frame pair (accelerating ``colour.deltae``) and the candidate-patch statistics and region
gradient histograms of the banding score (accelerating ``colour.banding``).

Every kernel here reproduces the numpy path's values bit for bit, so ``backend`` changes speed
only:

* ``colour.deltae`` computes CIEDE2000 once per distinct colour pair, in the pairs' sorted
  order. numpy finds them with ``np.unique`` over a 48-bit key per pixel (a sort of every
  pixel); :class:`ColourPairs` finds the same pairs in the same order with a hash table of
  each frame's colours (GIF frames hold at most a few hundred) and a count per cell of the
  (original colour, compressed colour) grid. Its output is integers.
* ``colour.banding`` scores 64x64 candidate patches by the variance of the luma and the mean
  and standard deviation of the Sobel magnitude. :func:`patch_stats` computes the Sobel
  gradients in exact integers (scipy computes the same integers in float64), so the
  magnitudes are the same doubles, and sums them with numpy's own pairwise summation
  (``_numba_sum``), so the means and variances are the same doubles too.
  :func:`gradient_histogram` counts the magnitudes into numpy's own bin edges.

Compiled on first use per process (``cache=True``: later processes load the machine code from
numba's cache) and thread-safe; the kernels release the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import _numba, _numba_sum

__all__ = ["colour_pairs"]

_DISTINCT_SIGNATURE = (
    "void(uint8[:, ::1], uint8[:, ::1], int32[::1], int32[::1], int32[::1], int32[::1], int64[::1])"
)
_GRID_SIGNATURE = (
    "int64(int32[::1], int32[::1], int64[::1], int64[::1], int64, int64[::1], int64[::1], "
    "int64[::1], int64[::1])"
)

# The luma planes may be read-only (``_frames.luma`` shares them between kernels): those
# signatures are built once numba is imported (see _signature).
_STATS_SIGNATURE = "void(LUMA, int64[::1], int64[::1], int64, float64[:, ::1])"
_MAGNITUDE_SIGNATURE = "void(LUMA, float64[:, ::1])"
_COUNTS_SIGNATURE = "void(float64[::1], float64[::1], int64[::1])"
_CELLS_SIGNATURE = "void(int32[::1], int32[::1], int64[::1], int64[::1], int64, int64[::1])"
_CANNY_SIGNATURE = "void(LUMA (any layout), int64, int64, uint8[:, ::1])"
_TG22 = 13573  # OpenCV's tan(22.5 deg) in 15-bit fixed point, as texture._TG22

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


def _lookup(codes, start, colours, count, keys, slots, bits):  # pragma: no cover - numba
    """Replace ``codes[start:]`` by their colours' positions among the distinct ``colours``
    (first-seen order; ``count`` known so far, new ones appended) until the table ``keys`` /
    ``slots`` of ``2**bits`` slots is full (1/8 of its slots used while it fits in the
    cache, up to 2**16 slots; half beyond, to bound its memory); returns ``(where it stopped,
    count)``.

    Open addressing (multiplicative hash, linear probing), kept sparse so that almost every
    pixel finds its colour in the first slot it looks at.
    """
    mask = (1 << bits) - 1
    limit = (1 << bits) // 8 if bits <= 16 else (1 << bits) // 2
    for q in range(start, codes.size):
        code = codes[q]
        slot = ((np.uint32(code) * np.uint32(0x9E3779B1)) >> np.uint32(32 - bits)) & mask
        while keys[slot] != code and keys[slot] >= 0:
            slot = (slot + 1) & mask
        if keys[slot] < 0:
            if count == limit:
                return q, count
            keys[slot] = code
            slots[slot] = count
            colours[count] = code
            count += 1
        codes[q] = slots[slot]
    return codes.size, count


def _table(colours, count, bits):  # pragma: no cover - compiled by numba
    """A hash table of ``2**bits`` slots holding ``colours[:count]`` (see :func:`_lookup`)."""
    mask = (1 << bits) - 1
    keys = np.full(1 << bits, -1, np.int32)
    slots = np.empty(1 << bits, np.int32)
    for j in range(count):
        code = colours[j]
        slot = ((np.uint32(code) * np.uint32(0x9E3779B1)) >> np.uint32(32 - bits)) & mask
        while keys[slot] >= 0:
            slot = (slot + 1) & mask
        keys[slot] = code
        slots[slot] = j
    return keys, slots


def _distinct(pixels, index, colours):  # pragma: no cover - compiled by numba
    """Distinct 24-bit colours of ``pixels`` (n, 3) into ``colours`` (first-seen order) and each
    pixel's position among them into ``index``; returns how many. The table starts with room
    for 512 colours (GIF frames hold at most a few hundred) and grows 16x when full (2x past
    2**16 slots), the colours found so far moved over, the pixels looked up so far kept."""
    _codes(pixels, index)
    bits = 12
    count = 0
    q = 0
    while True:
        keys, slots = _table(colours, count, bits)
        q, count = _lookup(index, q, colours, count, keys, slots, bits)
        if q == index.size:
            return count
        bits += 4 if bits < 16 else 1


def _distinct_pair(o, c, index_o, index_c, colours_o, colours_c, sizes):  # pragma: no cover
    """Distinct colours of both frames of a pair (see :func:`_distinct`); ``sizes[:2]`` gets
    their numbers."""
    sizes[0] = _distinct(o, index_o, colours_o)
    sizes[1] = _distinct(c, index_c, colours_c)


def _cells(index_o, index_c, rank_o, rank_c, nc, cells):  # pragma: no cover - numba
    """Each pixel's cell ``rank_o * nc + rank_c`` of the colour grid, into ``cells``."""
    for q in range(index_o.size):
        cells[q] = rank_o[index_o[q]] * nc + rank_c[index_c[q]]


def _grid_pairs(
    index_o, index_c, rank_o, rank_c, nc, grid, pair_o, pair_c, counts
):  # pragma: no cover
    """Pixel counts of the (rank_o, rank_c) cells of a zeroed ``grid`` of ``no * nc`` cells;
    the occupied cells, in order (that is sorted by original colour, then compressed colour),
    into ``pair_o``, ``pair_c``, ``counts``. Returns how many."""
    for q in range(index_o.size):
        grid[rank_o[index_o[q]] * nc + rank_c[index_c[q]]] += 1
    k = 0
    for p in range(grid.size):
        if grid[p]:
            pair_o[k] = p // nc
            pair_c[k] = p % nc
            counts[k] = grid[p]
            k += 1
    return k


def _pairwise_sum(a, start, n):  # pragma: no cover - compiled by numba
    """``np.sum(a[start:start + n])`` bit for bit (numpy's pairwise summation)."""
    ops = _numba_sum.sum_plan(n)
    return _numba_sum.run_plan(a[start : start + n], ops, 0.0, False, np.empty(64, np.float64))


def _mean_var(a, ops, values):  # pragma: no cover - compiled by numba
    """``(a.mean(), a.var())`` of a contiguous float64 array with numpy's operations: pairwise
    sums (by ``ops``, the ``_numba_sum.sum_plan`` of ``a.size``) divided by the count."""
    n = a.size
    mean = _numba_sum.run_plan(a, ops, 0.0, False, values) / n
    return mean, _numba_sum.run_plan(a, ops, mean, True, values) / n


def _reflect(i, n):  # pragma: no cover - compiled by numba
    """Index ``i`` in ``[-1, n]`` mirrored into ``[0, n)`` (scipy ``mode="mirror"``)."""
    if i < 0:
        return 1 if n > 1 else 0
    if i >= n:
        return n - 2 if n > 1 else n - 1
    return i


def _sobel_at(gray, y0, x0, ph, pw, r, c):  # pragma: no cover - compiled by numba
    """``|Sobel|`` at (r, c) of the ``ph`` x ``pw`` patch of ``gray`` at (y0, x0), the patch
    alone (``BORDER_REFLECT_101`` at its edges): exact integer gradients, then one sqrt."""
    ru, rd = y0 + _reflect(r - 1, ph), y0 + _reflect(r + 1, ph)
    cl, cr = x0 + _reflect(c - 1, pw), x0 + _reflect(c + 1, pw)
    rc, cc = y0 + r, x0 + c
    gx = (
        (np.int32(gray[ru, cr]) - np.int32(gray[ru, cl]))
        + 2 * (np.int32(gray[rc, cr]) - np.int32(gray[rc, cl]))
        + (np.int32(gray[rd, cr]) - np.int32(gray[rd, cl]))
    )
    gy = (
        (np.int32(gray[rd, cl]) - np.int32(gray[ru, cl]))
        + 2 * (np.int32(gray[rd, cc]) - np.int32(gray[ru, cc]))
        + (np.int32(gray[rd, cr]) - np.int32(gray[ru, cr]))
    )
    return np.sqrt(np.float64(gx * gx + gy * gy))


def _frame_sobel(gray, mag):  # pragma: no cover - compiled by numba
    """``|Sobel|`` of every interior pixel of ``gray`` into ``mag`` (borders left unset): the
    value of every patch pixel that is not on the patch's own border."""
    h, w = gray.shape
    for r in range(1, h - 1):
        up, mid, dn = gray[r - 1], gray[r], gray[r + 1]
        out = mag[r]
        for c in range(1, w - 1):
            gx = (
                (np.int32(up[c + 1]) - np.int32(up[c - 1]))
                + 2 * (np.int32(mid[c + 1]) - np.int32(mid[c - 1]))
                + (np.int32(dn[c + 1]) - np.int32(dn[c - 1]))
            )
            gy = (
                (np.int32(dn[c - 1]) - np.int32(up[c - 1]))
                + 2 * (np.int32(dn[c]) - np.int32(up[c]))
                + (np.int32(dn[c + 1]) - np.int32(up[c + 1]))
            )
            out[c] = np.sqrt(np.float64(gx * gx + gy * gy))


def _magnitude(patch, mag):  # pragma: no cover - compiled by numba
    """``|Sobel|`` of ``patch`` alone into ``mag`` (same shape): ``colour._sobel_magnitude``'s
    values bit for bit."""
    h, w = patch.shape
    _frame_sobel(patch, mag)
    for c in range(w):
        mag[0, c] = _sobel_at(patch, 0, 0, h, w, 0, c)
        mag[h - 1, c] = _sobel_at(patch, 0, 0, h, w, h - 1, c)
    for r in range(1, h - 1):
        mag[r, 0] = _sobel_at(patch, 0, 0, h, w, r, 0)
        mag[r, w - 1] = _sobel_at(patch, 0, 0, h, w, r, w - 1)


def _bin_counts(values, edges, counts):  # pragma: no cover - compiled by numba
    """``counts[i]`` = number of ``values`` with ``edges[i] <= v < edges[i + 1]`` (the last bin
    closed): ``np.histogram``'s counts for these edges (values within them).

    The bin is first estimated from the uniform spacing, then moved until the edges hold the
    value (an exact test against the edges themselves, as numpy corrects its estimate)."""
    nb = edges.size - 1
    for i in range(nb):
        counts[i] = 0
    first = edges[0]
    scale = nb / (edges[nb] - first)
    for v in values:
        i = min(max(np.int64((v - first) * scale), 0), nb - 1)
        while i > 0 and v < edges[i]:
            i -= 1
        while i < nb - 1 and v >= edges[i + 1]:
            i += 1
        counts[i] += 1


def _patch_stats(gray, ys, xs, p, out):  # pragma: no cover - compiled by numba
    """For the ``p`` x ``p`` patches of ``gray`` at rows ``ys`` x columns ``xs`` (scan order):
    ``out[k] = (var(patch), mean(|Sobel|), std(|Sobel|))``, as ``colour._gradient_regions``
    computes them with numpy, bit for bit.

    Sobel on the patch alone (``BORDER_REFLECT_101`` at its edges) in exact integers: inside
    the patch it is the frame's Sobel (computed once per frame), on the patch's border it is
    recomputed with the reflection. The magnitude ``sqrt(gx^2 + gy^2)`` is then the float64
    value scipy's filters give; means and variances use numpy's operations and pairwise
    summation (:func:`_mean_var`).
    """
    h, w = gray.shape
    frame_mag = np.empty((h, w), np.float64)
    _frame_sobel(gray, frame_mag)
    n = p * p
    vals = np.empty(n, np.float64)
    mag = np.empty(n, np.float64)
    ops = _numba_sum.sum_plan(n)
    # For 8-bit values and n = p * p a power of two up to 4096, every intermediate of numpy's
    # variance (mean, deviations, squares, partial sums) is exact in float64, hence so is it.
    exact = (n & (n - 1)) == 0 and n <= 4096
    values = np.empty(64, np.float64)
    k = 0
    for y0 in ys:
        for x0 in xs:
            sx = 0
            sxx = 0
            for r in range(p):
                src = gray[y0 + r, x0 : x0 + p]
                msrc = frame_mag[y0 + r, x0 : x0 + p]
                for c in range(p):
                    v = np.int64(src[c])
                    sx += v
                    sxx += v * v
                    vals[r * p + c] = src[c]
                    mag[r * p + c] = msrc[c]
            for c in range(p):  # the patch's border: its own reflection
                mag[c] = _sobel_at(gray, y0, x0, p, p, 0, c)
                mag[(p - 1) * p + c] = _sobel_at(gray, y0, x0, p, p, p - 1, c)
            for r in range(1, p - 1):
                mag[r * p] = _sobel_at(gray, y0, x0, p, p, r, 0)
                mag[r * p + p - 1] = _sobel_at(gray, y0, x0, p, p, r, p - 1)
            if exact:  # numpy's float64 variance is exact here: the same value from integers
                out[k, 0] = np.float64(n * sxx - sx * sx) / np.float64(n * n)
            else:
                out[k, 0] = _mean_var(vals, ops, values)[1]
            mean, var = _mean_var(mag, ops, values)
            out[k, 1] = mean
            out[k, 2] = np.sqrt(var)
            k += 1


def _canny(gray, low, high, edges):  # pragma: no cover - compiled by numba
    """``texture.canny_opencv(gray, low, high)`` into ``edges`` (uint8 0/1), the same map:
    integer Sobel with replicated borders, L1 magnitude, OpenCV's fixed-point direction tests
    and tie rule for the non-maximum suppression (magnitudes outside the image count as 0),
    then hysteresis as a flood fill from the strong pixels through the 8-connected weak ones
    (numpy labels the weak groups and keeps those holding a strong pixel: the same pixels).
    ``low`` <= ``high`` are the floored thresholds."""
    h, w = gray.shape
    dx = np.empty((h, w), np.int32)
    dy = np.empty((h, w), np.int32)
    mag = np.zeros((h + 2, w + 2), np.int32)  # padded with the zeros outside the image
    _canny_sobel(gray, dx, dy, mag)
    stack = np.empty(h * w, np.int64)
    weak = np.zeros((h, w), np.uint8)
    top = _canny_thin(dx, dy, mag, low, high, weak, edges, stack)
    _canny_flood(weak, edges, stack, top)


def _canny_sobel(gray, dx, dy, mag):  # pragma: no cover - compiled by numba
    """The integer Sobel gradients ``dx``, ``dy`` (replicated borders) and their L1 magnitude
    inside the zero border of ``mag`` (h + 2, w + 2)."""
    h, w = gray.shape
    for r in range(h):
        ru, rd = max(r - 1, 0), min(r + 1, h - 1)
        for c in range(w):
            cl, cr = max(c - 1, 0), min(c + 1, w - 1)
            gx = (
                (np.int32(gray[ru, cr]) - np.int32(gray[ru, cl]))
                + 2 * (np.int32(gray[r, cr]) - np.int32(gray[r, cl]))
                + (np.int32(gray[rd, cr]) - np.int32(gray[rd, cl]))
            )
            gy = (
                (np.int32(gray[rd, cl]) - np.int32(gray[ru, cl]))
                + 2 * (np.int32(gray[rd, c]) - np.int32(gray[ru, c]))
                + (np.int32(gray[rd, cr]) - np.int32(gray[ru, cr]))
            )
            dx[r, c] = gx
            dy[r, c] = gy
            mag[r + 1, c + 1] = abs(gx) + abs(gy)


def _canny_thin(dx, dy, mag, low, high, weak, edges, stack):  # pragma: no cover - numba
    """OpenCV's non-maximum suppression: the pixels kept above ``low`` into ``weak``, those
    above ``high`` into ``edges`` and onto ``stack``; returns how many are on it."""
    h, w = dx.shape
    top = 0
    for r in range(h):
        for c in range(w):
            edges[r, c] = 0
    for r in range(h):
        for c in range(w):
            m = mag[r + 1, c + 1]
            if m <= low:
                continue
            ax = np.int64(abs(dx[r, c]))
            ay = np.int64(abs(dy[r, c])) << 15
            tg22x = ax * _TG22
            if ay < tg22x:  # horizontal gradient
                keep = m > mag[r + 1, c] and m >= mag[r + 1, c + 2]
            elif ay > tg22x + (ax << 16):  # vertical
                keep = m > mag[r, c + 1] and m >= mag[r + 2, c + 1]
            elif (dx[r, c] ^ dy[r, c]) >= 0:  # diagonal, same signs
                keep = m > mag[r, c] and m > mag[r + 2, c + 2]
            else:
                keep = m > mag[r, c + 2] and m > mag[r + 2, c]
            if keep:
                weak[r, c] = 1
                if m > high:
                    edges[r, c] = 1
                    stack[top] = r * w + c
                    top += 1
    return top


def _canny_flood(weak, edges, stack, top):  # pragma: no cover - compiled by numba
    """Hysteresis: flood ``edges`` from the ``top`` strong pixels on ``stack`` through the
    8-connected ``weak`` ones."""
    h, w = weak.shape
    while top > 0:
        top -= 1
        r, c = divmod(stack[top], w)
        for rr in range(max(r - 1, 0), min(r + 2, h)):
            for cc in range(max(c - 1, 0), min(c + 2, w)):
                if weak[rr, cc] and not edges[rr, cc]:
                    edges[rr, cc] = 1
                    stack[top] = rr * w + cc
                    top += 1


_HELPERS = {
    "distinct": ("_codes", "_lookup", "_table", "_distinct"),
    "grid": (),
    "stats": (
        "_pairwise_sum",
        "_mean_var",
        "_reflect",
        "_sobel_at",
        "_frame_sobel",
    ),
}
_HELPERS["magnitude"] = ("_reflect", "_sobel_at", "_frame_sobel")
_HELPERS["canny"] = ("_canny_sobel", "_canny_thin", "_canny_flood")
_HELPERS["cells"] = ()
_HELPERS["counts"] = ()
_KERNELS = {
    "distinct": ("_distinct_pair", _DISTINCT_SIGNATURE),
    "grid": ("_grid_pairs", _GRID_SIGNATURE),
    "stats": ("_patch_stats", _STATS_SIGNATURE),
    "magnitude": ("_magnitude", _MAGNITUDE_SIGNATURE),
    "counts": ("_bin_counts", _COUNTS_SIGNATURE),
    "canny": ("_canny", _CANNY_SIGNATURE),
    "cells": ("_cells", _CELLS_SIGNATURE),
}


def _load(name: str) -> Callable[..., None] | None:
    """The compiled kernel ``name`` (compiled on first call, thread-safe); ``None`` when numba
    is unusable. Its helpers are compiled first and replace the plain functions in this
    module's namespace, where the kernel looks them up."""
    global _failed
    if name not in _kernels and not _failed:
        with _lock:
            if name not in _kernels and not _failed:
                if _numba_sum.load() and _numba.compile_helpers(globals(), _HELPERS[name]):
                    function, signature = _KERNELS[name]
                    kernel = _numba.compile_kernel(_signature(signature), globals()[function])
                    if kernel is not None:
                        _kernels[name] = kernel
                _failed = name not in _kernels
    return _kernels.get(name)


def _signature(text: str) -> object:
    """``text`` as a numba signature, ``LUMA`` standing for a read-only C-contiguous uint8 2-D
    array (a writable one is accepted too)."""
    if "LUMA" not in text:
        return text
    import numba

    t = numba.types
    luma = t.Array(t.uint8, 2, "C", readonly=True)
    arguments = {
        _STATS_SIGNATURE: (luma, t.int64[::1], t.int64[::1], t.int64, t.float64[:, ::1]),
        _MAGNITUDE_SIGNATURE: (luma, t.float64[:, ::1]),
        _CANNY_SIGNATURE: (
            t.Array(t.uint8, 2, "A", readonly=True),
            t.int64,
            t.int64,
            t.uint8[:, ::1],
        ),
    }[text]
    return t.void(*arguments)


def load_banding() -> bool:
    """Whether the banding kernels are usable (compiling them on first call)."""
    return all(_load(name) is not None for name in ("stats", "magnitude", "counts", "canny"))


def canny_opencv(gray: np.ndarray, low_threshold: float, high_threshold: float) -> np.ndarray:
    """``texture.canny_opencv(gray, low, high)`` (the same bool map) by :func:`_canny`; raises
    ``RuntimeError`` when numba is unusable (callers check :func:`load_banding` first)."""
    kernel = _load("canny")
    if kernel is None:
        raise RuntimeError("the numba Canny kernel is unavailable")
    low, high = sorted((int(np.floor(low_threshold)), int(np.floor(high_threshold))))
    edges = np.empty(gray.shape, dtype=np.uint8)
    kernel(np.require(gray, np.uint8), low, high, edges)
    return edges.view(bool)


def gradient_histogram(patch: np.ndarray, bins: int) -> np.ndarray | None:
    """``np.histogram(colour._sobel_magnitude(patch), bins)[0]`` of a uint8 luma patch, the
    same counts, with numba's integer Sobel and a binary search per value over numpy's own
    bin edges; ``None`` when numba is unusable."""
    magnitude, counts = _load("magnitude"), _load("counts")
    if magnitude is None or counts is None:
        return None
    mag = np.empty(patch.shape, dtype=np.float64)
    magnitude(np.ascontiguousarray(patch), mag)
    values = mag.ravel()
    _, edges = np.histogram(values[:0], bins=bins, range=(values.min(), values.max()))
    hist = np.empty(bins, dtype=np.int64)
    counts(values, edges, hist)
    return hist


def patch_stats(gray: np.ndarray, ys: list[int], xs: list[int], p: int) -> np.ndarray | None:
    """``(len(ys) * len(xs), 3)`` float64: variance of each ``p`` x ``p`` luma patch, mean and
    standard deviation of its Sobel magnitude (see :func:`_patch_stats`); ``None`` when numba
    is unusable."""
    kernel = _load("stats")
    if kernel is None:
        return None
    out = np.empty((len(ys) * len(xs), 3), dtype=np.float64)
    ys_, xs_ = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    kernel(np.ascontiguousarray(gray), ys_, xs_, int(p), out)
    return out


class ColourPairs:
    """Distinct colour pairs of frame pairs of ``n`` pixels, buffers allocated once."""

    def __init__(self, n: int) -> None:
        self.distinct, self.grid, self.cells = _load("distinct"), _load("grid"), _load("cells")
        i32 = np.int32
        self.index_o, self.index_c = np.empty(n, i32), np.empty(n, i32)
        self.colours_o, self.colours_c = np.empty(n, i32), np.empty(n, i32)
        self.sizes = np.empty(2, np.int64)

    def __call__(
        self, original: np.ndarray, compressed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(colours_o, colours_c, pair_o, pair_c, counts)`` of one frame pair (H, W, 3):
        sorted distinct 24-bit colours of each frame, and per distinct pair (sorted by
        original colour, then compressed colour) its positions in those and its pixel count
        (what ``np.unique`` of a per-pixel pair key gives, found without sorting pixels)."""
        assert self.distinct is not None and self.grid is not None and self.cells is not None
        o = np.ascontiguousarray(original).reshape(-1, 3)
        c = np.ascontiguousarray(compressed).reshape(-1, 3)
        self.distinct(o, c, self.index_o, self.index_c, self.colours_o, self.colours_c, self.sizes)
        no, nc = (int(v) for v in self.sizes)
        colours_o, rank_o = _sorted_ranks(self.colours_o[:no])
        colours_c, rank_c = _sorted_ranks(self.colours_c[:nc])
        n = o.shape[0]
        if no * nc <= 4 * n + 65536:  # a count per cell of the (no, nc) grid
            grid = np.zeros(no * nc, dtype=np.int64)
            most = min(n, no * nc)  # pairs at most
            pair_o, pair_c, counts = (np.empty(most, dtype=np.int64) for _ in range(3))
            k = self.grid(
                self.index_o, self.index_c, rank_o, rank_c, nc, grid, pair_o, pair_c, counts
            )
            return colours_o, colours_c, pair_o[:k], pair_c[:k], counts[:k]
        # Very many colours (not a GIF frame): sort the pixels' cell numbers.
        cells = np.empty(n, dtype=np.int64)
        self.cells(self.index_o, self.index_c, rank_o, rank_c, nc, cells)
        cells, counts = np.unique(cells, return_counts=True)
        return colours_o, colours_c, cells // nc, cells % nc, counts


def _sorted_ranks(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted ``colours`` and each colour's position in that order (int64)."""
    order = np.argsort(colours)
    rank = np.empty(colours.size, dtype=np.int64)
    rank[order] = np.arange(colours.size)
    return colours[order], rank


def colour_pairs(n: int) -> ColourPairs | None:
    """A :class:`ColourPairs` for frames of ``n`` pixels, or ``None`` when numba is unusable."""
    if any(_load(name) is None for name in ("distinct", "grid", "cells")):
        return None
    return ColourPairs(n)
