"""Perceptual colour difference (CIEDE2000) and gradient banding: GifLab's colour artefact set.

Pair kernels (contract in :mod:`giflab_dask.kernels`) with several named outputs:

* :func:`deltae` -> ``(t, 8)``, outputs :data:`DELTAE_OUTPUTS`: per-pixel CIEDE2000 between the
  original and the compressed frame, summarised per frame.
* :func:`banding` -> ``(t, 4)``, outputs :data:`BANDING_OUTPUTS`: GifLab's gradient-banding
  (posterisation) score of the compressed frame against the original.

The output names are GifLab's (``lachyts/giflab``, ``src/giflab/gradient_color_artifacts.py``:
``PerceptualColorValidator.calculate_color_difference_metrics`` and
``GradientBandingDetector.detect_banding_artifacts``). Differences from GifLab, all deliberate:

* GifLab's ``calculate_deltae2000`` is a "simplified" formula (no G correction of a*, no hue
  rotation term, no T hue weighting); here it is the full CIEDE2000 of Sharma, Wu & Dalal
  (2005), equal to :func:`skimage.color.deltaE_ciede2000`.
* GifLab averages ΔE over up to 16 sampled 64x64 patches per frame and reports statistics of
  those patch means; here every pixel counts (a "patch" is one pixel), so ``deltae_p95`` and
  ``deltae_max`` are per-pixel statistics and ``deltae_pct_gt*`` are shares of pixels.
* GifLab crops both frames to ``min(H, W) x min(H, W)`` before sampling (it takes ``min`` over
  each frame's shape instead of over the two heights and the two widths); the whole frame is
  used here.
* Where GifLab writes 0.0 for a frame with nothing to measure (no gradient region), these
  kernels write NaN.

The colour science itself (sRGB -> CIELAB, the CIEDE2000 formula) is
:mod:`giflab_dask.kernels.cielab`; :func:`srgb_to_lab` and :func:`ciede2000` are re-exported here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from giflab_dask.errors import GiflabError
from giflab_dask.kernels import _frames, _numba, _numba_colour
from giflab_dask.kernels._luma import check_pair
from giflab_dask.kernels.cielab import ciede2000, ciede2000_components, lab_from_codes, srgb_to_lab
from giflab_dask.kernels.texture import canny_opencv

__all__ = [
    "BANDING_OUTPUTS",
    "DELTAE_OUTPUTS",
    "DELTAE_THRESHOLDS",
    "banding",
    "banding_summary",
    "ciede2000",
    "deltae",
    "deltae_summary",
    "srgb_to_lab",
]

#: Output names of :func:`deltae`, in column order (GifLab's keys).
DELTAE_OUTPUTS: tuple[str, ...] = (
    "deltae_mean",
    "deltae_p95",
    "deltae_max",
    "deltae_pct_gt1",
    "deltae_pct_gt2",
    "deltae_pct_gt3",
    "deltae_pct_gt5",
    "color_patch_count",
)
#: The just-noticeable-difference thresholds behind ``deltae_pct_gt*`` (GifLab's defaults).
DELTAE_THRESHOLDS: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0)

#: Output names of :func:`banding`, in column order (GifLab's keys).
BANDING_OUTPUTS: tuple[str, ...] = (
    "banding_score_mean",
    "banding_score_p95",
    "banding_patch_count",
    "gradient_region_count",
)

_RUN = 8192  # colour pairs per vectorised run in deltae


def _pair_deltae(original: np.ndarray, compressed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ΔE00 of each distinct (original colour, compressed colour) pair in a frame, and counts.

    GIF frames use few colours, so a frame of 130k pixels typically holds a few thousand
    distinct colour pairs: computing ΔE once per pair (exactly the per-pixel values, float64)
    is what makes the kernel fast. Worst case (every pixel a new pair) costs one extra sort.
    Pairs come sorted by ``(original colour, compressed colour)``.
    """
    o = original.reshape(-1, 3).astype(np.uint64)
    c = compressed.reshape(-1, 3).astype(np.uint64)
    key = (o[:, 0] << 40) | (o[:, 1] << 32) | (o[:, 2] << 24)
    key |= (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    pairs, counts = np.unique(key, return_counts=True)
    rgb = np.empty((pairs.size, 6), dtype=np.uint8)
    for j, shift in enumerate((40, 32, 24, 16, 8, 0)):
        rgb[:, j] = (pairs >> np.uint64(shift)) & np.uint64(0xFF)
    de = np.empty(pairs.size, dtype=np.float64)
    # Work in runs of _RUN pairs: the ~40 temporaries of the formula then stay in cache and are
    # recycled by the allocator, faster than whole-frame arrays.
    for start in range(0, pairs.size, _RUN):
        part = rgb[start : start + _RUN]
        de[start : start + _RUN] = ciede2000_components(
            *lab_from_codes(part[:, :3]), *lab_from_codes(part[:, 3:])
        )
    return de, counts


def _unpack(codes: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 3)`` RGB of 24-bit colour codes ``(R << 16) | (G << 8) | B``."""
    return np.stack([(codes >> 16) & 0xFF, (codes >> 8) & 0xFF, codes & 0xFF], -1).astype(np.uint8)


def _pair_deltae_indexed(
    colours_o: np.ndarray,
    colours_c: np.ndarray,
    pair_o: np.ndarray,
    pair_c: np.ndarray,
) -> np.ndarray:
    """ΔE00 of the colour pairs ``(colours_o[pair_o], colours_c[pair_c])``.

    Lab once per distinct colour of each frame, then the formula per pair in runs of ``_RUN``
    as :func:`_pair_deltae` does: every operation is elementwise, so each pair's value is the
    one :func:`_pair_deltae` computes for it, bit for bit.
    """
    lab_o = lab_from_codes(_unpack(colours_o))
    lab_c = lab_from_codes(_unpack(colours_c))
    de = np.empty(pair_o.size, dtype=np.float64)
    for start in range(0, pair_o.size, _RUN):
        po = pair_o[start : start + _RUN]
        pc = pair_c[start : start + _RUN]
        de[start : start + _RUN] = ciede2000_components(
            *(x[po] for x in lab_o), *(x[pc] for x in lab_c)
        )
    return de


def _percentile_of_repeats(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``np.percentile(np.repeat(values, counts), q)`` (linear method), bit for bit, without
    building the repeated array: the two order statistics come from the cumulative counts
    and are interpolated with numpy's own formula (``numpy.lib._function_base_impl._lerp``)."""
    n = int(counts.sum())
    order = np.argsort(values, kind="stable")
    v = values[order]
    cum = np.cumsum(counts[order])
    virtual = (n - 1) * np.true_divide(q, 100)
    if virtual >= n - 1:
        return float(v[-1])
    prev = np.floor(virtual)
    gamma = virtual - prev
    a = v[np.searchsorted(cum, prev, side="right")]
    b = v[np.searchsorted(cum, prev + 1, side="right")]
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def deltae(original: np.ndarray, compressed: np.ndarray, *, backend: str = "auto") -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference, summarised per frame: ``(t, 8)`` float64.

    For every pixel: sRGB -> CIELAB (D65, 2° observer, exactly as :func:`skimage.color.rgb2lab`)
    for both frames, then ΔE00 (:func:`ciede2000`, the full Sharma et al. 2005 formula). Columns,
    in the order of :data:`DELTAE_OUTPUTS` (GifLab's names):

    ``deltae_mean``
        mean ΔE00 over the frame's pixels.
    ``deltae_p95``
        95th percentile of the per-pixel ΔE00 (``np.percentile``, linear interpolation).
    ``deltae_max``
        largest per-pixel ΔE00.
    ``deltae_pct_gt1``, ``deltae_pct_gt2``, ``deltae_pct_gt3``, ``deltae_pct_gt5``
        percentage (0-100, GifLab's unit) of pixels with ΔE00 strictly above 1, 2, 3, 5.
    ``color_patch_count``
        number of samples the statistics are over: the frame's pixel count (GifLab counts its
        64x64 patches; each pixel is a patch here).

    Summaries over a GIF (:func:`deltae_summary`): the mean and the percentages are means of the
    per-frame values (frames have equal pixel counts), the max is the max,
    ``color_patch_count`` is the sum; a GIF-level 95th percentile of all pixels is not a
    function of the per-frame ones.
    Identical frames give 0 in every ΔE column. Computed in float64 throughout (once per
    distinct colour pair of the frame, see :func:`_pair_deltae`).

    ``backend`` (``"auto"``, ``"numba"``, ``"numpy"``) chooses how the distinct colour pairs
    are found: numba's hash tables (:mod:`giflab_dask.kernels._numba_colour`) or numpy's
    ``np.unique``. Both give the same pairs in the same order, so the values are equal bit
    for bit; ``"auto"`` uses numba when it can be imported.
    """
    original, compressed = check_pair(original, compressed, "deltae")
    backend = _numba.check_backend(backend, "deltae")
    t = original.shape[0]
    n_pix = original.shape[1] * original.shape[2]
    out = np.empty((t, len(DELTAE_OUTPUTS)), dtype=np.float64)
    if n_pix == 0:
        out[:] = np.nan
        out[:, -1] = 0.0
        return out
    pairs = _numba_colour.colour_pairs(n_pix) if backend != "numpy" else None
    if pairs is None and backend == "numba":
        raise _numba.numba_missing("deltae")
    for i in range(t):
        if pairs is None:
            de, counts = _pair_deltae(original[i], compressed[i])
        else:
            colours_o, colours_c, pair_o, pair_c, counts = pairs(original[i], compressed[i])
            de = _pair_deltae_indexed(colours_o, colours_c, pair_o, pair_c)
        out[i, 0] = float(de @ counts) / n_pix
        out[i, 1] = _percentile_of_repeats(de, counts, 95)
        out[i, 2] = de.max()
        for j, thr in enumerate(DELTAE_THRESHOLDS):
            out[i, 3 + j] = int(counts[de > thr].sum()) / n_pix * 100.0
        out[i, 7] = n_pix
    return out


# -- banding ------------------------------------------------------------------------------------


def _sobel_magnitude(patches: np.ndarray) -> np.ndarray:
    """``hypot(Sobel_x, Sobel_y)`` of each ``(..., h, w)`` patch on its own.

    ``cv2.Sobel(patch, cv2.CV_64F, 1, 0, ksize=3)`` and ``(0, 1)``: derivative ``[-1, 0, 1]``,
    smoothing ``[1, 2, 1]``, border ``BORDER_REFLECT_101`` (scipy ``mode="mirror"``) at the
    patch's own edges.
    """
    x = np.asarray(patches, dtype=np.float64)
    ax_y, ax_x = x.ndim - 2, x.ndim - 1
    gx = ndi.correlate1d(
        ndi.correlate1d(x, [-1.0, 0.0, 1.0], axis=ax_x, mode="mirror"),
        [1.0, 2.0, 1.0],
        axis=ax_y,
        mode="mirror",
    )
    gy = ndi.correlate1d(
        ndi.correlate1d(x, [-1.0, 0.0, 1.0], axis=ax_y, mode="mirror"),
        [1.0, 2.0, 1.0],
        axis=ax_x,
        mode="mirror",
    )
    return np.sqrt(gx**2 + gy**2)


def _gradient_regions(
    gray: np.ndarray, patch_size: int, variance_threshold: float, backend: str = "numpy"
) -> list[tuple[int, int, int, int]]:
    """GifLab's ``detect_gradient_regions`` + ``_merge_overlapping_regions``: ``(x, y, w, h)``.

    Candidate patches: ``patch_size`` squares at a step of ``patch_size // 2``, top-left corners
    ``range(0, H - patch_size, step)`` x ``range(0, W - patch_size, step)`` (GifLab's grid,
    which never places a patch flush with the bottom or right edge). A patch is a smooth
    gradient when ``var(patch) < variance_threshold``, ``mean(|∇|) > 1`` and
    ``std(|∇|) / max(mean(|∇|), 1) < 0.8`` (Sobel on the patch alone). Patches are merged
    greedily, in scan order, into the first kept region they overlap by more than 30% of the
    smaller area (the union's bounding box replaces that region).

    ``backend="numba"`` computes the three statistics per patch with the numba kernel of
    :mod:`giflab_dask.kernels._numba_colour` (the same values bit for bit: integer Sobel and
    numpy's pairwise sums); ``"numpy"`` with scipy filters on the stack of patches.
    """
    h, w = gray.shape
    step = patch_size // 2
    ys = list(range(0, h - patch_size, step))
    xs = list(range(0, w - patch_size, step))
    if not ys or not xs:
        return []
    stats = _numba_colour.patch_stats(gray, ys, xs, patch_size) if backend == "numba" else None
    if stats is not None:
        variance, g_mean, g_std = stats.T
    else:
        windows = np.lib.stride_tricks.sliding_window_view(gray, (patch_size, patch_size))
        stack = windows[np.ix_(ys, xs)].reshape(-1, patch_size, patch_size).astype(np.float64)
        variance = stack.var(axis=(1, 2))
        mag = _sobel_magnitude(stack)
        g_mean = mag.mean(axis=(1, 2))
        g_std = mag.std(axis=(1, 2))
    keep = (
        (variance < variance_threshold) & (g_mean > 1.0) & (g_std / np.maximum(g_mean, 1.0) < 0.8)
    )
    corners = [(x, y) for y in ys for x in xs]
    regions = [(x, y, patch_size, patch_size) for (x, y), k in zip(corners, keep, strict=True) if k]
    if not regions:
        return []
    merged = [regions[0]]
    for x, y, rw, rh in regions[1:]:
        for i, (ex, ey, ew, eh) in enumerate(merged):
            overlap = max(0, min(x + rw, ex + ew) - max(x, ex)) * max(
                0, min(y + rh, ey + eh) - max(y, ey)
            )
            if overlap > 0.3 * min(rw * rh, ew * eh):
                nx, ny = min(x, ex), min(y, ey)
                merged[i] = (nx, ny, max(x + rw, ex + ew) - nx, max(y + rh, ey + eh) - ny)
                break
        else:
            merged.append((x, y, rw, rh))
    return merged


def _gradient_histogram(patch: np.ndarray, bins: int = 32, backend: str = "numpy") -> np.ndarray:
    # GifLab: np.histogram(|Sobel|, bins=32) over the magnitudes' own range, float32, sum to 1.
    hist = _numba_colour.gradient_histogram(patch, bins) if backend == "numba" else None
    if hist is None:
        hist, _ = np.histogram(_sobel_magnitude(patch).ravel(), bins=bins)
    hist = hist.astype(np.float32)
    total = hist.sum()
    return hist / total if total > 0 else np.zeros(bins, dtype=np.float32)


_EIGHT = np.ones((3, 3), dtype=bool)


def _count_outer_contours(edges: np.ndarray, min_area: float = 10.0) -> int:
    """``sum(cv2.contourArea(c) > min_area for c in cv2.findContours(edges, RETR_EXTERNAL))``.

    Reproduced exactly without OpenCV: one outer contour per 8-connected component of the
    edge map once its holes (4-connected background not reaching the border) are filled; the
    contour runs through the centres of the component's border pixels, so its area is the
    number of 2x2 pixel blocks lying wholly in the component plus half the number of blocks
    with three of their four pixels in it.
    """
    if not edges.any():
        return 0
    labels, n = ndi.label(ndi.binary_fill_holes(edges), _EIGHT)
    p = np.pad(labels, 1)
    corners = np.stack([p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]]).reshape(4, -1)
    # a 2x2 block touches at most one component (pixels of a block are 8-adjacent)
    label = corners.max(axis=0)
    inside = (corners == label).sum(axis=0)
    weight = np.where(label == 0, 0.0, np.where(inside == 4, 1.0, np.where(inside == 3, 0.5, 0.0)))
    area = np.bincount(label, weights=weight, minlength=n + 1)[1:]
    return int(np.count_nonzero(area > min_area))


def _false_contours(patch: np.ndarray, backend: str = "numpy") -> int:
    """GifLab's ``detect_contours_in_patches``: outer contours of Canny(30, 100) edges, area > 10.

    ``cv2.Canny(patch, 30, 100)`` is :func:`giflab_dask.kernels.texture.canny_opencv` (exact);
    ``cv2.findContours(RETR_EXTERNAL)`` + ``cv2.contourArea`` are :func:`_count_outer_contours`
    (exact). (scikit-image's Canny would not do here: it draws a posterisation step, the very
    thing measured, as a two-pixel-wide edge whose contour encloses area.) ``backend="numba"``
    draws the same edge map with :func:`giflab_dask.kernels._numba_colour.canny_opencv`.
    """
    canny = _numba_colour.canny_opencv if backend == "numba" else canny_opencv
    return _count_outer_contours(canny(patch, 30, 100), 10.0)


def _banding_severity(orig_patch: np.ndarray, comp_patch: np.ndarray, backend: str) -> float:
    # GifLab's calculate_banding_severity, in its dtypes (the histogram term is float32 there).
    h1 = _gradient_histogram(orig_patch, backend=backend)
    h2 = _gradient_histogram(comp_patch, backend=backend)
    hist_diff = np.sum((h1 - h2) ** 2 / (h1 + h2 + np.float32(1e-10)), dtype=np.float32)
    excess = max(0, _false_contours(comp_patch, backend) - _false_contours(orig_patch, backend))
    severity = hist_diff * np.float32(30.0) + np.float32(excess * 10.0)
    return float(min(100.0, max(0.0, float(severity))))


def banding(
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    patch_size: int = 64,
    variance_threshold: float = 100.0,
    backend: str = "auto",
) -> np.ndarray:
    """GifLab's gradient-banding score per frame: ``(t, 4)`` float64, :data:`BANDING_OUTPUTS`.

    Definition (GifLab ``GradientBandingDetector``): smooth-gradient regions are found in the
    *original* frame's luma (:func:`_gradient_regions`: 64x64 patches, variance < 100, mean
    Sobel magnitude > 1, coefficient of variation of the magnitude < 0.8, greedy merge of
    overlapping patches). For each region the luma patches of both frames are compared:

    * ``hist_diff = sum((p - q)**2 / (p + q + 1e-10))`` over the 32-bin histograms ``p``, ``q`` of
      the Sobel gradient magnitude (each histogram over its own value range, normalised to sum
      to 1): posterisation turns a smooth ramp's constant gradient into zeros and spikes;
    * ``contour_excess = max(0, n_comp - n_orig)``, the number of extra outer contours of area
      > 10 px in the Canny(30, 100) edge map (:func:`_false_contours`): false contours at band
      edges;
    * ``severity = clip(30 * hist_diff + 10 * contour_excess, 0, 100)``.

    Columns: ``banding_score_mean`` and ``banding_score_p95`` (mean and 95th percentile of the
    frame's region severities; NaN when the frame has no gradient region, where GifLab writes
    0.0), ``banding_patch_count`` (regions scored) and ``gradient_region_count`` (regions found;
    GifLab reports both, they are always equal).

    GIF summary as GifLab's (:func:`banding_summary`): ``banding_score_mean`` is the mean over
    all regions of all frames, ``sum(mean_i * count_i) / sum(count_i)`` over frames with regions
    (NaN if none); the counts are sums; GifLab's GIF-level p95 over all regions is not a
    function of per-frame values.

    Every OpenCV step (luma, Sobel, Canny, findContours, contourArea) is reproduced exactly in
    numpy/scipy, so the values are GifLab's, except: the whole frame is analysed (GifLab crops
    both frames to a ``min(H, W)`` square, a bug), the patch variance is computed in float64
    (GifLab: float32, which can only matter within ~1e-5 of the threshold), and frames without
    a gradient region give NaN. Identical frames give 0.

    ``backend`` (``"auto"``, ``"numba"``, ``"numpy"``) chooses how the candidate patches'
    statistics (:func:`_gradient_regions`) and the regions' gradient histograms are computed
    (numba kernels of :mod:`giflab_dask.kernels._numba_colour`, or scipy filters and numpy);
    the values are the same bit for bit, ``"auto"`` uses numba when it can be imported.
    """
    original, compressed = check_pair(original, compressed, "banding")
    if not isinstance(patch_size, int | np.integer) or patch_size < 8:
        raise GiflabError(f"patch_size must be an integer >= 8, got {patch_size!r} (GifLab: 64)")
    if variance_threshold < 0:
        raise GiflabError(
            f"variance_threshold must be >= 0, got {variance_threshold} (GifLab: 100)"
        )
    backend = _numba.check_backend(backend, "banding")
    if backend != "numpy":
        usable = _numba_colour.load_banding()
        if not usable and backend == "numba":
            raise _numba.numba_missing("banding")
        backend = "numba" if usable else "numpy"
    t = original.shape[0]
    out = np.empty((t, len(BANDING_OUTPUTS)), dtype=np.float64)
    for i in range(t):
        gray_o = _frames.luma(original[i])  # shared with the block's other luma kernels
        gray_c = _frames.luma(compressed[i])
        regions = _gradient_regions(gray_o, int(patch_size), float(variance_threshold), backend)
        scores = [
            _banding_severity(
                gray_o[y : y + rh, x : x + rw], gray_c[y : y + rh, x : x + rw], backend
            )
            for x, y, rw, rh in regions
        ]
        if scores:
            out[i] = (np.mean(scores), np.percentile(scores, 95), len(scores), len(regions))
        else:
            out[i] = (np.nan, np.nan, 0, len(regions))
    return out


# -- GIF-level summaries as GifLab reports them -------------------------------------------------


def deltae_summary(per_frame: np.ndarray) -> dict[str, float]:
    """GifLab's GIF-level ``deltae_*`` keys from the ``(T, 8)`` per-frame output of :func:`deltae`.

    Frames of a pair have equal pixel counts, so the mean and the ``pct_gt*`` shares over all
    pixels are the means of the per-frame values, the max is the max and ``color_patch_count``
    the sum. ``deltae_p95`` is the mean of the per-frame 95th percentiles: the 95th percentile of
    all pixels of all frames is not a function of per-frame summaries (an approximation, stated
    here rather than hidden). Frames with NaN rows are skipped; no frames: NaN (count 0).
    """
    rows = np.asarray(per_frame, dtype=np.float64).reshape(-1, len(DELTAE_OUTPUTS))
    rows = rows[~np.isnan(rows[:, 0])]
    if rows.shape[0] == 0:
        return {**dict.fromkeys(DELTAE_OUTPUTS[:-1], float("nan")), "color_patch_count": 0.0}
    summary = {name: float(rows[:, j].mean()) for j, name in enumerate(DELTAE_OUTPUTS[:-1])}
    summary["deltae_max"] = float(rows[:, 2].max())
    summary["color_patch_count"] = float(rows[:, 7].sum())
    return summary


def banding_summary(per_frame: np.ndarray) -> dict[str, float]:
    """GifLab's GIF-level banding keys from the ``(T, 4)`` per-frame output of :func:`banding`.

    ``banding_score_mean`` is the mean over all scored regions of all frames,
    ``sum(mean_i * n_i) / sum(n_i)`` (NaN when no frame has a gradient region, where GifLab
    writes 0.0); the counts are sums. ``banding_score_p95`` is the region-count-weighted mean of
    the per-frame 95th percentiles: GifLab's 95th percentile over all regions is not a function
    of per-frame summaries (an approximation, stated here rather than hidden).
    """
    rows = np.asarray(per_frame, dtype=np.float64).reshape(-1, len(BANDING_OUTPUTS))
    counts = np.nan_to_num(rows[:, 2])
    scored = counts > 0
    total = float(counts.sum())
    if total == 0:
        mean = p95 = float("nan")
    else:
        mean = float(rows[scored, 0] @ counts[scored]) / total
        p95 = float(rows[scored, 1] @ counts[scored]) / total
    return {
        "banding_score_mean": mean,
        "banding_score_p95": p95,
        "banding_patch_count": total,
        "gradient_region_count": float(np.nan_to_num(rows[:, 3]).sum()),
    }
