"""Structural pair kernels on luma: SSIM (GifLab's definition) and MS-SSIM (Wang et al. 2003).

Both convert each RGB frame to luma exactly as ``cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)``
does (see :mod:`giflab_dask.kernels._luma`), then compare the two luma images with data range
255. Each takes two aligned uint8 blocks ``(t, H, W, 3)`` and returns float64 ``(t,)``, one
value per frame, looping over the frames of the block with buffers allocated once per block
(see :mod:`giflab_dask.kernels`).

GifLab reports these as ``ssim`` and ``ms_ssim`` (:data:`GIFLAB_OUTPUT_NAMES`), but note that
GifLab's own ``ms_ssim`` is *not* the published MS-SSIM: it is a weighted mean of plain SSIM
over an INTER_AREA pyramid with weights (0.4, 0.25, 0.15, 0.1, 0.1). :func:`ms_ssim` here is
the published one; its values differ from GifLab's ``ms_ssim``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _numba, _numba_ms_ssim
from ._luma import LumaConverter, check_bool, check_pair

__all__ = ["GIFLAB_OUTPUT_NAMES", "MS_SSIM_WEIGHTS", "ms_ssim", "ssim"]

#: Kernel name -> the key GifLab's ``calculate_comprehensive_metrics`` reports it under.
GIFLAB_OUTPUT_NAMES = {"ssim": "ssim", "ms_ssim": "ms_ssim"}

#: Scale weights of MS-SSIM, finest scale first (Wang, Simoncelli & Bovik 2003, Table 1).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_DATA_RANGE = 255
_K1, _K2 = 0.01, 0.03
# Written as skimage writes them, so the constants are bit-identical.
_C1 = (_K1 * _DATA_RANGE) ** 2
_C2 = (_K2 * _DATA_RANGE) ** 2

# Uniform window (skimage's default): 7x7, sample covariance.
_WIN = 7
_NP = _WIN * _WIN
# With integer window sums Sx = N*ux etc. (N = 49) the SSIM of a window is
#   (2 Sx Sy + c1)(2 (N Sxy - Sx Sy) + c2) / ((Sx^2 + Sy^2 + c1)(N (Sxx + Syy) - Sx^2 - Sy^2 + c2))
# with c1 = C1 N^2 and c2 = C2 N (N - 1): skimage's A1 A2 / (B1 B2) with the common factors
# 1/N^2 and 1/(N (N - 1)) cancelled.
_c1 = _C1 * _NP * _NP
_c2 = _C2 * _NP * (_NP - 1)

# Gaussian window (Wang et al.): sigma 1.5 truncated at 3.5 sigma -> 11 taps, the kernel
# scipy.ndimage.gaussian_filter (hence skimage) builds.
_SIGMA = 1.5
_GRADIUS = int(3.5 * _SIGMA + 0.5)
_GWIN = 2 * _GRADIUS + 1
_GKERNEL = np.exp(-0.5 * (np.arange(-_GRADIUS, _GRADIUS + 1) / _SIGMA) ** 2)
_GKERNEL /= _GKERNEL.sum()


class _UniformSSIM:
    """Mean SSIM of two luma frames of one shape, 7x7 uniform window, sample covariance.

    The four window sums (of x, y, x^2 + y^2 and x*y) are computed exactly in int32 over the
    *valid* windows only (the ones skimage keeps after cropping 3 pixels per border), by
    separable running sums built from shifted adds (2 -> 4 -> 7 taps). All integer
    intermediates stay below 2**31 for 8-bit data, so the variances and covariances are exact
    (no float cancellation); only the final ratio is evaluated in float32 (relative error
    ~1e-7 per window) and summed in float64.

    Layout: every array is flat (row-major, full frame width ``W``), so each shifted add is a
    single contiguous 1-D operation. The horizontal pass and the per-window formula then also
    run over the 6 columns per row that straddle two image rows; those values are finite
    (sums of in-range pixels) and dropped by the final sum, which reads only the valid
    columns. Buffers are allocated once per frame shape and reused for every frame. (Planes
    are processed one at a time, so the working set fits the per-core cache: stacking the four
    into one array per call was slower.)
    """

    def __init__(self, height: int, width: int) -> None:
        h, w = height, width
        self.shape, self.w = (h, w), w
        self.hv = hv = h - _WIN + 1
        self.wv = w - _WIN + 1
        n = hv * w  # flat length of the valid rows at full width
        i32, f32 = np.int32, np.float32
        self.luma = LumaConverter(h, w)
        self.x, self.y, self.sq, self.tmp = (np.empty(h * w, i32) for _ in range(4))
        self.v2 = np.empty((h - 1) * w, i32)
        self.v4 = np.empty((h - 3) * w, i32)
        self.v7 = np.empty(n, i32)
        self.h2 = np.empty(n - 1, i32)
        self.h4 = np.empty(n - 3, i32)
        # The last 6 entries are never written by the horizontal pass; zeros keep the
        # formula finite there.
        self.sx, self.sy, self.ssq, self.sxy, self.p = (np.zeros(n, i32) for _ in range(5))
        self.f1, self.f2, self.f3 = (np.empty(n, f32) for _ in range(3))

    def _box(self, plane: np.ndarray, out: np.ndarray) -> None:
        """7x7 window sums of the flat ``plane`` (valid rows, full width) into ``out``."""
        w, v2, v4, v7, h2, h4 = self.w, self.v2, self.v4, self.v7, self.h2, self.h4
        n = v7.size
        np.add(plane[:-w], plane[w:], out=v2)  # rows r..r+1
        np.add(v2[: -2 * w], v2[2 * w :], out=v4)  # rows r..r+3
        np.add(v4[:n], v2[4 * w : 4 * w + n], out=v7)  # rows r..r+5
        np.add(v7, plane[6 * w : 6 * w + n], out=v7)  # rows r..r+6
        m = n - (_WIN - 1)
        np.add(v7[:-1], v7[1:], out=h2)  # columns c..c+1
        np.add(h2[:-2], h2[2:], out=h4)  # columns c..c+3
        np.add(h4[:m], h2[4 : 4 + m], out=out[:m])  # columns c..c+5
        np.add(out[:m], v7[6 : 6 + m], out=out[:m])  # columns c..c+6

    def __call__(self, frame_x: np.ndarray, frame_y: np.ndarray) -> float:
        x, y, sq, tmp = self.x, self.y, self.sq, self.tmp
        sx, sy, ssq, sxy, p = self.sx, self.sy, self.ssq, self.sxy, self.p
        f1, f2, f3 = self.f1, self.f2, self.f3
        self.luma(frame_x, out=x.reshape(self.shape))
        self.luma(frame_y, out=y.reshape(self.shape))
        np.multiply(x, x, out=sq)
        np.multiply(y, y, out=tmp)
        np.add(sq, tmp, out=sq)
        self._box(x, sx)
        self._box(y, sy)
        self._box(sq, ssq)
        np.multiply(x, y, out=tmp)
        self._box(tmp, sxy)
        # Exact integer moments: p = Sx Sy; sxy <- N Sxy - Sx Sy; sx <- Sx^2 + Sy^2;
        # ssq <- N (Sxx + Syy) - Sx^2 - Sy^2  (>= 0: N (N - 1) times the summed variances).
        np.multiply(sx, sy, out=p)
        np.multiply(sxy, _NP, out=sxy)
        np.subtract(sxy, p, out=sxy)
        np.multiply(sx, sx, out=sx)
        np.multiply(sy, sy, out=sy)
        np.add(sx, sy, out=sx)
        np.multiply(ssq, _NP, out=ssq)
        np.subtract(ssq, sx, out=ssq)
        # SSIM map / 4 = (p + c1/2)(sxy + c2/2) / ((sx + c1)(ssq + c2)); denominator > 0.
        np.add(p, np.float32(_c1 / 2), out=f1, dtype=np.float32)
        np.add(sxy, np.float32(_c2 / 2), out=f2, dtype=np.float32)
        np.multiply(f1, f2, out=f1)
        np.add(sx, np.float32(_c1), out=f2, dtype=np.float32)
        np.add(ssq, np.float32(_c2), out=f3, dtype=np.float32)
        np.multiply(f2, f3, out=f2)
        np.divide(f1, f2, out=f1)
        valid = f1.reshape(self.hv, self.w)[:, : self.wv]
        total = np.add.reduce(valid, axis=None, dtype=np.float64)
        return float(4.0 * total / valid.size)


class _GaussianSSIM:
    """Mean SSIM and mean contrast-structure term of two float64 images of one shape.

    11x11 Gaussian window (sigma 1.5), population covariance, C1/C2 for data range 255,
    means over the valid windows (the region skimage keeps after cropping 5 pixels per
    border; the same as ``filter2(..., 'valid')`` in Wang's MATLAB code). Images at least
    11x11. Separable filtering of the four planes (x, y, x^2 + y^2, x*y) with
    ``scipy.ndimage.correlate1d``, first along rows (contiguous), then along columns of the
    valid band only; everything in float64 with buffers allocated once per shape.
    """

    def __init__(self, height: int, width: int) -> None:
        # imported here: scipy.ndimage costs a planning client ~0.4 s, and the default SSIM
        # (uniform window) never needs it
        from scipy.ndimage import correlate1d

        self.correlate1d = correlate1d
        r = _GRADIUS
        self.planes = np.empty((4, height, width), dtype=np.float64)
        self.rows = np.empty((4, height, width), dtype=np.float64)
        self.cols = np.empty((4, height, width - 2 * r), dtype=np.float64)
        hv, wv = height - 2 * r, width - 2 * r
        self.t1, self.t2, self.t3 = (np.empty((hv, wv), dtype=np.float64) for _ in range(3))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        r = _GRADIUS
        planes, t1, t2, t3 = self.planes, self.t1, self.t2, self.t3
        planes[0] = x
        planes[1] = y
        np.multiply(x, x, out=planes[2])
        np.multiply(y, y, out=planes[3])
        planes[2] += planes[3]
        np.multiply(x, y, out=planes[3])
        correlate1d = self.correlate1d
        correlate1d(planes, _GKERNEL, axis=2, output=self.rows, mode="reflect")
        correlate1d(self.rows[:, :, r:-r], _GKERNEL, axis=1, output=self.cols, mode="reflect")
        ux, uy, uss, uxy = self.cols[:, r:-r]
        np.multiply(ux, uy, out=t1)  # ux uy
        np.multiply(ux, ux, out=t2)
        np.multiply(uy, uy, out=t3)
        t2 += t3  # ux^2 + uy^2
        np.subtract(uxy, t1, out=t3)
        t3 *= 2.0
        t3 += _C2  # 2 vxy + C2
        uss -= t2
        uss += _C2  # vx + vy + C2
        t3 /= uss  # contrast-structure map
        t1 *= 2.0
        t1 += _C1
        t2 += _C1
        t1 /= t2  # luminance map
        t1 *= t3  # SSIM map
        return float(t1.mean(dtype=np.float64)), float(t3.mean(dtype=np.float64))


def _gaussian_ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One-off :class:`_GaussianSSIM` of two float64 images (mean SSIM, mean cs)."""
    return _GaussianSSIM(*x.shape)(x, y)


def _downsample2(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """2x2 average pooling into ``out`` (``ceil(n / 2)`` per axis); returns ``out``.

    An odd last row/column is paired with itself: Wang's MATLAB ``msssim.m`` filters with
    ``ones(2)/4`` (``imfilter``, ``'symmetric'``) and keeps every second sample from the
    first. (For luma input every value here is exact in float64: at most 5 scales of
    averages of integers.)
    """
    h, w = x.shape
    h2, w2 = h // 2, w // 2
    body = out[:h2, :w2]
    np.add(x[0 : 2 * h2 : 2, 0 : 2 * w2 : 2], x[1 : 2 * h2 : 2, 0 : 2 * w2 : 2], out=body)
    body += x[0 : 2 * h2 : 2, 1 : 2 * w2 : 2]
    body += x[1 : 2 * h2 : 2, 1 : 2 * w2 : 2]
    body *= 0.25
    if w % 2:
        col = out[:h2, w2]
        np.add(x[0 : 2 * h2 : 2, -1], x[1 : 2 * h2 : 2, -1], out=col)
        col *= 0.5
    if h % 2:
        row = out[h2, :w2]
        np.add(x[-1, 0 : 2 * w2 : 2], x[-1, 1 : 2 * w2 : 2], out=row)
        row *= 0.5
    if h % 2 and w % 2:
        out[h2, w2] = x[-1, -1]
    return out


def ssim(
    original: npt.ArrayLike,
    compressed: npt.ArrayLike,
    *,
    gaussian: bool = False,
    backend: str = "auto",
) -> np.ndarray:
    """Structural similarity per frame, on OpenCV luma (GifLab's ``ssim``).

    Definition (GifLab: ``skimage.metrics.structural_similarity(luma_a, luma_b,
    data_range=255)`` on ``cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)``): for every 7x7 window,

        SSIM = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))

    with window means u, sample (co)variances v (normalised by N - 1 = 48), C1 = (0.01 * 255)^2
    and C2 = (0.03 * 255)^2; the frame value is the mean over the windows that lie inside the
    frame (skimage crops ``(7 - 1) // 2 = 3`` pixels per border). It equals skimage on the same
    luma to ~1e-8: the window sums are exact integers and only the last ratio is in float32.

    Unlike GifLab, the value is not clipped to [0, 1] (GifLab clips each frame's SSIM to
    [0, 1] before averaging; a negative SSIM needs anti-correlated frames).

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    gaussian : bool, optional
        Use the 11x11 Gaussian window with sigma 1.5 and population covariance instead (Wang
        et al. 2004; skimage ``gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False``), computed in float64; the mean is over the windows
        inside the frame (5-pixel border cropped).
    backend : {"auto", "numba", "numpy"}, optional
        Implementation: ``"numba"`` the fused kernels of :mod:`giflab_dask.kernels._numba`
        (uniform window) and :mod:`giflab_dask.kernels._numba_ms_ssim` (Gaussian window)
        (optional dependency; raises ``ImportError`` when numba is unusable), ``"numpy"`` the
        vectorised numpy kernels, ``"auto"`` numba when it can be imported, else numpy. Not
        part of the metric's definition: for the uniform window both compute the same exact
        integer window sums and the same float32 ratio per window (values agree to float64
        rounding, ~1e-16: the frame means are summed in another order), for the Gaussian one
        the same float64 operations in the same order (equal bit for bit).

    Returns
    -------
    ndarray of float64, shape ``(t,)``
        NaN for every frame when frames are smaller than the window (7x7, or 11x11 with
        ``gaussian=True``) in either dimension, where skimage raises.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE Trans. Image Process. 13(4), 600-612,
    2004. scikit-image ``skimage.metrics.structural_similarity``. GifLab
    ``giflab.metrics.calculate_comprehensive_metrics`` (output ``ssim``).
    """
    a, b = check_pair(original, compressed, "ssim")
    gaussian = check_bool(gaussian, "gaussian", "ssim")
    backend = _numba.check_backend(backend, "ssim")
    t, h, w, _ = a.shape
    out = np.full(t, np.nan)
    win = _GWIN if gaussian else _WIN
    if t == 0 or h < win or w < win:
        return out
    if gaussian and backend != "numpy":
        terms = _numba_ms_ssim.gaussian_terms(a, b, [(h, w)], _GKERNEL)
        if terms is not None:
            return terms[:, 0]
        if backend == "numba":
            raise _numba.numba_missing("ssim")
    if gaussian:
        luma = LumaConverter(h, w)
        kernel = _GaussianSSIM(h, w)
        lx = np.empty((h, w), dtype=np.uint8)
        ly = np.empty((h, w), dtype=np.uint8)
        x = np.empty((h, w), dtype=np.float64)
        y = np.empty((h, w), dtype=np.float64)
        for i in range(t):
            np.copyto(x, luma(a[i], out=lx))
            np.copyto(y, luma(b[i], out=ly))
            out[i] = kernel(x, y)[0]
    else:
        if backend != "numpy":
            values = _numba.ssim_uniform(a, b)
            if values is not None:
                return values
            if backend == "numba":
                raise _numba.numba_missing("ssim")
        uniform = _UniformSSIM(h, w)
        for i in range(t):
            out[i] = uniform(a[i], b[i])
    return out


def _check_weights(weights: npt.ArrayLike) -> np.ndarray:
    try:
        wts = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        wts = None
    if wts is None or wts.ndim != 1 or wts.size == 0 or not np.all(np.isfinite(wts)):
        raise ValueError(
            "ms_ssim: weights must be a non-empty 1-D sequence of finite numbers, one per "
            f"scale, finest first (default MS_SSIM_WEIGHTS = {MS_SSIM_WEIGHTS}); got "
            f"{weights!r}."
        )
    if np.any(wts <= 0):
        raise ValueError(
            f"ms_ssim: weights must all be > 0 (they are exponents of the per-scale terms); "
            f"got {weights!r}. To use fewer scales, pass fewer weights, e.g. "
            "MS_SSIM_WEIGHTS[:3]."
        )
    return wts


def _scale_shapes(h: int, w: int, scales: int) -> list[tuple[int, int]]:
    shapes = [(h, w)]
    for _ in range(scales - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        shapes.append((h, w))
    return shapes


def ms_ssim(
    original: npt.ArrayLike,
    compressed: npt.ArrayLike,
    *,
    weights: npt.ArrayLike = MS_SSIM_WEIGHTS,
    backend: str = "auto",
) -> np.ndarray:
    """Multi-scale structural similarity per frame, on OpenCV luma (the published MS-SSIM).

    Definition (Wang, Simoncelli & Bovik 2003): with M = ``len(weights)`` scales (5 by
    default), scale 1 the luma frames and scale j + 1 the 2x2 average pooling of scale j,

        MS-SSIM = SSIM_M^w_M * prod_{j=1..M-1} cs_j^w_j

    where cs_j is the mean of the contrast-structure map ``(2 vxy + C2) / (vx + vy + C2)`` at
    scale j and SSIM_M the mean SSIM map (luminance times contrast-structure) at the coarsest
    scale: luminance enters only there. All with the 11x11 Gaussian window (sigma 1.5),
    population covariance, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, and means over the valid
    windows ('valid' filtering, as in Wang's MATLAB code). Weights default to
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Computed in float64.

    Choices where the references differ, following pytorch_msssim (the implementation the
    tests compare against) and Wang's MATLAB code:

    * Negative terms: each cs_j and the coarsest-scale SSIM is clamped at 0 before the
      power (``relu``, as pytorch_msssim, piq and TensorFlow do), so MS-SSIM is real and in
      [0, 1]; a frame with a negative term gets 0. (Wang's MATLAB code would give a complex
      number; sewar keeps the real part of one.)
    * Odd sizes: the 2x2 pooling pairs an odd last row/column with itself (output
      ``ceil(n / 2)``), as Wang's MATLAB code (``imfilter`` with ``'symmetric'``) and
      TensorFlow do. pytorch_msssim zero-pads odd sizes instead, so it agrees only on sizes
      that stay even through the pooling; sewar pools pixel pairs offset by one.
    * Frames too small: when the coarsest scale is smaller than the 11x11 window, i.e.
      ``min(H, W) <= 160`` for 5 scales, MS-SSIM is not defined: the frame gets NaN (Wang's
      MATLAB code returns -Inf, pytorch_msssim and piq raise). No silent fallback to fewer
      scales: pass fewer weights explicitly for small frames (e.g. ``MS_SSIM_WEIGHTS[:3]``
      needs ``min(H, W) >= 41``); the weights are used as given, not renormalised.

    Note that GifLab's ``ms_ssim`` is a different quantity (a weighted mean of plain SSIM
    over scales); these values do not reproduce it.

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    weights : sequence of float, optional
        Positive exponent per scale, finest first; its length is the number of scales.
    backend : {"auto", "numba", "numpy"}, optional
        Implementation, as for :func:`ssim`: ``"numba"`` the fused kernel of
        :mod:`giflab_dask.kernels._numba_ms_ssim`, ``"numpy"`` the scipy/numpy kernel,
        ``"auto"`` numba when it can be imported. Not part of the definition: both compute the
        same float64 operations in the same order, so the values are equal bit for bit.

    Returns
    -------
    ndarray of float64, shape ``(t,)``
        In [0, 1]; 1 for identical frames; NaN when frames are too small (see above).

    References
    ----------
    Z. Wang, E. P. Simoncelli and A. C. Bovik, "Multiscale structural similarity for image
    quality assessment", Proc. 37th Asilomar Conf. Signals, Systems and Computers, 2003.
    Reference MATLAB code ``msssim.m`` (Wang); pytorch_msssim ``ms_ssim``.
    """
    a, b = check_pair(original, compressed, "ms_ssim")
    wts = _check_weights(weights)
    backend = _numba.check_backend(backend, "ms_ssim")
    t, h, w, _ = a.shape
    out = np.full(t, np.nan)
    if t == 0 or min(_scale_shapes(h, w, wts.size)[-1]) < _GWIN:
        return out
    shapes = _scale_shapes(h, w, wts.size)
    if backend != "numpy":
        terms = _numba_ms_ssim.gaussian_terms(a, b, shapes, _GKERNEL)
        if terms is not None:
            for i in range(t):
                out[i] = _combine(terms[i], wts)
            return out
        if backend == "numba":
            raise _numba.numba_missing("ms_ssim")
    kernels = [_GaussianSSIM(*shape) for shape in shapes]
    xs = [np.empty(shape, dtype=np.float64) for shape in shapes]
    ys = [np.empty(shape, dtype=np.float64) for shape in shapes]
    luma = LumaConverter(h, w)
    lx = np.empty((h, w), dtype=np.uint8)
    ly = np.empty((h, w), dtype=np.uint8)
    terms = np.empty(wts.size, dtype=np.float64)
    last = wts.size - 1
    for i in range(t):
        np.copyto(xs[0], luma(a[i], out=lx))
        np.copyto(ys[0], luma(b[i], out=ly))
        for j in range(wts.size):
            s, cs = kernels[j](xs[j], ys[j])
            terms[j] = s if j == last else cs
            if j < last:
                _downsample2(xs[j], xs[j + 1])
                _downsample2(ys[j], ys[j + 1])
        out[i] = _combine(terms, wts)
    return out


def _combine(terms: np.ndarray, wts: np.ndarray) -> float:
    """MS-SSIM of one frame from its per-scale terms: clamped at 0, raised to the weights,
    multiplied. One frame at a time on both paths: numpy's ``power`` may round differently
    in arrays of other lengths (its SIMD and scalar loops differ in the last bit)."""
    return float(np.prod(np.maximum(terms, 0.0) ** wts))
