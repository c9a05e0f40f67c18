"""Numba kernels of :mod:`giflab_dask.kernels.ssimulacra2`, one pass each:

* ``xyb``: linear RGB planes to positive XYB (opsin mix, the bit-guess + Halley cube root,
  its float/int bit casts as LLVM intrinsics);
* ``linear``: sRGB bytes to linear planes through the 256-entry table;
* ``scale_norms``: per scale, the blur inputs (both images, their squares and product), the
  zero-padded separable 9-tap FIR (libjxl's recursive Gaussian), the SSIM' and edge-difference
  maps and their 1- and 4-norms, fused into one pass down the rows;
* ``downsample``: the 2 x 2 box average in linear RGB.

Like :mod:`giflab_dask.kernels._numba_perceptual`, numba is imported on first use only;
:func:`load` compiles once per process behind a lock (``cache=True``) and returns ``None`` when
numba is unusable, so the caller runs its numpy code. The kernels do the numpy code's float32
operations in the same order (no fast-math: no reassociation, no fused multiply-add), so the
per-pixel maps are the same bits. The frame sums run per column over the rows, then over the
columns (so the pixel loops vectorise); numpy sums pairwise, so the norms agree to float64
rounding. The functions release the GIL (``nogil=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from giflab_dask.kernels import _numba

__all__ = ["Kernels", "Scratch", "load"]

_F32 = np.float32


class Kernels(NamedTuple):
    """Python entry points over the compiled functions."""

    linear: Callable[..., np.ndarray]  # (frame, scratch, slot)
    scale_norms: Callable[..., np.ndarray]  # (lin1, lin2, scratch)
    downsample: Callable[..., np.ndarray]  # (lin, scratch, slot)


_HALF_TAPS = 4  # the blur's 9 taps reach 4 rows up and down
_RING = 2 * _HALF_TAPS + 2  # filtered rows kept for two output rows: i - 4 .. i + 5
_CBRT_MAGIC = 709921077  # the exponent-thirding guess of cbrtf's bit pattern


# Bit casts between float32 and int32 (numba has no scalar ``view``): LLVM intrinsics, made
# by :func:`_bit_casts` when numba is first imported, before the kernels compile.
_as_int32: Any = None
_as_float32: Any = None


def _bit_casts(numba: Any) -> tuple[Any, Any]:
    from llvmlite import ir

    types = numba.core.types

    @numba.extending.intrinsic
    def as_int32(typingctx: Any, x: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @numba.extending.intrinsic
    def as_float32(typingctx: Any, x: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    return as_int32, as_float32


def _xyb(lin, opsin, bias, bias_cbrt, out):  # pragma: no cover - numba
    """``ssimulacra2._xyb_numpy``: ``lin`` (3, n) to positive XYB in ``out`` (3, n), one pass;
    the cube root is ``ssimulacra2._cbrt``'s bit guess and two Halley steps. The channels are
    spelled out: a loop over them (storing each root) does not vectorise."""
    zero = np.float32(0.0)
    half = np.float32(0.5)
    three = np.int32(3)
    magic = np.int32(_CBRT_MAGIC)
    for p in range(lin.shape[1]):
        r = lin[0, p]
        g = lin[1, p]
        b = lin[2, p]
        a0 = r * opsin[0, 0] + g * opsin[0, 1]
        a0 = a0 + b * opsin[0, 2]
        a0 = a0 + bias
        a0 = a0 if a0 > zero else zero
        a1 = r * opsin[1, 0] + g * opsin[1, 1]
        a1 = a1 + b * opsin[1, 2]
        a1 = a1 + bias
        a1 = a1 if a1 > zero else zero
        a2 = r * opsin[2, 0] + g * opsin[2, 1]
        a2 = a2 + b * opsin[2, 2]
        a2 = a2 + bias
        a2 = a2 if a2 > zero else zero
        x0 = _as_float32(_as_int32(a0) // three + magic)
        x1 = _as_float32(_as_int32(a1) // three + magic)
        x2 = _as_float32(_as_int32(a2) // three + magic)
        for _ in range(2):
            c = x0 * x0 * x0
            x0 = x0 * (c + a0 + a0) / (c + c + a0)
            c = x1 * x1 * x1
            x1 = x1 * (c + a1 + a1) / (c + c + a1)
            c = x2 * x2 * x2
            x2 = x2 * (c + a2 + a2) / (c + c + a2)
        x0 = x0 - bias_cbrt
        x1 = x1 - bias_cbrt
        x2 = x2 - bias_cbrt
        out[0, p] = (x0 - x1) * half * np.float32(14.0) + np.float32(0.42)
        y = (x0 + x1) * half
        out[1, p] = y + np.float32(0.01)
        out[2, p] = (x2 - y) + np.float32(0.55)


def _scale_norms(img, taps, c2, ring, padded, zero, blurred, columns, out):  # pragma: no cover
    """``ssimulacra2._scale_norms_numpy`` after the XYB: ``img`` (6, h, w) into ``out`` (3, 6).

    One pass down the rows, two output rows at a time: each row of the 15 blur inputs (img1
    and img2 planes, then the float32 products img1^2, img2^2, img1 img2) is filtered along x
    into a ring of 10 rows (``ring`` (15, 10, w)); the column filter of output rows ``i`` and
    ``i + 1`` reads the ring's 10 rows once for both (rows outside the frame are ``zero``),
    and each row's map values are added per column (``columns`` (3, 6, w) float64); nothing
    frame-sized is written. ``padded`` (w + 8,) has zero borders; ``blurred`` (2, 15, w) is
    scratch.
    """
    _, h, w = img.shape
    columns[:] = 0.0
    for y in range(min(_HALF_TAPS, h)):
        _blur_row(img, y, taps, padded, ring)
    for i in range(0, h, 2):
        for y in range(i + _HALF_TAPS, min(i + _HALF_TAPS + 2, h)):
            _blur_row(img, y, taps, padded, ring)
        _blur_columns(ring, i, h, taps, zero, blurred)
        _add_maps(img, i, blurred[0], c2, columns)
        if i + 1 < h:
            _add_maps(img, i + 1, blurred[1], c2, columns)
    n = h * w
    for ch in range(3):
        for j in range(6):
            total = 0.0
            for x in range(w):
                total += columns[ch, j, x]
            out[ch, j] = total / n if j % 2 == 0 else np.sqrt(np.sqrt(total / n))


def _blur_row(img, y, taps, padded, ring):  # pragma: no cover - numba
    """Row ``y`` of the 15 blur inputs filtered along x into ring slot ``y % 10``. The 9 taps
    are spelled out: a loop over them inside the pixel loop does not vectorise."""
    w = img.shape[2]
    t0, t1, t2, t3, t4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    row = padded[4 : 4 + w]
    for q in range(15):
        if q < 6:
            row[:] = img[q, y]
        else:
            c = (q - 6) % 3
            a = img[3 + c, y] if q >= 9 and q < 12 else img[c, y]
            b = img[c, y] if q < 9 else img[3 + c, y]
            for x in range(w):
                row[x] = a[x] * b[x]
        dest = ring[q, y % _RING]
        for x in range(w):
            acc = padded[x + 4] * t0
            acc = acc + (padded[x + 3] + padded[x + 5]) * t1
            acc = acc + (padded[x + 2] + padded[x + 6]) * t2
            acc = acc + (padded[x + 1] + padded[x + 7]) * t3
            dest[x] = acc + (padded[x] + padded[x + 8]) * t4


def _blur_columns(ring, i, h, taps, zero, blurred):  # pragma: no cover - numba
    """Output rows ``i`` and ``i + 1`` of the 15 blurred planes into ``blurred[0]`` and
    ``blurred[1]``: the column filter over ring rows ``i - 4 .. i + 5`` (``zero`` outside the
    frame), each loaded once for both rows (half the loads of one row at a time; each
    output's operations are the one-row filter's, in its order). Row ``i + 1`` is garbage
    when ``i + 1 == h``."""
    t0, t1, t2, t3, t4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    w = blurred.shape[2]
    for q in range(15):
        m4 = ring[q, (i - 4) % _RING] if i >= 4 else zero
        m3 = ring[q, (i - 3) % _RING] if i >= 3 else zero
        m2 = ring[q, (i - 2) % _RING] if i >= 2 else zero
        m1 = ring[q, (i - 1) % _RING] if i >= 1 else zero
        c = ring[q, i % _RING]
        p1 = ring[q, (i + 1) % _RING] if i + 1 < h else zero
        p2 = ring[q, (i + 2) % _RING] if i + 2 < h else zero
        p3 = ring[q, (i + 3) % _RING] if i + 3 < h else zero
        p4 = ring[q, (i + 4) % _RING] if i + 4 < h else zero
        p5 = ring[q, (i + 5) % _RING] if i + 5 < h else zero
        first = blurred[0, q]
        second = blurred[1, q]
        for x in range(w):
            r0, r1, r2, r3, r4 = m4[x], m3[x], m2[x], m1[x], c[x]
            r5, r6, r7, r8, r9 = p1[x], p2[x], p3[x], p4[x], p5[x]
            acc = r4 * t0
            acc = acc + (r3 + r5) * t1
            acc = acc + (r2 + r6) * t2
            acc = acc + (r1 + r7) * t3
            first[x] = acc + (r0 + r8) * t4
            acc = r5 * t0
            acc = acc + (r4 + r6) * t1
            acc = acc + (r3 + r7) * t2
            acc = acc + (r2 + r8) * t3
            second[x] = acc + (r1 + r9) * t4


def _add_maps(img, i, blurred, c2, columns):  # pragma: no cover - numba
    """Row ``i``'s SSIM' and edge-difference map values (and their 4th powers) added per
    column into ``columns`` (3, 6, w); ``blurred`` (15, w) is that row of the blurred planes.
    (Both rows of a pair in one loop did not vectorise.)"""
    one = np.float32(1.0)
    two = np.float32(2.0)
    w = blurred.shape[1]
    for ch in range(3):
        acc_cols = columns[ch]
        for x in range(w):
            mu1 = blurred[ch, x]
            mu2 = blurred[3 + ch, x]
            diff = mu1 - mu2
            num_m = one - diff * diff
            num_s = (blurred[12 + ch, x] - mu1 * mu2) * two + c2
            denom_s = (blurred[6 + ch, x] - mu1 * mu1) + (blurred[9 + ch, x] - mu2 * mu2)
            denom_s = denom_s + c2
            d = 1.0 - np.float64(num_m * num_s / denom_s)
            d = d if d > 0.0 else 0.0
            acc_cols[0, x] += d
            d2 = d * d
            acc_cols[1, x] += d2 * d2
            e1 = np.float64(abs(img[ch, i, x] - mu1))
            e2 = np.float64(abs(img[3 + ch, i, x] - mu2))
            ratio = (1.0 + e2) / (1.0 + e1) - 1.0
            ring_v = ratio if ratio > 0.0 else 0.0
            lost = -ratio if ratio < 0.0 else 0.0
            acc_cols[2, x] += ring_v
            r2 = ring_v * ring_v
            acc_cols[3, x] += r2 * r2
            acc_cols[4, x] += lost
            l2 = lost * lost
            acc_cols[5, x] += l2 * l2


def _linear(frame, lut, out):  # pragma: no cover - numba
    """Linear planes ``out`` (3, h, w) of an sRGB frame (h, w, 3) uint8 through ``lut``."""
    h, w, _ = frame.shape
    for i in range(h):
        for x in range(w):
            out[0, i, x] = lut[frame[i, x, 0]]
            out[1, i, x] = lut[frame[i, x, 1]]
            out[2, i, x] = lut[frame[i, x, 2]]


def _downsample(lin, out):  # pragma: no cover - numba
    """``ssimulacra2._downsample_numpy`` of ``lin`` (3, h, w) into ``out``. The columns with
    two inputs are one loop (it vectorises); an odd last column averages with itself."""
    _, h, w = lin.shape
    _, oh, ow = out.shape
    quarter = np.float32(0.25)
    pairs = w // 2
    for c in range(3):
        for i in range(oh):
            top = lin[c, 2 * i]
            bottom = lin[c, min(2 * i + 1, h - 1)]
            dest = out[c, i]
            for j in range(pairs):
                s = top[2 * j] + top[2 * j + 1]
                s = s + bottom[2 * j]
                s = s + bottom[2 * j + 1]
                dest[j] = s * quarter
            if pairs < ow:
                s = top[w - 1] + top[w - 1]
                s = s + bottom[w - 1]
                s = s + bottom[w - 1]
                dest[pairs] = s * quarter


def _signatures(numba: Any) -> dict[str, Any]:
    f32, f64, u8 = numba.float32, numba.float64, numba.uint8
    a2 = numba.types.Array(f32, 2, "C")
    a3 = numba.types.Array(f32, 3, "C")
    constant = numba.types.Array(f32, 1, "C", readonly=True)
    return {
        "xyb": numba.void(a2, f32[:, ::1], f32, f32, a2),
        "scale_norms": numba.void(
            a3,
            constant,
            f32,
            f32[:, :, ::1],
            f32[::1],
            f32[::1],
            f32[:, :, ::1],
            f64[:, :, ::1],
            f64[:, ::1],
        ),
        "linear": [
            numba.void(numba.types.Array(u8, 3, "C", readonly=readonly), constant, a3)
            for readonly in (False, True)
        ],
        "downsample": numba.void(a3, a3),
    }


class Scratch:
    """Work arrays reused across the frames of one block, by name and shape: fresh arrays of
    a few MB would cost their page faults on every frame."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[Any, ...], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any, zero: bool = False) -> np.ndarray:
        key = (name, shape, np.dtype(dtype).str)
        array = self._arrays.get(key)
        if array is None:
            array = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
            self._arrays[key] = array
        return array


