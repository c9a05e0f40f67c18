"""SSIMULACRA 2.1 (Sneyers, Cloudinary 2022-2023) per frame, as libjxl's ``tools/ssimulacra2.cc``.

A pair kernel following :mod:`giflab_dask.kernels`: ``(t, H, W, 3)`` uint8 blocks in, one float64
per frame out, a loop over frames, NaN where a frame cannot be measured.

``backend="auto"`` (the default) runs the per-pixel passes in the numba kernels of
:mod:`giflab_dask.kernels._numba_ssimulacra2` when numba can be imported; they repeat this
module's float32 operations in the same order, so both backends give the same per-pixel maps
(the float64 sums over a frame differ only in their order: scores agree to ~1e-13).
"""

from __future__ import annotations

import math

import numpy as np

from giflab_dask.kernels import _numba, _numba_ssimulacra2
from giflab_dask.kernels._luma import check_pair
from giflab_dask.kernels._ssimulacra2_params import (
    _BIAS,
    _BIAS_CBRT,
    _C2,
    _F32,
    _MIN_SIDE,
    _NUM_SCALES,
    _OPSIN,
    _TAPS,
    _WEIGHTS,
    _srgb_to_linear,
    recursive_gaussian_taps,
)

__all__ = ["recursive_gaussian_taps", "ssimulacra2"]

# -- numpy passes (the numba kernels repeat each one's float32 operations in its order) --------


