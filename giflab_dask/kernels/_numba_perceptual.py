"""Numba kernels of :mod:`giflab_dask.kernels.perceptual` (FSIM and GMSD), each one pass:

* ``block_planes``: the F x F block sums of a uint8 frame and their colour weighting (YIQ for
  FSIM, MATLAB's rgb2gray for GMSD), the downsampling of both metrics;
* ``gradient_magnitude``: the zero-padded 3x3 gradient (Scharr for FSIM, Prewitt for GMSD);
* ``orientation`` and ``threshold``: the per-pixel arithmetic of one phase-congruency
  orientation from its 4 filter responses, and the noise threshold added into the energy;
* ``median_of_squares``: the median of ``|EO_0|^2`` by radix selection (``np.median`` sorts
  a partition of a squared copy).

Like :mod:`giflab_dask.kernels._numba`, numba is optional and imported on first use only;
:func:`load` compiles the kernels once per process behind a lock (``cache=True``: later
processes load the machine code from numba's cache) and returns ``None`` when numba is
unusable, so the caller runs its numpy code instead.

The kernels do the numpy code's float32 (and float64) operations in the same order (no
fast-math, so no reassociation or fused multiply-add; IEEE division), sum integers exactly
and select the same median elements, so both backends give the same bits. The functions
release the GIL (``nogil=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from giflab_dask.kernels import _numba

__all__ = ["Kernels", "load"]


class Kernels(NamedTuple):
    """The compiled functions (see the module docstring)."""

    orientation: Callable[..., None]
    threshold: Callable[..., None]
    median_of_squares: Callable[[np.ndarray], float]
    block_planes: Callable[..., None]
    gradient_magnitude: Callable[..., None]


# phasecong2's number of scales (perceptual._PC_NSCALE), a compile-time constant here.
_NSCALE = 4


def _orientation(eo, eps, energy, an_all, an0):  # pragma: no cover - compiled by numba
    """One orientation of phasecong2 from its responses ``eo`` (_NSCALE, n) complex64.

    Writes ``energy`` (n,): ``sum_s (E_s MeanE + O_s MeanO - |E_s MeanO - O_s MeanE|)``
    before the noise threshold, ``an0`` (n,): ``|EO_0|``, and adds ``sum_s |EO_s|`` to
    ``an_all``; the float32 operations of ``perceptual._orientation_numpy`` in its order.
    The scale loops have a constant length, so they unroll and the pixel loop vectorises.
    """
    for p in range(eo.shape[1]):
        sum_e = eo[0, p].real
        sum_o = eo[0, p].imag
        an = np.sqrt(sum_e * sum_e + sum_o * sum_o)
        an0[p] = an
        an_sum = an
        for s in range(1, _NSCALE):
            e = eo[s, p].real
            o = eo[s, p].imag
            sum_e += e
            sum_o += o
            an_sum += np.sqrt(e * e + o * o)
        x_energy = np.sqrt(sum_e * sum_e + sum_o * sum_o) + eps
        mean_e = sum_e / x_energy
        mean_o = sum_o / x_energy
        deviation = abs(eo[0, p].real * mean_o - eo[0, p].imag * mean_e)
        for s in range(1, _NSCALE):
            deviation += abs(eo[s, p].real * mean_o - eo[s, p].imag * mean_e)
        value = sum_e * mean_e
        value += sum_o * mean_o
        energy[p] = value - deviation
        an_all[p] += an_sum


def _median_of_squares(values):  # pragma: no cover - compiled by numba
    """``np.median(np.square(values))`` of float32 values >= 0, by radix selection.

    The bit patterns of non-negative floats sort as integers. A histogram of their top 15
    bits finds the bin of each middle element; a histogram of the low 16 bits of that bin's
    elements then finds the element itself (equal bits, equal value): no sort. The same two
    elements as ``perceptual._median_of_squares`` selects, squared and averaged the same way.
    """
    bits = values.view(np.int32)
    n = bits.shape[0]
    high_rank = n // 2
    ranks = (high_rank - 1 if n % 2 == 0 else high_rank, high_rank)
    coarse = np.zeros(1 << 15, np.int32)
    for p in range(n):
        coarse[bits[p] >> 16] += 1
    fine = np.zeros(1 << 16, np.int32)
    chosen = np.empty(2, np.int32)
    filled = -1  # the coarse bin whose elements ``fine`` counts
    for t in range(2):
        below = 0
        top = 0
        while below + coarse[top] <= ranks[t]:
            below += coarse[top]
            top += 1
        if top != filled:
            fine[:] = 0
            for p in range(n):
                if bits[p] >> 16 == top:
                    fine[bits[p] & 0xFFFF] += 1
            filled = top
        low = 0
        while below + fine[low] <= ranks[t]:
            below += fine[low]
            low += 1
        chosen[t] = (top << 16) | low
    middle = chosen.view(np.float32)
    if n % 2:
        return middle[1] * middle[1]
    return (middle[0] * middle[0] + middle[1] * middle[1]) / np.float32(2.0)


def _block_planes(frame, factor, weights, out):  # pragma: no cover - compiled by numba
    """``perceptual._weighted_planes`` for F > 1, into ``out`` (k, n_r, n_c) float32.

    The exact uint32 sums of each RGB channel over the F x F blocks of the frame (which starts
    ``(F - 1) // 2`` pixels into the first block; zeros before it and past the last block),
    weighted by each row of ``weights`` (k, 3) in float64 in numpy's order, rounded once.
    """
    rows, cols, _ = frame.shape
    _, n_r, n_c = out.shape
    lead = (factor - 1) // 2
    keep_r = min(rows, n_r * factor - lead)
    keep_c = min(cols, n_c * factor - lead)
    width = keep_c * 3
    acc = np.empty(width, np.uint32)
    for i in range(n_r):
        acc[:] = 0
        for r in range(max(i * factor - lead, 0), min((i + 1) * factor - lead, keep_r)):
            row = frame[r].reshape(cols * 3)
            for q in range(width):
                acc[q] += row[q]
        for j in range(n_c):
            red = np.uint32(0)
            green = np.uint32(0)
            blue = np.uint32(0)
            for c in range(max(j * factor - lead, 0), min((j + 1) * factor - lead, keep_c)):
                red += acc[3 * c]
                green += acc[3 * c + 1]
                blue += acc[3 * c + 2]
            for k in range(out.shape[0]):
                value = red * weights[k, 0] + green * weights[k, 1]
                out[k, i, j] = np.float32(value + blue * weights[k, 2])


def _gradient_magnitude(img, a, b, c, out):  # pragma: no cover - compiled by numba
    """``perceptual._gradient_magnitude`` into ``out``: the zero-padded 3x3 gradient with
    smoothing ``(a, b, c)``, numpy's float32 operations in its order."""
    rows, cols = img.shape
    width = cols + 2
    p = np.zeros((rows + 2) * width, np.float32)  # the zero-padded image, flat
    for i in range(rows):
        for j in range(cols):
            p[(i + 1) * width + j + 1] = img[i, j]
    for i in range(rows):
        top = i * width
        mid = top + width
        bot = mid + width
        for j in range(cols):
            gx = a * (p[top + j + 2] - p[top + j]) + b * (p[mid + j + 2] - p[mid + j])
            gx = gx + c * (p[bot + j + 2] - p[bot + j])
            gy = a * (p[bot + j] - p[top + j]) + b * (p[bot + j + 1] - p[top + j + 1])
            gy = gy + c * (p[bot + j + 2] - p[top + j + 2])
            out[i, j] = np.sqrt(gx * gx + gy * gy)


def _threshold(energy, noise, energy_all):  # pragma: no cover - compiled by numba
    """``energy_all += max(energy - noise, 0)``."""
    zero = np.float32(0.0)
    for p in range(energy.shape[0]):
        value = energy[p] - noise
        energy_all[p] += value if value > zero else zero


_SIGNATURES: dict[str, str] = {
    "orientation": "void(complex64[:, ::1], float32, float32[::1], float32[::1], float32[::1])",
    "threshold": "void(float32[::1], float32, float32[::1])",
    "median_of_squares": "float32(float32[::1])",
    "gradient_magnitude": "void(float32[:, ::1], float32, float32, float32, float32[:, ::1])",
}


def _block_planes_signatures(numba: Any) -> list[Any]:
    """Frames come writable or read-only (a Pillow or Zarr buffer): one signature for each."""
    u8, f32, f64 = numba.types.uint8, numba.types.float32, numba.types.float64
    return [
        numba.void(
            numba.types.Array(u8, 3, "C", readonly=readonly),
            numba.int64,
            f64[:, ::1],
            f32[:, :, ::1],
        )
        for readonly in (False, True)
    ]


def _build(numba: Any) -> Kernels:
    compile_ = _numba.njit_kernel
    return Kernels(
        orientation=compile_(_SIGNATURES["orientation"], _orientation),
        threshold=compile_(_SIGNATURES["threshold"], _threshold),
        median_of_squares=compile_(_SIGNATURES["median_of_squares"], _median_of_squares),
        block_planes=compile_(_block_planes_signatures(numba), _block_planes),
        gradient_magnitude=compile_(_SIGNATURES["gradient_magnitude"], _gradient_magnitude),
    )


#: The compiled kernels, compiled on first call; ``None`` when numba is unusable (not
#: installed, or it failed to compile: a ``RuntimeWarning`` says why).
load = _numba.loader(_build, "the FSIM/GMSD kernels")