def _entry_points(compiled: dict[str, Callable[..., None]]) -> Kernels:
    from giflab_dask.kernels import _ssimulacra2_params as s2

    def linear(frame: np.ndarray, scratch: Scratch, slot: int) -> np.ndarray:
        out = scratch.get(f"linear{slot}", (3, *frame.shape[:2]), _F32)
        compiled["linear"](np.ascontiguousarray(frame), s2._srgb_to_linear(), out)
        return out

    def scale_norms(lin1: np.ndarray, lin2: np.ndarray, scratch: Scratch) -> np.ndarray:
        _, h, w = lin1.shape
        n = h * w
        img = scratch.get("img", (6, h, w), _F32)
        flat = img.reshape(6, n)
        for lin, first in ((lin1, 0), (lin2, 3)):
            compiled["xyb"](
                lin.reshape(3, n), s2._OPSIN, s2._BIAS, s2._BIAS_CBRT, flat[first : first + 3]
            )
        out = np.empty((3, 6))
        compiled["scale_norms"](
            img, s2._TAPS, s2._C2, scratch.get("ring", (15, _RING, w), _F32),
            scratch.get("padded", (w + 8,), _F32, zero=True),  # borders are never written
            scratch.get("zero", (w,), _F32, zero=True), scratch.get("blurred", (2, 15, w), _F32),
            scratch.get("columns", (3, 6, w), np.float64), out,
        )  # fmt: skip
        return out

    def downsample(lin: np.ndarray, scratch: Scratch, slot: int) -> np.ndarray:
        _, h, w = lin.shape
        out = scratch.get(f"down{slot}", (3, -(-h // 2), -(-w // 2)), _F32)
        compiled["downsample"](lin, out)
        return out

    return Kernels(linear, scale_norms, downsample)


def _build(numba: Any) -> Kernels:
    global _as_int32, _as_float32
    functions: dict[str, Callable[..., None]] = {
        "xyb": _xyb, "scale_norms": _scale_norms, "linear": _linear, "downsample": _downsample,
    }  # fmt: skip
    _as_int32, _as_float32 = _bit_casts(numba)
    steps = ("_blur_row", "_blur_columns", "_add_maps")  # inlined into _scale_norms
    _numba.compile_helpers(globals(), steps, inline=True)
    signatures = _signatures(numba)
    compiled = {k: _numba.njit_kernel(signatures[k], f) for k, f in functions.items()}
    return _entry_points(compiled)


#: The kernels, compiled on first call; ``None`` when numba is unusable (not installed, or it
#: failed to compile: a ``RuntimeWarning`` says why).
load = _numba.loader(_build, "the SSIMULACRA2 kernels")