def _cbrt(a: np.ndarray) -> np.ndarray:
    """Cube root of float32 values > 0: an exponent-thirding bit guess, two Halley steps.

    Within 4 float32 ulps of the exact root on libjxl's XYB inputs (0.0038..1.01), and cheap to
    vectorise (``np.cbrt`` is not); libjxl's own cube root is an approximation too.
    """
    x = (a.view(np.int32) // 3 + np.int32(709921077)).view(_F32)
    for _ in range(2):
        x3 = x * x * x
        x = x * (x3 + a + a) / (x3 + x3 + a)
    return x


def _xyb_numpy(linear: np.ndarray) -> np.ndarray:
    """libjxl's XYB of linear planes ``(3, h, w)``, made positive as ``MakePositiveXYB`` does."""
    r, g, b = linear
    mixed = np.empty_like(linear)
    for k in range(3):
        m = r * _OPSIN[k, 0] + g * _OPSIN[k, 1]
        m += b * _OPSIN[k, 2]
        m += _BIAS
        np.maximum(m, _F32(0.0), out=m)
        mixed[k] = _cbrt(m) - _BIAS_CBRT
    out = np.empty_like(linear)
    out[0] = (mixed[0] - mixed[1]) * _F32(0.5) * _F32(14.0) + _F32(0.42)
    y = (mixed[0] + mixed[1]) * _F32(0.5)
    out[1] = y + _F32(0.01)
    out[2] = (mixed[2] - y) + _F32(0.55)
    return out


def _blur_numpy(planes: np.ndarray) -> np.ndarray:
    """The zero-padded separable FIR of :func:`recursive_gaussian_taps`: rows, then columns."""
    t = _TAPS
    n = len(t) - 1
    padded = np.pad(planes, ((0, 0), (0, 0), (n, n)))
    w = planes.shape[2]
    rows = padded[:, :, n : n + w] * t[0]
    for k in range(1, n + 1):
        rows += (padded[:, :, n - k : n - k + w] + padded[:, :, n + k : n + k + w]) * t[k]
    padded = np.pad(rows, ((0, 0), (n, n), (0, 0)))
    h = planes.shape[1]
    out = padded[:, n : n + h] * t[0]
    for k in range(1, n + 1):
        out += (padded[:, n - k : n - k + h] + padded[:, n + k : n + k + h]) * t[k]
    return out


def _norms_numpy(img1: np.ndarray, img2: np.ndarray, blurred: np.ndarray) -> np.ndarray:
    """``(3, 6)``: per channel the SSIM' 1- and 4-norm, then ringing and blurring 1-, 4-norms
    (libjxl's ``SSIMMap`` and ``EdgeDiffMap``)."""
    mu1, mu2, s11, s22, s12 = (blurred[3 * k : 3 * k + 3] for k in range(5))
    diff = mu1 - mu2
    num_m = _F32(1.0) - diff * diff
    num_s = (s12 - mu1 * mu2) * _F32(2.0) + _C2
    denom_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + _C2
    ssim = np.maximum(1.0 - (num_m * num_s / denom_s).astype(np.float64), 0.0)
    ratio = (1.0 + np.abs(img2 - mu2).astype(np.float64)) / (
        1.0 + np.abs(img1 - mu1).astype(np.float64)
    ) - 1.0
    out = np.empty((3, 6))
    n = img1.shape[1] * img1.shape[2]
    for j, m in enumerate((ssim, np.maximum(ratio, 0.0), np.maximum(-ratio, 0.0))):
        out[:, 2 * j] = m.reshape(3, -1).sum(axis=1) / n
        squared = m * m
        out[:, 2 * j + 1] = np.sqrt(np.sqrt((squared * squared).reshape(3, -1).sum(axis=1) / n))
    return out


def _downsample_numpy(linear: np.ndarray) -> np.ndarray:
    """2x2 box average; an odd last row or column averages with itself (libjxl's clamping)."""
    _, h, w = linear.shape
    p = np.pad(linear, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    s = p[:, 0::2, 0::2] + p[:, 0::2, 1::2]
    s += p[:, 1::2, 0::2]
    s += p[:, 1::2, 1::2]
    return s * _F32(0.25)


def _scale_norms_numpy(lin1: np.ndarray, lin2: np.ndarray) -> np.ndarray:
    img1, img2 = _xyb_numpy(lin1), _xyb_numpy(lin2)
    stack = np.concatenate([img1, img2, img1 * img1, img2 * img2, img1 * img2])
    return _norms_numpy(img1, img2, _blur_numpy(stack))


# -- the metric ----------------------------------------------------------------------------------


def _score(norms: np.ndarray) -> float:
    """``Msssim::Score``: the weighted sum of the ``(scales, 3, 6)`` norms and the polynomial."""
    # norms[s, c] holds ssim(1), ssim(4), ring(1), ring(4), blur(1), blur(4): regroup per norm.
    # With fewer than 6 scales libjxl walks the weights from the start all the same (channel Y
    # then reads weights meant for X's small scales): a quirk of the reference, kept.
    scales = len(norms)
    per_norm = norms.reshape(scales, 3, 3, 2).transpose(1, 0, 3, 2)  # (c, scale, norm, map)
    weights = _WEIGHTS[: per_norm.size].reshape(per_norm.shape)
    x = math.fsum((weights * np.abs(per_norm)).ravel()) * 0.9562382616834844
    x = 2.326765642916932 * x - 0.020884521182843837 * x * x + 6.248496625763138e-05 * x * x * x
    return 100.0 - 10.0 * x**0.6276336467831387 if x > 0 else 100.0


def _frame(
    ref: np.ndarray,
    dis: np.ndarray,
    kernels: _numba_ssimulacra2.Kernels | None,
    scratch: _numba_ssimulacra2.Scratch,
) -> float:
    h, w = ref.shape[:2]
    if min(h, w) < _MIN_SIDE:
        return math.nan
    if kernels is None:
        lut = _srgb_to_linear()
        lin1, lin2 = (np.ascontiguousarray(lut[f].transpose(2, 0, 1)) for f in (ref, dis))
    else:
        lin1, lin2 = kernels.linear(ref, scratch, 0), kernels.linear(dis, scratch, 1)
    norms = []
    for scale in range(_NUM_SCALES):
        if min(lin1.shape[1:]) < _MIN_SIDE:
            break  # libjxl tests the previous scale's size, then downsamples
        if scale:
            if kernels is None:
                lin1, lin2 = _downsample_numpy(lin1), _downsample_numpy(lin2)
            else:
                lin1 = kernels.downsample(lin1, scratch, 0)
                lin2 = kernels.downsample(lin2, scratch, 1)
        if kernels is None:
            norms.append(_scale_norms_numpy(lin1, lin2))
        else:
            norms.append(kernels.scale_norms(lin1, lin2, scratch))
    return _score(np.array(norms))


def ssimulacra2(
    original: np.ndarray, compressed: np.ndarray, *, backend: str = "auto"
) -> np.ndarray:
    """SSIMULACRA 2.1 score per frame: 100 for identical frames, lower is worse (can go below 0).

    Parameters
    ----------
    original, compressed : ndarray, shape (t, H, W, 3), uint8
        Aligned blocks of sRGB frames; frame ``i`` of one is compared with frame ``i`` of the
        other.
    backend : {"auto", "numba", "numpy"}, optional
        Where the per-pixel passes run: ``"auto"`` uses numba when it can be imported, else
        numpy; ``"numba"`` requires it. The per-pixel maps are the same bits; the frame sums
        differ only in their order (scores agree to ~1e-13).

    Returns
    -------
    ndarray, shape (t,), float64
        One score per frame; NaN for frames smaller than 8 x 8 pixels.

    Notes
    -----
    Definition: libjxl ``tools/ssimulacra2.cc`` (version 2.1, April 2023), per frame:

    1. sRGB -> linear RGB (IEC 61966-2-1) -> libjxl's XYB (opsin absorbance, cube root), made
       positive: ``X' = 14 X + 0.42``, ``Y' = Y + 0.01``, ``B' = B - Y + 0.55``.
    2. Six scales, 1:1 to 1:32; each smaller scale is the 2 x 2 box average of the previous
       one *in linear RGB* (an odd last row/column averages with itself), converted to XYB
       again. As in libjxl, scale ``s`` is computed when the scale before it is at least 8
       pixels on each side (so a 120 x 120 frame gets its sixth scale at 4 x 4); frames
       smaller than 8 x 8 are NaN here (libjxl would report 100, having compared nothing).
    3. At each scale, per channel, Gaussian-blurred (sigma 1.5) means ``mu``, and blurred
       ``x^2``, ``y^2``, ``xy``. The blur is libjxl's recursive Gaussian, which is exactly a
       9-tap symmetric FIR with zeros outside the frame (:func:`recursive_gaussian_taps`).
    4. ``SSIM' = (1 - (mu1 - mu2)^2) (2 (s12 - mu1 mu2) + C2) / (s11 - mu1^2 + s22 - mu2^2 + C2)``
       with ``C2 = 0.0009``; error map ``max(1 - SSIM', 0)``.
    5. Edge maps ``d = (1 + |img2 - mu2|) / (1 + |img1 - mu1|) - 1``: ringing ``max(d, 0)`` and
       blurring ``max(-d, 0)``.
    6. The 1-norm (mean) and 4-norm ``mean(m^4)^(1/4)`` of the 3 maps x 3 channels x 6 scales:
       108 values, weighted by the published weights; ``x = 0.9562 sum``;
       ``x = 2.3268 x - 0.020885 x^2 + 6.2485e-05 x^3``; score ``100 - 10 x^0.62763`` for
       ``x > 0``, else 100.

    Work precision is float32 as in libjxl; sums over a frame are float64. Alpha is composited
    by the alignment stage on the configured background (libjxl's tool uses mid-gray).

    References in the tests (tests/test_kernels_ssimulacra2.py): a float64 transcription of
    libjxl's code with its recursive Gaussian run as the recursion (within 6.3e-3 points on
    JPEG'd and noisy frames, 0.07 on nearly identical smooth gradients, where float32
    variances lose digits as in libjxl); the PyPI ``ssimulacra2`` package (a port whose
    Gaussian is scipy's true Gaussian truncated at radius 5, with zero borders along x and
    reflected ones along y, and which stops one scale earlier on frames under 225 pixels):
    within 4e-3 once its blur is replaced by libjxl's, up to 4 points apart with its own.
    libjxl's own ``ssimulacra2`` binary is not a reference here: Debian 12 ships libjxl 0.7,
    whose tools have no ``ssimulacra2`` (its ``ssimulacra_main`` is SSIMULACRA 1).

    References
    ----------
    J. Sneyers, "SSIMULACRA 2", https://github.com/cloudinary/ssimulacra2 (2022-2023);
    libjxl ``tools/ssimulacra2.cc``, ``lib/jxl/gauss_blur.cc``; D. Charalampidis, "Recursive
    Implementation of the Gaussian Filter Using Truncated Cosine Functions", IEEE Trans.
    Signal Processing 64(14), 2016.
    """
    original, compressed = check_pair(original, compressed, "ssimulacra2")
    backend = _numba.check_backend(backend, "ssimulacra2")
    kernels = None
    if backend != "numpy" and original.shape[0]:
        kernels = _numba_ssimulacra2.load()
        if kernels is None and backend == "numba":
            raise _numba.numba_missing("ssimulacra2")
    out = np.empty(original.shape[0], dtype=np.float64)
    scratch = _numba_ssimulacra2.Scratch()  # work arrays shared by the frames of this block
    for i in range(original.shape[0]):
        out[i] = _frame(original[i], compressed[i], kernels, scratch)
    return out
