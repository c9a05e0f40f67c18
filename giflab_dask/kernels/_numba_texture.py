"""Numba kernels of the texture, edge, histogram, sharpness and temporal metrics.

Each kernel reproduces, bit for bit, what the numpy path of :mod:`~giflab_dask.kernels.texture`
or :mod:`~giflab_dask.kernels.temporal` computes, in one compiled pass per frame (luma comes
from :func:`giflab_dask.kernels._frames.luma`, shared by the kernels of a block):

* :func:`lbp_histograms` -- histograms of :func:`skimage.feature.local_binary_pattern` codes
  with ``method="uniform"``: the same sample points (rounded to 5 decimals), the same bilinear
  interpolation with a zero border, operation for operation in float64 (so the same rounding
  decides every ``neighbour >= centre`` test), and skimage's count of 0/1 changes, which does
  not wrap around from the last neighbour to the first;
* :func:`canny` -- :func:`skimage.feature.canny` with ``sigma=0`` on a uint8 image: the image
  scaled by ``1/255`` in float64, scipy's Sobel (a ``[-1, 0, 1]`` difference, then a
  ``[1, 2, 1]`` smoothing, border ``reflect``) with scipy's order of additions, the L2
  magnitude, skimage's interpolating non-maximum suppression (its low threshold in float32, as
  its Cython signature has it) and its hysteresis (8-connected groups of candidates holding a
  value ``>= high``);
* :func:`channel_histograms`, :func:`laplacian_sums`, :func:`abs_diff_sums` -- exact integer
  counts and sums.

This module imports without numba (a process that runs none of its kernels should not pay for
importing numba): numba is imported on the first call, which compiles (or loads from numba's
on-disk cache) only the kernels that are used. A function returns ``None`` when numba is
unusable (the caller then runs the numpy path); :func:`import_error` says why. Compiled
functions release the GIL.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from giflab_dask.kernels import _numba

__all__ = [
    "abs_diff_sums",
    "canny",
    "channel_histograms",
    "import_error",
    "laplacian_sums",
    "lbp_histograms",
    "numba_missing",
]

# ----------------------------------------------------------------------- kernels (numba source)


def _lbp_block(  # pragma: no cover - compiled by numba
    gray, pad, r_lo, r_hi, c_lo, c_hi, wr0, wr1, wc0, wc1, exact, hist
):
    """Uniform-LBP code histograms of a (t, H, W) uint8 block into ``hist`` (t, P + 2).

    Sample ``i`` of pixel ``(y, x)`` lies between rows ``y + r_lo[i]``, ``y + r_hi[i]`` and
    columns ``x + c_lo[i]``, ``x + c_hi[i]``; ``wr0[i, y] = 1 - dr``, ``wr1[i, y] = dr`` and
    ``wc0[i, x]``, ``wc1[i, x]`` are skimage's interpolation weights, computed by the caller
    as skimage computes them (they depend on ``y`` and ``x`` through rounding). ``exact[i]``:
    the sample is a pixel (all weights 0 and 1), compared without interpolating (the formula
    would give the pixel exactly). Pixels outside the frame are 0, skimage's ``cval``.
    """
    t, h, w = gray.shape
    p = r_lo.shape[0]
    img = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)  # the frame with a zero border
    ones = np.empty(w, np.int32)
    changes = np.empty(w, np.int32)
    prev = np.empty(w, np.int32)
    counts = np.zeros((2, p + 2), np.int64)
    for k in range(t):
        for y in range(h):
            dst = img[y + pad, pad:]
            row = gray[k, y]
            for x in range(w):
                dst[x] = row[x]
        counts[:, :] = 0
        for y in range(h):
            centre = img[y + pad, pad:]
            for x in range(w):
                ones[x] = 0
                changes[x] = 0
            for i in range(p):
                # Row views at the sample's offsets: indexed by the loop variable alone, the
                # loops have no negative-index checks and vectorise.
                lo_l = img[y + pad + r_lo[i], pad + c_lo[i] :]
                lo_h = img[y + pad + r_lo[i], pad + c_hi[i] :]
                hi_l = img[y + pad + r_hi[i], pad + c_lo[i] :]
                hi_h = img[y + pad + r_hi[i], pad + c_hi[i] :]
                # skimage counts 0/1 changes between samples i - 1 and i only (no wrap-around)
                later = np.int32(i > 0)
                if exact[i]:
                    for x in range(w):
                        bit = np.int32(lo_l[x] >= centre[x])
                        changes[x] += (bit ^ prev[x]) * later
                        ones[x] += bit
                        prev[x] = bit
                else:
                    a0 = wr0[i, y]
                    a1 = wr1[i, y]
                    b0 = wc0[i]
                    b1 = wc1[i]
                    for x in range(w):
                        # skimage's bilinear_interpolation, operation for operation
                        top = b0[x] * np.float64(lo_l[x]) + b1[x] * np.float64(lo_h[x])
                        bottom = b0[x] * np.float64(hi_l[x]) + b1[x] * np.float64(hi_h[x])
                        value = a0 * top + a1 * bottom
                        # skimage's ``value - centre >= 0``: the same test for finite doubles
                        bit = np.int32(value >= np.float64(centre[x]))
                        changes[x] += (bit ^ prev[x]) * later
                        ones[x] += bit
                        prev[x] = bit
            for x in range(w):
                ones[x] = ones[x] if changes[x] <= 2 else p + 1  # now the code
            # two histograms: consecutive increments of one bin do not wait on each other
            c0 = counts[0]
            c1 = counts[1]
            for x in range(0, w - 1, 2):
                c0[ones[x]] += 1
                c1[ones[x + 1]] += 1
            if w % 2:
                c0[ones[w - 1]] += 1
        for q in range(p + 2):
            hist[k, q] = counts[0, q] + counts[1, q]


def _canny_block(gray, scale, low, high, out):  # pragma: no cover - compiled by numba
    """skimage's Canny with ``sigma=0`` of each (H, W) uint8 frame of ``gray`` into ``out``
    (all False on entry).

    Grey level ``v`` is ``v * scale`` in float64 (skimage's ``img_as_float``, ``scale`` being
    ``1 / 255``); ``low`` is the float32 low threshold as a float64, ``high`` the float64 high
    threshold, both scaled. Rows stream through 3-row ring buffers (slot ``row % 3``): row
    ``r``'s gradients are computed, then row ``r - 1`` is thinned.
    """
    t, h, w = gray.shape
    di = np.empty(w, np.float64)
    dj = np.empty((3, w), np.float64)
    gi = np.empty((3, w), np.float64)
    gj = np.empty((3, w), np.float64)
    mag = np.empty((3, w), np.float64)
    state = np.zeros((h, w), np.uint8)
    stack = np.empty(h * w, np.int64)
    for k in range(t):
        g = gray[k]
        for r in range(h):
            _canny_gradients(g, r, scale, di, dj, gi, gj, mag)
            if r >= 2:
                _canny_suppress(gi, gj, mag, r - 1, low, high, state[r - 1, 1:])
        _canny_hysteresis(state, out[k].reshape(h * w), stack)


def _canny_gradients(g, r, scale, di, dj, gi, gj, mag):  # pragma: no cover - numba
    """Row ``r``'s Sobel gradients and L2 magnitude of frame ``g`` into ring slot ``r % 3`` of
    ``gi``, ``gj``, ``mag`` (``dj`` holds rows' [-1, 0, 1] differences, ``di`` is scratch)."""
    h, w = g.shape
    # jsobel's [-1, 0, 1] along rows r (first time) and r + 1; border "reflect".
    # Neighbours are read through shifted views (no negative-index checks: the loops
    # vectorise).
    for q in range(r if r == 0 else r + 1, min(r + 2, h)):
        d = dj[q % 3]
        row = g[q]
        if w > 2:
            left = row[:-2]
            right = row[2:]
            mid = d[1:]
            for x in range(w - 2):
                mid[x] = np.float64(right[x]) * scale - np.float64(left[x]) * scale
        d[0] = np.float64(row[min(1, w - 1)]) * scale - np.float64(row[0]) * scale
        d[w - 1] = np.float64(row[w - 1]) * scale - np.float64(row[max(w - 2, 0)]) * scale
    up = max(r - 1, 0)
    dn = min(r + 1, h - 1)
    s = r % 3
    # isobel's [-1, 0, 1] down the columns, then [1, 2, 1] along the row
    above = g[up]
    below = g[dn]
    for x in range(w):
        di[x] = np.float64(below[x]) * scale - np.float64(above[x]) * scale
    a = gi[s]
    if w > 2:
        left_d = di[:-2]
        right_d = di[2:]
        centre = di[1:]
        mid_a = a[1:]
        for x in range(w - 2):
            mid_a[x] = 2.0 * centre[x] + (left_d[x] + right_d[x])
    a[0] = 2.0 * di[0] + (di[0] + di[min(1, w - 1)])
    a[w - 1] = 2.0 * di[w - 1] + (di[max(w - 2, 0)] + di[w - 1])
    # jsobel's [1, 2, 1] down the columns; the L2 magnitude
    b = gj[s]
    m = mag[s]
    du = dj[up % 3]
    d0 = dj[r % 3]
    dd = dj[dn % 3]
    for x in range(w):
        b[x] = 2.0 * d0[x] + (du[x] + dd[x])
        m[x] = np.sqrt(a[x] * a[x] + b[x] * b[x])


def _canny_suppress(gi, gj, mag, y, low, high, st):  # pragma: no cover - numba
    """Non-maximum suppression of row ``y`` into ``st`` (its state from column 1 on: 1 =
    candidate, 2 = candidate >= high); the gradient rings hold rows ``y - 1`` to ``y + 1``.

    skimage's eroded mask drops the outer ring. As skimage's _nonmaximum_suppression_bilinear
    but without branches, so that it vectorises: every neighbour is loaded, then selected.
    skimage's four cases give w = min / max of |isobel|, |jsobel| (x / x is 1).
    """
    w = mag.shape[1]
    a = gi[y % 3][1:]
    b = gj[y % 3][1:]
    mu_l = mag[(y - 1) % 3][:-2]
    mu_c = mag[(y - 1) % 3][1:]
    mu_r = mag[(y - 1) % 3][2:]
    m0_l = mag[y % 3][:-2]
    m0_c = mag[y % 3][1:]
    m0_r = mag[y % 3][2:]
    md_l = mag[(y + 1) % 3][:-2]
    md_c = mag[(y + 1) % 3][1:]
    md_r = mag[(y + 1) % 3][2:]
    for x in range(w - 2):
        mc = m0_c[x]
        si = a[x]
        sj = b[x]
        ai = abs(si)
        aj = abs(sj)
        wt = min(ai, aj) / max(ai, aj)
        same = (si <= 0) == (sj <= 0)
        steep = (ai > aj) | ((not same) & (ai == aj))
        vmu_l = mu_l[x]
        vmu_c = mu_c[x]
        vmu_r = mu_r[x]
        vm0_l = m0_l[x]
        vm0_r = m0_r[x]
        vmd_l = md_l[x]
        vmd_c = md_c[x]
        vmd_r = md_r[x]
        n11 = (vmd_c if same else vmu_c) if steep else vm0_r
        n12 = vmd_r if same else vmu_r
        n21 = (vmu_c if same else vmd_c) if steep else vm0_l
        n22 = vmu_l if same else vmd_l
        keep = (
            (mc >= low) & (n12 * wt + n11 * (1.0 - wt) <= mc) & (n22 * wt + n21 * (1.0 - wt) <= mc)
        )
        st[x] = np.uint8(keep) * (np.uint8(1) + np.uint8(mc >= high))


def _canny_hysteresis(state, kept, stack):  # pragma: no cover - numba
    """The 8-connected groups of candidates in ``state`` (h, w) holding a strong pixel,
    flooded from each strong pixel (3 = kept) and written to the flat ``kept`` as found
    (``kept`` starts False). Candidates are inside the outer ring, so every neighbour is in
    the frame."""
    h, w = state.shape
    flat = state.reshape(h * w)
    for y0 in range(1, h - 1):
        row = state[y0]
        for x0 in range(1, w - 1):
            if row[x0] != 2:
                continue
            start = y0 * w + x0
            flat[start] = 3
            kept[start] = True
            stack[0] = start
            n = 1
            while n > 0:
                n -= 1
                c = stack[n]
                for j in (
                    c - w - 1,
                    c - w,
                    c - w + 1,
                    c - 1,
                    c + 1,
                    c + w - 1,
                    c + w,
                    c + w + 1,
                ):
                    if flat[j] == 1 or flat[j] == 2:
                        flat[j] = 3
                        kept[j] = True
                        stack[n] = j
                        n += 1


def _channel_hist_block(rgb, hist):  # pragma: no cover - compiled by numba
    """256-bin histogram of each channel of each frame of a (t, H, W, 3) block: (t, 3, 256)."""
    t, h, w, _ = rgb.shape
    n = h * w
    for k in range(t):
        for c in range(3):
            for q in range(256):
                hist[k, c, q] = 0
        f = rgb[k].reshape(n * 3)
        r = hist[k, 0]
        g = hist[k, 1]
        b = hist[k, 2]
        for q in range(n):
            j = 3 * q
            r[f[j]] += 1
            g[f[j + 1]] += 1
            b[f[j + 2]] += 1


def _laplacian_block(gray, sums):  # pragma: no cover - compiled by numba
    """Exact sum and sum of squares of the 3x3 Laplacian (border reflect-101) of each frame.

    ``sums[k] = (sum L, sum L**2)`` in int64; ``L = up + down + left + right - 4 centre``
    with OpenCV's ``BORDER_REFLECT_101`` (scipy ``mirror``), a lone row or column counting as
    its own neighbour. Inner columns are read through shifted views, so the loop vectorises.
    """
    t, h, w = gray.shape
    for k in range(t):
        s1 = 0
        s2 = 0
        g = gray[k]
        for y in range(h):
            above = g[y - 1 if y > 0 else min(1, h - 1)]
            below = g[y + 1 if y < h - 1 else max(h - 2, 0)]
            row = g[y]
            for end in range(2 if w > 1 else 1):  # the first and last columns
                x = 0 if end == 0 else w - 1
                left = row[x - 1] if x > 0 else row[min(1, w - 1)]
                right = row[x + 1] if x < w - 1 else row[max(w - 2, 0)]
                lap = (
                    np.int32(above[x])
                    + np.int32(below[x])
                    + np.int32(left)
                    + np.int32(right)
                    - 4 * np.int32(row[x])
                )
                s1 += lap
                s2 += lap * lap
            if w > 2:
                up = above[1:]
                dn = below[1:]
                mid = row[1:]
                left = row[:-2]
                right = row[2:]
                for x in range(w - 2):
                    lap = (
                        np.int32(up[x])
                        + np.int32(dn[x])
                        + np.int32(left[x])
                        + np.int32(right[x])
                        - 4 * np.int32(mid[x])
                    )
                    s1 += lap
                    s2 += lap * lap
        sums[k, 0] = s1
        sums[k, 1] = s2


def _abs_diff_block(frames, out):  # pragma: no cover - compiled by numba
    """``out[k] = sum |frames[k + 1] - frames[k]|`` over all bytes, exact in int64."""
    n = frames.shape[0]
    for k in range(n - 1):
        a = frames[k]
        b = frames[k + 1]
        total = 0
        for j in range(a.shape[0]):
            total += abs(np.int32(b[j]) - np.int32(a[j]))
        out[k] = total


# --------------------------------------------------------------------------------- compilation

_SIGNATURES: dict[str, tuple[str, Callable[..., None]]] = {
    "lbp": (
        "void(uint8[:, :, ::1], int64, int64[::1], int64[::1], int64[::1], int64[::1], "
        "float64[:, ::1], float64[:, ::1], float64[:, ::1], float64[:, ::1], boolean[::1], "
        "int64[:, ::1])",
        _lbp_block,
    ),
    "canny": (
        "void(uint8[:, :, ::1], float64, float64, float64, boolean[:, :, ::1])",
        _canny_block,
    ),
    "chist": ("void(uint8[:, :, :, ::1], int64[:, :, ::1])", _channel_hist_block),
    "laplacian": ("void(uint8[:, :, ::1], int64[:, ::1])", _laplacian_block),
    "absdiff": ("void(uint8[:, ::1], int64[::1])", _abs_diff_block),
}

# The steps of a kernel, compiled before it (it looks them up in this module) and inlined.
_HELPERS = {"canny": ("_canny_gradients", "_canny_suppress", "_canny_hysteresis")}

_lock = threading.Lock()
_compiled: dict[str, Callable[..., None]] = {}
_import_error: str | None = None


def _kernel(name: str) -> Callable[..., None] | None:
    """The compiled kernel ``name``, compiled (or loaded from numba's cache) on first use;
    ``None`` when numba cannot be imported or the kernel does not compile."""
    global _import_error
    kernel = _compiled.get(name)
    if kernel is not None or _import_error is not None:
        return kernel
    with _lock:
        if name in _compiled or _import_error is not None:
            return _compiled.get(name)
        try:
            import numba  # noqa: F401  (without numba: the numpy kernels)
        except ImportError as exc:  # not installed, or installed against another numpy
            _import_error = f"{type(exc).__name__}: {exc}"
            return None
        signature, function = _SIGNATURES[name]
        try:
            _numba.compile_helpers(globals(), _HELPERS.get(name, ()), inline=True)
            kernel = _numba.njit_kernel(signature, function)
        except Exception as exc:
            _import_error = f"numba could not compile the {name} kernel: {exc}"
            warnings.warn(
                f"{_import_error}; using the numpy kernels (same values, slower).",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        _compiled[name] = kernel
        return kernel


def import_error() -> str | None:
    """Why a function returned ``None`` (``None`` if none did)."""
    return _import_error


def numba_missing(kernel: str) -> ImportError:
    """The error of ``backend="numba"`` when these kernels are unusable, saying what to do."""
    return ImportError(
        f"{kernel}: backend='numba' needs numba ({_import_error}). Install it with pip "
        "install 'giflab-dask[numba]', or use backend='auto' (numba when available, else "
        "numpy) or 'numpy'; the values are the same."
    )


# ---------------------------------------------------------------------------------- wrappers


@functools.lru_cache(maxsize=32)
def _lbp_tables(height: int, width: int, radius: int) -> tuple[Any, ...] | None:
    """skimage's sample offsets and interpolation weights for ``P = 8 * radius`` neighbours
    at ``R = radius``, per row and per column, computed with its float64 operations.

    ``None`` if an offset varied along a row or column (it cannot for these radii; the caller
    then uses skimage itself).
    """
    p = 8 * radius
    r = float(np.float32(radius))  # skimage's ``float R`` (C float)
    angles = 2 * np.pi * np.arange(p, dtype=np.double) / p
    rp = np.round(-r * np.sin(angles), 5)
    cp = np.round(r * np.cos(angles), 5)

    def axis(n: int, offsets: np.ndarray) -> tuple[np.ndarray, ...] | None:
        pos = np.arange(n, dtype=np.float64)[None, :] + offsets[:, None]
        lo = np.floor(pos)
        hi = np.ceil(pos)
        frac = pos - lo
        idx = np.arange(n, dtype=np.float64)
        lo_off = lo - idx
        hi_off = hi - idx
        if not (np.all(lo_off == lo_off[:, :1]) and np.all(hi_off == hi_off[:, :1])):
            return None
        return (
            lo_off[:, 0].astype(np.int64),
            hi_off[:, 0].astype(np.int64),
            np.ascontiguousarray(1 - frac),
            np.ascontiguousarray(frac),
        )

    rows = axis(height, rp)
    cols = axis(width, cp)
    if rows is None or cols is None:
        return None
    exact = np.all(rows[3] == 0, axis=1) & np.all(cols[3] == 0, axis=1)
    return (*rows[:2], *cols[:2], rows[2], rows[3], cols[2], cols[3], exact)


def lbp_histograms(gray: np.ndarray, radius: int) -> np.ndarray | None:
    """Per-frame counts of skimage's uniform LBP codes (``P = 8 * radius``, ``R = radius``) of
    a uint8 ``(t, H, W)`` block: int64 ``(t, P + 2)``."""
    t, h, w = gray.shape
    kernel = _kernel("lbp")
    tables = _lbp_tables(h, w, radius) if kernel is not None and h and w else None
    if kernel is None or tables is None:
        return None
    hist = np.zeros((t, 8 * radius + 2), dtype=np.int64)
    kernel(np.ascontiguousarray(gray), radius, *tables, hist)
    return hist


def canny(gray: np.ndarray, low_threshold: float, high_threshold: float) -> np.ndarray | None:
    """``skimage.feature.canny(frame, sigma=0, low_threshold=low, high_threshold=high)`` of each
    frame of a uint8 ``(t, H, W)`` block (thresholds in grey levels, as skimage takes them for
    uint8), bool ``(t, H, W)``."""
    kernel = _kernel("canny")
    if kernel is None:
        return None
    low = low_threshold / 255  # skimage: threshold / dtype max, then C float in the NMS
    low32 = np.float32(low)
    if low32 == 0:
        low32 = np.float32(1e-14)
    out = np.zeros(gray.shape, dtype=bool)
    if gray.size:
        # skimage's img_as_float for uint8 is np.multiply(image, 1.0 / 255, dtype=float64)
        kernel(np.ascontiguousarray(gray), 1.0 / 255, float(low32), high_threshold / 255, out)
    return out


def channel_histograms(rgb: np.ndarray) -> np.ndarray | None:
    """256-bin histogram of each channel of each frame of a uint8 ``(t, H, W, 3)`` block:
    int64 ``(t, 3, 256)``."""
    kernel = _kernel("chist")
    if kernel is None:
        return None
    hist = np.zeros((rgb.shape[0], 3, 256), dtype=np.int64)
    kernel(np.ascontiguousarray(rgb), hist)
    return hist


def laplacian_sums(gray: np.ndarray) -> np.ndarray | None:
    """Exact ``(sum L, sum L**2)`` per frame of the 3x3 Laplacian (reflect-101 border) of a
    uint8 ``(t, H, W)`` block: int64 ``(t, 2)``."""
    kernel = _kernel("laplacian")
    if kernel is None:
        return None
    sums = np.zeros((gray.shape[0], 2), dtype=np.int64)
    kernel(np.ascontiguousarray(gray), sums)
    return sums


def abs_diff_sums(frames: np.ndarray) -> np.ndarray | None:
    """``sum |f[k] - f[k - 1]|`` over all values, for ``k = 1 .. n - 1`` of a uint8 block of
    ``n`` frames: int64 ``(n - 1,)``."""
    kernel = _kernel("absdiff")
    if kernel is None:
        return None
    n = frames.shape[0]
    out = np.zeros(max(n - 1, 0), dtype=np.int64)
    if n > 1:
        kernel(np.ascontiguousarray(frames).reshape(n, -1), out)
    return out
