"""Texture, edge, colour-histogram and sharpness similarity: GifLab's frame-level set.

Pair kernels (contract in :mod:`giflab_dask.kernels`): ``f(original, compressed) -> (t,)``
float64, ``original`` and ``compressed`` aligned ``(t, H, W, 3)`` uint8 RGB blocks. Each value
compares frame ``i`` of one block with frame ``i`` of the other, so a block of ``t`` frames gives
exactly the values of its frames taken one at a time.

The definitions are GifLab's (``lachyts/giflab``, ``src/giflab/metrics.py``: ``chist``,
``edge_similarity``, ``texture_similarity``, ``sharpness_similarity``), output names included.
GifLab computes them with OpenCV; this module does not depend on OpenCV:

* luma is OpenCV's ``COLOR_RGB2GRAY`` for 8-bit input, reproduced bit for bit
  (:func:`giflab_dask.kernels._luma.luma`), computed once per frame for all the kernels of a
  block (:func:`giflab_dask.kernels._frames.luma`);
* histograms, Pearson correlations and the 3x3 Laplacian with OpenCV's default border
  (``BORDER_REFLECT_101``, scipy's ``mode="mirror"``) are exact re-implementations;
* Canny is :func:`skimage.feature.canny` by default, which is *not* identical to ``cv2.Canny``
  (see :func:`edge_similarity`); :func:`canny_opencv` is an exact numpy port of ``cv2.Canny``.

Every kernel takes ``backend`` (``"auto"``, ``"numba"``, ``"numpy"``; config
``giflab.kernels.numba``): the numba kernels of :mod:`giflab_dask.kernels._numba_texture` give
the numpy path's values (the same integers, histograms and edge maps, bit for bit), faster
(figures in docs/design.md); ``"auto"`` uses them when numba can be imported.

Where a GifLab value is undefined (a Pearson correlation with a constant histogram), GifLab or
OpenCV writes a fixed 1.0; these kernels return NaN instead. Where GifLab has a deliberate rule
for two frames that agree on an empty feature (no edges in either, both Laplacians flat, both
histograms identical and flat) the value is 1.0, as in GifLab.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from giflab_dask.errors import GiflabError
from giflab_dask.kernels import _numba, _numba_texture
from giflab_dask.kernels._frames import luma
from giflab_dask.kernels._luma import check_pair

__all__ = [
    "canny_opencv",
    "chist",
    "edge_similarity",
    "sharpness_similarity",
    "texture_similarity",
]


def _pearson(h1: np.ndarray, h2: np.ndarray) -> float:
    """Pearson correlation of two histograms (OpenCV ``HISTCMP_CORREL``'s formula).

    Both constant (hence identical, as both count the same number of pixels): 1.0. One
    constant: the correlation is undefined and the result is NaN (OpenCV returns 1.0).
    """
    if np.array_equal(h1, h2):
        # identical histograms: 1.0 if they vary (exactly, not 1 - 1 ulp); both constant: 1.0
        return 1.0
    d1 = h1 - h1.mean()
    d2 = h2 - h2.mean()
    s11 = float(d1 @ d1)
    s22 = float(d2 @ d2)
    if s11 == 0.0 or s22 == 0.0:
        return float("nan")
    return float(d1 @ d2) / float(np.sqrt(s11 * s22))


def chist(
    original: np.ndarray, compressed: np.ndarray, *, bins: int = 32, backend: str = "auto"
) -> np.ndarray:
    """Colour-histogram correlation per frame, GifLab's ``chist`` (0..1, higher is better).

    Definition (GifLab ``metrics.chist``): for each of the R, G, B channels a ``bins``-bin
    histogram over ``[0, 256)`` (uniform bins, ``cv2.calcHist``), the Pearson correlation of the
    two frames' histograms (``cv2.compareHist(..., HISTCMP_CORREL)``; GifLab L2-normalises the
    histograms first, which does not change a correlation); the three correlations are averaged
    and mapped from [-1, 1] to [0, 1]: ``clip((mean + 1) / 2, 0, 1)``.

    A channel whose histogram is constant in one frame but not the other has no correlation:
    the frame's value is NaN (OpenCV returns 1.0 there). Identical frames give 1.0.

    Reference: OpenCV ``compareHist`` (``HISTCMP_CORREL``); tests compare with a plain numpy
    transcription and, when installed, with OpenCV itself.
    """
    original, compressed = check_pair(original, compressed, "chist")
    if not isinstance(bins, int | np.integer) or not 1 <= bins <= 256:
        raise GiflabError(f"bins must be an integer in [1, 256], got {bins!r} (GifLab uses 32)")
    bins = int(bins)
    backend = _numba.check_backend(backend, "chist")
    t = original.shape[0]
    h1 = _block_hists(original, bins, backend)
    h2 = _block_hists(compressed, bins, backend)
    out = np.empty(t, dtype=np.float64)
    for i in range(t):
        corrs = [_pearson(h1[i, ch], h2[i, ch]) for ch in range(3)]
        out[i] = np.clip((np.mean(corrs) + 1.0) / 2.0, 0.0, 1.0)
    return out


def _block_hists(frames: np.ndarray, bins: int, backend: str) -> np.ndarray:
    """``bins``-bin histograms of each channel of each frame, float64 ``(t, 3, bins)``."""
    if backend != "numpy":
        counts = _numba_texture.channel_histograms(frames)
        if counts is not None:
            if bins == 256:
                return counts.astype(np.float64)
            # fold the 256 grey levels into uniform bins (sums of integer counts: exact)
            fold = np.zeros((256, bins), dtype=np.float64)
            fold[np.arange(256), (np.arange(256) * bins) >> 8] = 1.0
            return counts.astype(np.float64) @ fold
        if backend == "numba":
            raise _numba_texture.numba_missing("chist")
    t = frames.shape[0]
    out = np.empty((t, 3, bins), dtype=np.float64)
    for i in range(t):
        for ch in range(3):
            out[i, ch] = _channel_hist(frames[i, ..., ch], bins)
    return out


def _channel_hist(channel: np.ndarray, bins: int) -> np.ndarray:
    # uniform bins over [0, 256): bin = floor(v * bins / 256), exact in integers
    idx = channel.ravel()
    if bins != 256:
        idx = (idx.astype(np.int32) * bins) >> 8
    return np.bincount(idx, minlength=bins).astype(np.float64)


def _gray(frames: np.ndarray) -> np.ndarray:
    """OpenCV luma of each frame of a ``(t, H, W, 3)`` block, uint8 ``(t, H, W)``."""
    if frames.shape[0] == 0:
        return np.empty(frames.shape[:3], dtype=np.uint8)
    return np.stack([luma(frame) for frame in frames])


_EIGHT = np.ones((3, 3), dtype=bool)
_TG22 = 13573  # OpenCV's tan(22.5 deg) in 15-bit fixed point: round(0.41421356 * 2**15)


def canny_opencv(gray: np.ndarray, low_threshold: float, high_threshold: float) -> np.ndarray:
    """``cv2.Canny(gray, low, high) > 0`` (aperture 3, L1 gradient) without OpenCV, bit-exact.

    OpenCV's algorithm for 8-bit images, step by step: 3x3 Sobel ``dx``, ``dy`` with
    ``BORDER_REPLICATE``; magnitude ``|dx| + |dy|``; non-maximum suppression with the gradient
    direction quantised to horizontal / vertical / diagonal by the fixed-point tangent tests
    (``|dy| << 15`` against ``|dx| * TG22`` and ``|dx| * (TG22 + 2**16)``) and OpenCV's tie rule
    (strictly greater than the neighbour behind, greater or equal to the one ahead; strictly
    greater than both on diagonals), magnitudes outside the image counting as 0; candidates
    ``mag > floor(low)``; hysteresis keeps the 8-connected groups of candidates that hold a
    pixel with ``mag > floor(high)``. Checked equal to ``cv2.Canny`` in the tests.
    Returns a bool ``(H, W)`` map.
    """
    g = np.pad(np.asarray(gray, dtype=np.int32), 1, mode="edge")
    dx = (g[:-2, 2:] - g[:-2, :-2]) + 2 * (g[1:-1, 2:] - g[1:-1, :-2]) + (g[2:, 2:] - g[2:, :-2])
    dy = (g[2:, :-2] - g[:-2, :-2]) + 2 * (g[2:, 1:-1] - g[:-2, 1:-1]) + (g[2:, 2:] - g[:-2, 2:])
    mag = np.abs(dx) + np.abs(dy)
    low, high = sorted((int(np.floor(low_threshold)), int(np.floor(high_threshold))))
    candidate = mag > low
    if not candidate.any():
        return candidate
    m = np.pad(mag, 1)
    ax = np.abs(dx).astype(np.int64)
    ay = np.abs(dy).astype(np.int64) << 15
    tg22x = ax * _TG22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << 16))
    diagonal = ~horizontal & ~vertical
    c = m[1:-1, 1:-1]
    keep = horizontal & (c > m[1:-1, :-2]) & (c >= m[1:-1, 2:])
    keep |= vertical & (c > m[:-2, 1:-1]) & (c >= m[2:, 1:-1])
    same_sign = (dx ^ dy) >= 0
    keep |= diagonal & same_sign & (c > m[:-2, :-2]) & (c > m[2:, 2:])
    keep |= diagonal & ~same_sign & (c > m[:-2, 2:]) & (c > m[2:, :-2])
    weak = candidate & keep
    strong = weak & (mag > high)
    if not strong.any():
        return np.zeros_like(weak)
    labels, n = ndi.label(weak, _EIGHT)
    good = np.zeros(n + 1, dtype=bool)
    good[labels[strong]] = True
    good[0] = False
    return good[labels]


def edge_similarity(
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    low_threshold: float = 50.0,
    high_threshold: float = 150.0,
    sigma: float = 0.0,
    method: str = "skimage",
    backend: str = "auto",
) -> np.ndarray:
    """Jaccard similarity of Canny edge maps per frame, GifLab's ``edge_similarity`` (0..1).

    Definition (GifLab ``metrics.edge_similarity``): Canny edges of each frame's luma
    (``cv2.Canny(gray, 50, 150)``), then ``|E1 & E2| / |E1 | E2|``. When neither frame has an
    edge pixel the value is 1.0 (GifLab's rule: two edge-free frames agree).

    ``method="skimage"`` (default): :func:`skimage.feature.canny` on the uint8 luma, mapped to
    OpenCV's defaults as closely as its options allow:

    * ``sigma=0`` (no Gaussian pre-smoothing; OpenCV's Canny does not blur, skimage's default
      ``sigma=1`` does);
    * thresholds in 8-bit gradient units, as OpenCV's (skimage divides them by 255 for a uint8
      image, and works on the image scaled to [0, 1]: the same comparison);
    * the gradient is the same 3x3 Sobel operator, but skimage always uses the L2 magnitude
      ``hypot(gx, gy)``, like ``cv2.Canny(..., L2gradient=True)``; OpenCV's default (GifLab's)
      is the L1 norm ``|gx| + |gy|`` (>= L2, up to sqrt(2) times on diagonals);
    * skimage interpolates the gradient for non-maximum suppression, keeps both pixels of a
      two-pixel magnitude plateau (a sharp step edge gives a two-pixel-wide edge; OpenCV's tie
      rule keeps one) and never marks the outermost pixel ring of the frame.

    Measured against OpenCV (tests): on photos |difference| <= 0.03 to ``L2gradient=True`` and
    typically 0.01-0.03, at most ~0.11, to the L1 default; on noisy synthetic frames up to ~0.3
    to the L1 default. ``method="opencv"`` uses :func:`canny_opencv`, a numpy port of
    ``cv2.Canny`` that reproduces it exactly (then ``sigma`` must be 0): GifLab's numbers.

    ``backend``: with ``method="skimage"`` and ``sigma=0`` (the default), ``"numba"`` and
    ``"auto"`` (when numba imports) use :func:`giflab_dask.kernels._numba_texture.canny`, a
    port of skimage's Canny giving the same edge maps bit for bit; otherwise numpy/skimage.
    """
    original, compressed = check_pair(original, compressed, "edge_similarity")
    if not 0 <= low_threshold <= high_threshold:
        raise GiflabError(
            f"need 0 <= low_threshold <= high_threshold, got {low_threshold}, {high_threshold} "
            "(GifLab uses 50 and 150 in 8-bit gradient units)"
        )
    if sigma < 0:
        raise GiflabError(f"sigma must be >= 0, got {sigma} (0 reproduces OpenCV's no-blur Canny)")
    if method not in ("skimage", "opencv"):
        raise GiflabError(f"method must be 'skimage' or 'opencv', got {method!r}")
    if method == "opencv" and sigma != 0:
        raise GiflabError("method='opencv' does not blur: use sigma=0 (OpenCV's Canny)")
    backend = _numba.check_backend(backend, "edge_similarity")

    t = original.shape[0]
    if method == "skimage" and sigma == 0 and backend != "numpy":
        e1 = _numba_texture.canny(_gray(original), low_threshold, high_threshold)
        e2 = _numba_texture.canny(_gray(compressed), low_threshold, high_threshold)
        if e1 is not None and e2 is not None:
            return np.array([_jaccard(e1[i], e2[i]) for i in range(t)], dtype=np.float64)
        if backend == "numba":
            raise _numba_texture.numba_missing("edge_similarity")

    if method == "opencv":

        def edges(frame: np.ndarray) -> np.ndarray:
            return canny_opencv(luma(frame), low_threshold, high_threshold)

    else:
        from skimage.feature import canny

        def edges(frame: np.ndarray) -> np.ndarray:
            # mode="nearest" skips skimage's bleed-over normalisation (a division by 1 + eps
            # that would move magnitudes lying exactly on a threshold); with sigma=0 it changes
            # nothing else.
            return canny(
                luma(frame),
                sigma=sigma,
                low_threshold=low_threshold,
                high_threshold=high_threshold,
                mode="nearest",
            )

    return np.array([_jaccard(edges(original[i]), edges(compressed[i])) for i in range(t)])


def _jaccard(e1: np.ndarray, e2: np.ndarray) -> float:
    """``|E1 & E2| / |E1 | E2|`` of two edge maps; 1.0 when neither has an edge (GifLab)."""
    union = np.count_nonzero(e1 | e2)
    return 1.0 if union == 0 else np.count_nonzero(e1 & e2) / union


def texture_similarity(
    original: np.ndarray, compressed: np.ndarray, *, radius: int = 1, backend: str = "auto"
) -> np.ndarray:
    """Uniform-LBP histogram correlation per frame, GifLab's ``texture_similarity`` (0..1).

    Definition (GifLab ``metrics.texture_similarity``): local binary patterns of each frame's
    luma with ``P = 8 * radius`` neighbours at ``R = radius`` (GifLab: ``radius=1``, so P=8, R=1)
    and ``method="uniform"`` (:func:`skimage.feature.local_binary_pattern`, codes ``0..P+1``);
    a histogram with ``P + 2`` bins over ``[0, P + 2]`` (GifLab: ``np.histogram(..., bins=10,
    range=(0, 10), density=True)``, one bin per code; the density scaling does not change a
    correlation); the Pearson correlation of the two histograms (``np.corrcoef``), mapped to
    [0, 1] as ``clip((corr + 1) / 2, 0, 1)``.

    GifLab returns 1.0 as soon as either histogram is constant. Here: both constant (then they
    are identical) gives 1.0; only one constant leaves the correlation undefined and gives NaN.
    Identical frames give 1.0.

    ``backend``: ``"numba"`` and ``"auto"`` (when numba imports) count the codes with
    :func:`giflab_dask.kernels._numba_texture.lbp_histograms`, which gives skimage's codes bit
    for bit; ``"numpy"`` calls skimage.
    """
    original, compressed = check_pair(original, compressed, "texture_similarity")
    if not isinstance(radius, int | np.integer) or radius < 1:
        raise GiflabError(f"radius must be a positive integer, got {radius!r} (GifLab uses 1)")
    radius = int(radius)
    backend = _numba.check_backend(backend, "texture_similarity")
    h1 = _lbp_hists(original, radius, backend)
    h2 = _lbp_hists(compressed, radius, backend)
    out = np.empty(original.shape[0], dtype=np.float64)
    for i in range(out.size):
        corr = _pearson(h1[i], h2[i])
        out[i] = np.clip((corr + 1.0) / 2.0, 0.0, 1.0)
    return out


def _lbp_hists(frames: np.ndarray, radius: int, backend: str) -> np.ndarray:
    """Counts of each uniform-LBP code (``0 .. P + 1``) per frame, float64 ``(t, P + 2)``."""
    counts = None
    if backend != "numpy":
        counts = _numba_texture.lbp_histograms(_gray(frames), radius)
    if counts is not None:
        return counts.astype(np.float64)
    if backend == "numba" and _numba_texture.import_error() is not None:
        raise _numba_texture.numba_missing("texture_similarity")
    from skimage.feature import local_binary_pattern

    p = 8 * radius
    out = np.empty((frames.shape[0], p + 2), dtype=np.float64)
    for i, frame in enumerate(frames):
        codes = local_binary_pattern(luma(frame), p, radius, "uniform")
        out[i] = np.bincount(codes.astype(np.intp).ravel(), minlength=p + 2)
    return out


def _laplacian_variances(frames: np.ndarray, backend: str) -> list[float]:
    """Population variance of each frame's 3x3 Laplacian (``cv2.Laplacian(gray, CV_64F)``:
    kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, ``BORDER_REFLECT_101``, scipy "mirror").

    The Laplacian holds small integers: the variance is computed from their exact sums,
    ``(n * sum(L**2) - sum(L)**2) / n**2`` in Python integers, rounded once.
    """
    sums = None
    if backend != "numpy":
        sums = _numba_texture.laplacian_sums(_gray(frames))
        if sums is None and backend == "numba":
            raise _numba_texture.numba_missing("sharpness_similarity")
    if sums is None:
        sums = np.empty((frames.shape[0], 2), dtype=np.int64)
        for i, frame in enumerate(frames):
            lap = ndi.laplace(luma(frame).astype(np.int32), mode="mirror").astype(np.int64)
            sums[i] = lap.sum(), np.vdot(lap, lap)
    n = frames.shape[1] * frames.shape[2]
    return [(n * int(s2) - int(s1) * int(s1)) / (n * n) for s1, s2 in sums]


def sharpness_similarity(
    original: np.ndarray, compressed: np.ndarray, *, backend: str = "auto"
) -> np.ndarray:
    """Laplacian-variance ratio per frame, GifLab's ``sharpness_similarity`` (0..1).

    Definition (GifLab ``metrics.sharpness_similarity``): ``v = var(Laplacian(luma))`` for each
    frame, with OpenCV's 3x3 Laplacian (``cv2.Laplacian(gray, cv2.CV_64F)``: kernel
    ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, border ``BORDER_REFLECT_101``) and the population
    variance; the value is ``min(v1, v2) / max(v1, v2)``. Both frames flat (``v1 == v2 == 0``):
    1.0 (GifLab's rule, identical sharpness); one flat and the other not: 0.0.

    ``backend``: ``"numba"`` and ``"auto"`` (when numba imports) sum the Laplacian in one
    compiled pass; both paths sum the same integers exactly.
    """
    original, compressed = check_pair(original, compressed, "sharpness_similarity")
    backend = _numba.check_backend(backend, "sharpness_similarity")
    out = np.empty(original.shape[0], dtype=np.float64)
    if out.size == 0:
        return out
    v_original = _laplacian_variances(original, backend)
    v_compressed = _laplacian_variances(compressed, backend)
    for i, (v1, v2) in enumerate(zip(v_original, v_compressed, strict=True)):
        hi = max(v1, v2)
        out[i] = 1.0 if hi == 0.0 else min(v1, v2) / hi
    return out
