"""Numba kernel of the Gaussian-window SSIM terms per scale (accelerating
``structural.ms_ssim`` and ``structural.ssim(gaussian=True)``), with the numpy kernel's values
bit for bit.

For each frame pair it computes what ``structural._GaussianSSIM`` and
``structural._downsample2`` compute, scale by scale, with the same float64 operations in the
same order:

* luma with OpenCV's fixed-point formula in integers (as ``_numba._ssim_block``), as float64;
* the 11-tap Gaussian along each row (valid columns only) of the four planes x, y,
  x^2 + y^2 and x*y, into an 11-row ring buffer, then, once 11 rows are in, down the columns:
  scipy's ``correlate1d`` order for a symmetric kernel (the centre, then each pair of taps
  from the outermost in), so the window means are scipy's;
* the per-window contrast-structure (and, at the last scale, SSIM) terms in the numpy
  kernel's operations, into a map averaged with numpy's pairwise summation
  (:mod:`giflab_dask.kernels._numba_sum`);
* the 2x2 average pooling (odd last row/column paired with itself) into the next scale.

``terms[i, j]`` receives the raw (unclamped) mean contrast-structure of scale ``j`` for all
but the last scale and the mean SSIM of the last; the caller clamps and raises to the weights
exactly as the numpy path does. Inner loops are separate numba functions over one view per
tap: LLVM vectorises them there and not inlined in the kernel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import _numba, _numba_sum

__all__ = ["gaussian_terms"]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_R = 5  # radius of the 11-tap window
_WIN = 2 * _R + 1
_LUMA_R, _LUMA_G, _LUMA_B, _LUMA_HALF = 9798, 19235, 3735, 16384

_SIGNATURE = (
    "void(uint8[:, :, :, ::1], uint8[:, :, :, ::1], float64[::1], int64[:, ::1], float64[:, ::1])"
)

_lock = threading.Lock()
_kernel: Callable[..., None] | None = None
_failed = False


def _taps(src, start, step, n, g0, g1, g2, g3, g4, g5, dst, out):  # pragma: no cover - numba
    """``dst[out + c]`` = the symmetric 11-tap filter of ``src`` centred on ``start + c``, taps
    ``step`` apart, for ``c < n`` (outer taps paired first, as scipy's ``correlate1d``)."""
    # One view per tap, indexed from 0: plain contiguous loads that LLVM vectorises.
    _sym(
        src[start : start + n],
        src[start - step : start - step + n],
        src[start + step : start + step + n],
        src[start - 2 * step : start - 2 * step + n],
        src[start + 2 * step : start + 2 * step + n],
        src[start - 3 * step : start - 3 * step + n],
        src[start + 3 * step : start + 3 * step + n],
        src[start - 4 * step : start - 4 * step + n],
        src[start + 4 * step : start + 4 * step + n],
        src[start - 5 * step : start - 5 * step + n],
        src[start + 5 * step : start + 5 * step + n],
        g0,
        g1,
        g2,
        g3,
        g4,
        g5,
        dst[out : out + n],
    )


def _sym(  # pragma: no cover - compiled by numba
    c0, m1, p1, m2, p2, m3, p3, m4, p4, m5, p5, g0, g1, g2, g3, g4, g5, dst
):
    """The symmetric 11-tap sum over views of one length (``c0`` the centre, ``m``/``p`` the
    taps before/after it): the centre, then each pair's sum from the outermost in, the order
    of scipy's ``correlate1d`` for a symmetric kernel."""
    for c in range(dst.size):
        dst[c] = (
            c0[c] * g0
            + (m5[c] + p5[c]) * g5
            + (m4[c] + p4[c]) * g4
            + (m3[c] + p3[c]) * g3
            + (m2[c] + p2[c]) * g2
            + (m1[c] + p1[c]) * g1
        )


def _vtaps(ring, first, n, g0, g1, g2, g3, g4, g5, dst):  # pragma: no cover - numba
    """``dst[c]`` = the symmetric 11-tap filter down column ``c`` of the 11-row ``ring`` (rows
    ``n`` long) whose oldest row is in slot ``first``."""
    rows = ring[: 11 * n].reshape(11, n)
    _sym(
        rows[(first + 5) % 11],
        rows[(first + 4) % 11],
        rows[(first + 6) % 11],
        rows[(first + 3) % 11],
        rows[(first + 7) % 11],
        rows[(first + 2) % 11],
        rows[(first + 8) % 11],
        rows[(first + 1) % 11],
        rows[(first + 9) % 11],
        rows[first],
        rows[(first + 10) % 11],
        g0,
        g1,
        g2,
        g3,
        g4,
        g5,
        dst[:n],
    )


def _cs_row(ux, uy, uss, uxy, out):  # pragma: no cover - numba
    """The contrast-structure term of a row of windows (the numpy kernel's operations)."""
    for c in range(out.size):
        t1 = ux[c] * uy[c]
        t2 = ux[c] * ux[c] + uy[c] * uy[c]
        out[c] = (2.0 * (uxy[c] - t1) + _C2) / (uss[c] - t2 + _C2)


def _ssim_row(ux, uy, uss, uxy, out):  # pragma: no cover - numba
    """The SSIM (luminance times contrast-structure) of a row of windows."""
    for c in range(out.size):
        t1 = ux[c] * uy[c]
        t2 = ux[c] * ux[c] + uy[c] * uy[c]
        cs = (2.0 * (uxy[c] - t1) + _C2) / (uss[c] - t2 + _C2)
        out[c] = (2.0 * t1 + _C1) / (t2 + _C1) * cs


def _pool(src, h, w, dst, h2, w2):  # pragma: no cover - numba
    """2x2 average pooling of ``src`` (h, w) into ``dst`` (h2, w2) = ceil halves, flat; an odd
    last row/column is paired with itself (``structural._downsample2``'s operations)."""
    hh, ww = h // 2, w // 2
    for r in range(hh):
        r0 = 2 * r * w
        r1 = r0 + w
        o = r * w2
        for c in range(ww):
            c0 = 2 * c
            v = (src[r0 + c0] + src[r1 + c0]) + src[r0 + c0 + 1]
            dst[o + c] = (v + src[r1 + c0 + 1]) * 0.25
        if w % 2:
            dst[o + ww] = (src[r0 + w - 1] + src[r1 + w - 1]) * 0.5
    if h % 2:
        r0 = (h - 1) * w
        o = hh * w2
        for c in range(ww):
            dst[o + c] = (src[r0 + 2 * c] + src[r0 + 2 * c + 1]) * 0.5
        if w % 2:
            dst[o + ww] = src[r0 + w - 1]


def _scale_map(  # pragma: no cover - numba
    x, y, h, w, last, g0, g1, g2, g3, g4, g5, sq, xy, hx, hy, hs, hp, ux, uy, uss, uxy, terms_map
):
    """The window terms of one scale of the planes ``x``, ``y`` (h, w) into ``terms_map``:
    contrast-structure, or SSIM when ``last``. ``sq``, ``xy`` are row scratch, ``hx`` ... ``hp``
    the ring buffers, ``ux`` ... ``uxy`` the window means; ``g0`` ... ``g5`` the taps from the
    centre out."""
    wv = w - 2 * _R
    for r in range(h):
        # Row r of the four planes filtered along the row into ring slot r % 11 ...
        row = r * w
        for c in range(w):
            xv, yv = x[row + c], y[row + c]
            sq[c] = xv * xv + yv * yv
            xy[c] = xv * yv
        slot = (r % _WIN) * wv
        _taps(x, row + _R, 1, wv, g0, g1, g2, g3, g4, g5, hx, slot)
        _taps(y, row + _R, 1, wv, g0, g1, g2, g3, g4, g5, hy, slot)
        _taps(sq, _R, 1, wv, g0, g1, g2, g3, g4, g5, hs, slot)
        _taps(xy, _R, 1, wv, g0, g1, g2, g3, g4, g5, hp, slot)
        if r < _WIN - 1:
            continue
        # ... then, once 11 rows are in, along the column centred on row r - 5.
        first = (r - 10) % _WIN  # the slot of row r - 10
        _vtaps(hx, first, wv, g0, g1, g2, g3, g4, g5, ux)
        _vtaps(hy, first, wv, g0, g1, g2, g3, g4, g5, uy)
        _vtaps(hs, first, wv, g0, g1, g2, g3, g4, g5, uss)
        _vtaps(hp, first, wv, g0, g1, g2, g3, g4, g5, uxy)
        out = terms_map[(r - 10) * wv : (r - 9) * wv]
        if last:
            _ssim_row(ux[:wv], uy[:wv], uss[:wv], uxy[:wv], out)
        else:
            _cs_row(ux[:wv], uy[:wv], uss[:wv], uxy[:wv], out)


def _terms_block(a, b, g, shapes, terms):  # pragma: no cover - compiled by numba
    """Raw SSIM terms of each frame pair of two (t, H, W, 3) uint8 blocks into ``terms`` (t, M).

    ``g`` is the 11-tap kernel, ``shapes`` the (M, 2) scale shapes (each at least 11x11).
    """
    t = a.shape[0]
    m = shapes.shape[0]
    h0, w0 = shapes[0, 0], shapes[0, 1]
    n0 = h0 * w0
    x = np.empty(n0, np.float64)
    y = np.empty(n0, np.float64)
    nx = np.empty(n0, np.float64)
    ny = np.empty(n0, np.float64)
    wv0 = w0 - 2 * _R
    # Ring buffers: the last 11 rows filtered along the row, per plane.
    hx = np.empty(_WIN * wv0, np.float64)
    hy = np.empty(_WIN * wv0, np.float64)
    hs = np.empty(_WIN * wv0, np.float64)
    hp = np.empty(_WIN * wv0, np.float64)
    # The map of the scale's window terms, averaged as numpy averages it (pairwise sum).
    terms_map = np.empty((h0 - 2 * _R) * wv0, np.float64)
    partial = np.empty(64, np.float64)
    sq = np.empty(w0, np.float64)
    xy = np.empty(w0, np.float64)
    ux = np.empty(wv0, np.float64)
    uy = np.empty(wv0, np.float64)
    uss = np.empty(wv0, np.float64)
    uxy = np.empty(wv0, np.float64)
    g0, g1, g2, g3, g4, g5 = g[5], g[4], g[3], g[2], g[1], g[0]
    kr, kg, kb, kh = np.int32(_LUMA_R), np.int32(_LUMA_G), np.int32(_LUMA_B), np.int32(_LUMA_HALF)
    shift = np.int32(15)
    for i in range(t):
        fa = a[i].reshape(n0 * 3)
        fb = b[i].reshape(n0 * 3)
        for q in range(n0):
            j = 3 * q
            x[q] = np.float64(
                (kr * np.int32(fa[j]) + kg * np.int32(fa[j + 1]) + kb * np.int32(fa[j + 2]) + kh)
                >> shift
            )
            y[q] = np.float64(
                (kr * np.int32(fb[j]) + kg * np.int32(fb[j + 1]) + kb * np.int32(fb[j + 2]) + kh)
                >> shift
            )
        for s in range(m):
            h, w = shapes[s, 0], shapes[s, 1]
            last = s == m - 1
            _scale_map(
                x, y, h, w, last, g0, g1, g2, g3, g4, g5, sq, xy, hx, hy, hs, hp, ux, uy, uss, uxy,
                terms_map,
            )  # fmt: skip
            n = (h - 2 * _R) * (w - 2 * _R)
            ops = _numba_sum.sum_plan(n)
            terms[i, s] = _numba_sum.run_plan(terms_map[:n], ops, 0.0, False, partial) / n
            if last:
                break
            # 2x2 average pooling into the next scale (an odd last row/column pairs with itself).
            h2, w2 = shapes[s + 1, 0], shapes[s + 1, 1]
            _pool(x, h, w, nx, h2, w2)
            _pool(y, h, w, ny, h2, w2)
            x, nx = nx, x
            y, ny = ny, y


def load() -> Callable[..., None] | None:
    """The compiled kernel (compiled on first call, thread-safe); ``None`` without numba."""
    global _kernel, _failed
    if _kernel is None and not _failed:
        with _lock:
            if _kernel is None and not _failed:
                # _terms_block calls the helpers; its steps are inlined into it
                helpers = ("_taps", "_sym", "_vtaps", "_cs_row", "_ssim_row", "_pool")
                steps = ("_scale_map",)
                if (
                    _numba_sum.load()
                    and _numba.compile_helpers(globals(), helpers)
                    and _numba.compile_helpers(globals(), steps, inline=True)
                ):
                    _kernel = _numba.compile_kernel(_SIGNATURE, _terms_block)
                _failed = _kernel is None
    return _kernel


def gaussian_terms(
    a: np.ndarray, b: np.ndarray, shapes: list[tuple[int, int]], g: np.ndarray
) -> np.ndarray | None:
    """Raw Gaussian SSIM terms ``(t, len(shapes))`` of two validated uint8 blocks (see the module
    docstring), or ``None`` when numba is unusable (the caller uses the numpy kernel)."""
    kernel = load()
    if kernel is None:
        return None
    t = a.shape[0]
    terms = np.empty((t, len(shapes)), dtype=np.float64)
    if t:
        kernel(
            np.ascontiguousarray(a),
            np.ascontiguousarray(b),
            np.ascontiguousarray(g, dtype=np.float64),
            np.array(shapes, dtype=np.int64).reshape(-1, 2),
            terms,
        )
    return terms
