"""Texture, edge, colour-histogram and sharpness similarity: GifLab's frame-level set.

Pair kernels (contract in :mod:`giflab_dask.kernels`): ``f(original, compressed) -> (t,)``
float64, ``original`` and ``compressed`` aligned ``(t, H, W, 3)`` uint8 RGB blocks. Each value
compares frame ``i`` of one block with frame ``i`` of the other, so a block of ``t`` frames gives
exactly the values of its frames taken one at a time.

The definitions are GifLab's (``lachyts/giflab``, ``src/giflab/metrics.py``: ``chist``,
``edge_similarity``, ``texture_similarity``, ``sharpness_similarity``), output names included.
GifLab computes them with OpenCV; this module does not depend on OpenCV:

* luma is OpenCV's ``COLOR_RGB2GRAY`` for 8-bit input, reproduced bit for bit
  (:func:`giflab_dask.kernels._luma.luma`);
* histograms, Pearson correlations and the 3x3 Laplacian with OpenCV's default border
  (``BORDER_REFLECT_101``, scipy's ``mode="mirror"``) are exact re-implementations;
* Canny is :func:`skimage.feature.canny` by default, which is *not* identical to ``cv2.Canny``
  (see :func:`edge_similarity`); :func:`canny_opencv` is an exact numpy port of ``cv2.Canny``.

Where a GifLab value is undefined (a Pearson correlation with a constant histogram), GifLab or
OpenCV writes a fixed 1.0; these kernels return NaN instead. Where GifLab has a deliberate rule
for two frames that agree on an empty feature (no edges in either, both Laplacians flat, both
histograms identical and flat) the value is 1.0, as in GifLab.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from giflab_dask.errors import GiflabError
from giflab_dask.kernels._luma import check_pair, luma

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


def chist(original: np.ndarray, compressed: np.ndarray, *, bins: int = 32) -> np.ndarray:
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
    t = original.shape[0]
    out = np.empty(t, dtype=np.float64)
    for i in range(t):
        corrs = []
        for ch in range(3):
            # uniform bins over [0, 256): bin = floor(v * bins / 256), exact in integers
            h1 = _channel_hist(original[i, ..., ch], bins)
            h2 = _channel_hist(compressed[i, ..., ch], bins)
            corrs.append(_pearson(h1, h2))
        out[i] = np.clip((np.mean(corrs) + 1.0) / 2.0, 0.0, 1.0)
    return out


def _channel_hist(channel: np.ndarray, bins: int) -> np.ndarray:
    idx = channel.ravel()
    if bins != 256:
        idx = (idx.astype(np.int32) * bins) >> 8
    return np.bincount(idx, minlength=bins).astype(np.float64)


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

    t = original.shape[0]
    out = np.empty(t, dtype=np.float64)
    for i in range(t):
        e1 = edges(original[i])
        e2 = edges(compressed[i])
        union = np.count_nonzero(e1 | e2)
        out[i] = 1.0 if union == 0 else np.count_nonzero(e1 & e2) / union
    return out


def texture_similarity(
    original: np.ndarray, compressed: np.ndarray, *, radius: int = 1
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
    """
    original, compressed = check_pair(original, compressed, "texture_similarity")
    if not isinstance(radius, int | np.integer) or radius < 1:
        raise GiflabError(f"radius must be a positive integer, got {radius!r} (GifLab uses 1)")
    from skimage.feature import local_binary_pattern

    p = 8 * int(radius)
    n_codes = p + 2

    def hist(frame: np.ndarray) -> np.ndarray:
        codes = local_binary_pattern(luma(frame), p, int(radius), "uniform")
        return np.bincount(codes.astype(np.intp).ravel(), minlength=n_codes).astype(np.float64)

    t = original.shape[0]
    out = np.empty(t, dtype=np.float64)
    for i in range(t):
        corr = _pearson(hist(original[i]), hist(compressed[i]))
        out[i] = np.clip((corr + 1.0) / 2.0, 0.0, 1.0)
    return out


def _laplacian_variance(frame: np.ndarray) -> float:
    # cv2.Laplacian(gray, CV_64F) with ksize=1: kernel [[0,1,0],[1,-4,1],[0,1,0]], border
    # BORDER_REFLECT_101 (scipy "mirror"). Values are small integers, exact in float32.
    lap = ndi.laplace(luma(frame).astype(np.float32), mode="mirror")
    return float(np.var(lap, dtype=np.float64))


def sharpness_similarity(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    """Laplacian-variance ratio per frame, GifLab's ``sharpness_similarity`` (0..1).

    Definition (GifLab ``metrics.sharpness_similarity``): ``v = var(Laplacian(luma))`` for each
    frame, with OpenCV's 3x3 Laplacian (``cv2.Laplacian(gray, cv2.CV_64F)``: kernel
    ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, border ``BORDER_REFLECT_101``) and the population
    variance; the value is ``min(v1, v2) / max(v1, v2)``. Both frames flat (``v1 == v2 == 0``):
    1.0 (GifLab's rule, identical sharpness); one flat and the other not: 0.0.
    """
    original, compressed = check_pair(original, compressed, "sharpness_similarity")
    t = original.shape[0]
    out = np.empty(t, dtype=np.float64)
    for i in range(t):
        v1 = _laplacian_variance(original[i])
        v2 = _laplacian_variance(compressed[i])
        hi = max(v1, v2)
        out[i] = 1.0 if hi == 0.0 else min(v1, v2) / hi
    return out
