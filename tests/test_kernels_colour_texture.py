"""Kernels of GifLab's colour, texture, edge, sharpness and temporal metrics.

Every kernel is checked against an eager reference (scikit-image, a plain numpy transcription
of GifLab's definition, or OpenCV when it is installed: it is test-only), for identities, for
block invariance (a block of frames gives the values of its frames one by one), and for NaN
where a value is undefined. Temporal kernels are checked the way the dask wrapper applies them:
blocks overlapping by one leading frame give the values of the whole sequence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import color as skcolor
from skimage.feature import canny, local_binary_pattern

from giflab_dask.errors import GiflabError
from giflab_dask.kernels import colour, temporal, texture

# -- test data ------------------------------------------------------------------------------


def _scene(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """An animation: colour gradients, a moving box, a disc and mild noise (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(t):
        r = xx * 255.0 / max(w - 1, 1)
        g = yy * 255.0 / max(h - 1, 1)
        b = 128 + 100 * np.sin((xx + 3 * i) / 7.0)
        img = np.stack([r, g, b], -1)
        x0 = (5 + 4 * i) % max(w - 12, 1)
        img[6:18, x0 : x0 + 12] = (250, 40 + 20 * i, 30)
        disc = (yy - h // 2) ** 2 + (xx - w // 3 - 2 * i) ** 2 < (min(h, w) // 5) ** 2
        img[disc] = (20, 200, 90)
        img = img + rng.normal(0, 4, img.shape)
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(frames)


def _posterise(frames: np.ndarray, step: int = 32) -> np.ndarray:
    return (frames // step * step + step // 2).astype(np.uint8)


def _jitter(frames: np.ndarray, amount: int = 6, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amount, amount + 1, frames.shape)
    return np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    original = _scene(5, 48, 72)
    compressed = _jitter(_posterise(original, 16), 3)
    return original, compressed


def _ramp(t: int = 3, h: int = 128, w: int = 192) -> np.ndarray:
    """Smooth grey ramps (a gradient that GifLab's banding detector picks up)."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(t):
        v = 40 + 0.42 * xx + 0.05 * yy + 3 * i
        frames.append(np.repeat(np.clip(np.rint(v), 0, 255).astype(np.uint8)[..., None], 3, -1))
    return np.stack(frames)


# -- references -----------------------------------------------------------------------------


def _ref_luma(frame: np.ndarray) -> np.ndarray:
    # OpenCV's documented fixed point for 8-bit RGB2GRAY: 15-bit BT.601 weights, rounded.
    r, g, b = (frame[..., k].astype(np.int64) for k in range(3))
    return ((r * 9798 + g * 19235 + b * 3735 + 16384) // 32768).astype(np.uint8)


def _corr_to_unit(corr: float) -> float:
    return float(np.clip((corr + 1) / 2, 0, 1))


def _ref_chist(f1: np.ndarray, f2: np.ndarray, bins: int = 32) -> float:
    corrs = []
    for ch in range(3):
        h1, _ = np.histogram(f1[..., ch], bins=bins, range=(0, 256))
        h2, _ = np.histogram(f2[..., ch], bins=bins, range=(0, 256))
        corrs.append(np.corrcoef(h1, h2)[0, 1])
    return _corr_to_unit(float(np.mean(corrs)))


def _ref_edges(frame: np.ndarray) -> np.ndarray:
    return canny(_ref_luma(frame), sigma=0, low_threshold=50, high_threshold=150, mode="nearest")


def _ref_edge_similarity(f1: np.ndarray, f2: np.ndarray) -> float:
    e1, e2 = _ref_edges(f1), _ref_edges(f2)
    union = np.logical_or(e1, e2).sum()
    return 1.0 if union == 0 else np.logical_and(e1, e2).sum() / union


def _ref_texture(f1: np.ndarray, f2: np.ndarray) -> float:
    hists = []
    for f in (f1, f2):
        lbp = local_binary_pattern(_ref_luma(f), 8, 1, "uniform")
        hists.append(np.histogram(lbp.ravel(), bins=10, range=(0, 10), density=True)[0])
    return _corr_to_unit(float(np.corrcoef(*hists)[0, 1]))


def _ref_sharpness(f1: np.ndarray, f2: np.ndarray) -> float:
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    v = [np.var(ndi.convolve(_ref_luma(f).astype(float), kernel, mode="mirror")) for f in (f1, f2)]
    return 1.0 if max(v) == 0 else min(v) / max(v)


def _ref_deltae_row(f1: np.ndarray, f2: np.ndarray) -> list[float]:
    de = skcolor.deltaE_ciede2000(skcolor.rgb2lab(f1), skcolor.rgb2lab(f2))
    pct = [float(np.mean(de > thr) * 100) for thr in (1, 2, 3, 5)]
    return [de.mean(), np.percentile(de, 95), de.max(), *pct, de.size]


def _run_each(kernel, original, compressed, **kw) -> np.ndarray:
    return np.stack(
        [kernel(original[i : i + 1], compressed[i : i + 1], **kw)[0] for i in range(len(original))]
    )


# -- pair kernels: references ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "reference"),
    [
        (texture.chist, _ref_chist),
        (texture.edge_similarity, _ref_edge_similarity),
        (texture.texture_similarity, _ref_texture),
        (texture.sharpness_similarity, _ref_sharpness),
    ],
    ids=["chist", "edge_similarity", "texture_similarity", "sharpness_similarity"],
)
@pytest.mark.parametrize("backend", ["numpy", "auto"])  # auto: numba when it is installed
def test_texture_kernels_match_reference(pair, kernel, reference, backend):
    original, compressed = pair
    got = kernel(original, compressed, backend=backend)
    assert got.dtype == np.float64
    assert got.shape == (len(original),)
    want = [reference(o, c) for o, c in zip(original, compressed, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.all((got >= 0) & (got <= 1))
    assert np.all(got < 1)  # the pair really differs, so the test is not vacuous


@pytest.mark.parametrize(
    "kernel",
    [
        texture.chist,
        texture.edge_similarity,
        texture.texture_similarity,
        texture.sharpness_similarity,
    ],
)
def test_texture_kernels_identity_is_one(pair, kernel):
    original, _ = pair
    np.testing.assert_array_equal(kernel(original, original.copy()), np.ones(len(original)))


@pytest.mark.parametrize(
    "kernel",
    [
        texture.chist,
        texture.edge_similarity,
        texture.texture_similarity,
        texture.sharpness_similarity,
        colour.deltae,
        colour.banding,
    ],
)
def test_block_equals_frame_by_frame(pair, kernel):
    original, compressed = pair
    if kernel is colour.banding:
        original = _ramp(3)
        compressed = _posterise(original, 24)
    block = kernel(original, compressed)
    np.testing.assert_array_equal(block, _run_each(kernel, original, compressed))


def test_chist_matches_opencv(pair):
    cv2 = pytest.importorskip("cv2")
    original, compressed = pair
    for o, c in zip(original, compressed, strict=True):
        scores = []
        for ch in range(3):
            h1 = cv2.calcHist([o], [ch], None, [32], [0, 256])
            h2 = cv2.calcHist([c], [ch], None, [32], [0, 256])
            cv2.normalize(h1, h1)
            cv2.normalize(h2, h2)
            scores.append(cv2.compareHist(h1, h2, cv2.HISTCMP_CORREL))
        want = _corr_to_unit(float(np.mean(scores)))
        got = texture.chist(o[None], c[None])[0]
        assert got == pytest.approx(want, abs=1e-6)  # OpenCV works in float32


def test_chist_nan_when_one_histogram_is_flat():
    # red channel: every 32-bin bucket holds the same count -> constant histogram
    flat = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    flat[0, ..., 0] = (np.arange(32 * 32) % 256).reshape(32, 32)
    other = flat.copy()
    other[0, :4, :, 0] = 0  # red histogram no longer constant
    assert math.isnan(texture.chist(flat, other)[0])
    assert texture.chist(flat, flat.copy())[0] == 1.0  # identical flat histograms agree


def test_pearson_rule_for_constant_histograms():
    const = np.full(10, 3.0)
    assert texture._pearson(const, const.copy()) == 1.0
    assert math.isnan(texture._pearson(const, np.arange(10.0)))
    assert texture._pearson(np.arange(10.0), np.arange(10.0) * 2 + 1) == pytest.approx(1.0)


def test_edge_similarity_empty_edges_is_one_and_one_sided_is_zero():
    flat = np.full((1, 24, 24, 3), 90, dtype=np.uint8)
    assert texture.edge_similarity(flat, np.full_like(flat, 200))[0] == 1.0
    boxed = flat.copy()
    boxed[0, 6:18, 6:18] = 250
    assert texture.edge_similarity(flat, boxed)[0] == 0.0


def _cv2_edge_similarity(cv2, f1: np.ndarray, f2: np.ndarray, l2: bool) -> float:
    e1 = cv2.Canny(cv2.cvtColor(f1, cv2.COLOR_RGB2GRAY), 50, 150, L2gradient=l2) > 0
    e2 = cv2.Canny(cv2.cvtColor(f2, cv2.COLOR_RGB2GRAY), 50, 150, L2gradient=l2) > 0
    return (e1 & e2).sum() / max((e1 | e2).sum(), 1)


def test_edge_similarity_close_to_opencv_canny():
    """skimage's Canny is not OpenCV's: bound the gap (measured numbers in the comments).

    Natural photos at 135x240, posterised / jittered: |ours - cv2 default (L1 gradient)| up to
    0.11 (rocket), typically 0.01-0.03; |ours - cv2 L2gradient=True| <= 0.03. Synthetic noisy
    scenes: up to 0.29 against the L1 default, <= 0.075 against L2.
    """
    cv2 = pytest.importorskip("cv2")
    from skimage import data, transform

    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee", "chelsea"):
        im = transform.resize(getattr(data, name)(), (135, 240), anti_aliasing=True)
        im = (im * 255).astype(np.uint8)
        for comp in (_posterise(im, 32), _jitter(im, 8, seed=int(rng.integers(99)))):
            ours = texture.edge_similarity(im[None], comp[None])[0]
            assert abs(ours - _cv2_edge_similarity(cv2, im, comp, l2=True)) < 0.05
            assert abs(ours - _cv2_edge_similarity(cv2, im, comp, l2=False)) < 0.15
    original = _scene(4, 96, 144, seed=5)
    for compressed in (_posterise(original, 32), _jitter(original, 8)):
        ours = texture.edge_similarity(original, compressed)
        theirs = [
            _cv2_edge_similarity(cv2, o, c, l2=True)
            for o, c in zip(original, compressed, strict=True)
        ]
        assert np.abs(ours - np.array(theirs)).max() < 0.1


def test_sharpness_matches_opencv_laplacian(pair):
    cv2 = pytest.importorskip("cv2")
    original, compressed = pair
    for o, c in zip(original, compressed, strict=True):
        v1 = np.var(cv2.Laplacian(cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), cv2.CV_64F))
        v2 = np.var(cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.CV_64F))
        got = texture.sharpness_similarity(o[None], c[None])[0]
        assert got == pytest.approx(min(v1, v2) / max(v1, v2), rel=1e-12)


def test_sharpness_flat_frames():
    flat = np.full((1, 16, 16, 3), 77, dtype=np.uint8)
    assert texture.sharpness_similarity(flat, np.full_like(flat, 10))[0] == 1.0
    textured = _scene(1, 16, 16)
    assert texture.sharpness_similarity(flat, textured)[0] == 0.0


# -- CIEDE2000 ------------------------------------------------------------------------------

# Sharma, Wu & Dalal (2005), Table 1: L1 a1 b1, L2 a2 b2, ΔE00.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_sharma_2005_table():
    table = np.array(SHARMA_2005)
    assert table.shape == (34, 7)
    got = colour.ciede2000(table[:, :3], table[:, 3:6])
    np.testing.assert_allclose(got, table[:, 6], atol=5e-5)  # the table's 4 decimals
    # the formula is symmetric
    np.testing.assert_allclose(colour.ciede2000(table[:, 3:6], table[:, :3]), got, atol=1e-12)


def test_ciede2000_matches_skimage():
    rng = np.random.default_rng(11)
    lab1 = rng.uniform([0, -110, -110], [100, 110, 110], (20000, 3))
    lab2 = lab1 + rng.normal(0, 4, lab1.shape)
    lab2[::5] = rng.uniform([0, -110, -110], [100, 110, 110], lab2[::5].shape)
    lab1[:50, 1:] = 0  # achromatic colours (C' = 0) and
    lab2[25:75, 1:] = 0  # achromatic pairs
    want = skcolor.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(colour.ciede2000(lab1, lab2), want, rtol=1e-9, atol=1e-9)
    table = np.array(SHARMA_2005)
    np.testing.assert_allclose(
        colour.ciede2000(table[:, :3], table[:, 3:6]),
        skcolor.deltaE_ciede2000(table[:, :3], table[:, 3:6]),
        atol=1e-9,
    )
    assert colour.ciede2000(lab1[0], lab2[0]).shape == ()


def test_srgb_to_lab_matches_skimage():
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [1, 1, 1], [10, 0, 0], [0, 10, 0], [0, 0, 10],
                  [128, 128, 128], [255, 0, 0]]  # fmt: skip
    np.testing.assert_allclose(colour.srgb_to_lab(rgb), skcolor.rgb2lab(rgb), atol=1e-9)


# -- ΔE kernel ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["posterised", "jittered", "palette"])
def test_deltae_matches_skimage_per_pixel(pair, kind):
    original, _ = pair
    if kind == "posterised":
        compressed = _posterise(original, 32)
    elif kind == "jittered":
        compressed = _jitter(original, 5)
    else:
        from PIL import Image

        compressed = np.stack(
            [np.asarray(Image.fromarray(f).quantize(24).convert("RGB")) for f in original]
        )
    got = colour.deltae(original, compressed)
    assert got.shape == (len(original), len(colour.DELTAE_OUTPUTS)) == (len(original), 8)
    assert got.dtype == np.float64
    want = np.array([_ref_deltae_row(o, c) for o, c in zip(original, compressed, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_deltae_identity_and_names(pair):
    original, _ = pair
    got = colour.deltae(original, original.copy())
    h, w = original.shape[1:3]
    np.testing.assert_array_equal(got[:, :7], 0.0)
    np.testing.assert_array_equal(got[:, 7], h * w)
    assert colour.DELTAE_OUTPUTS == (
        "deltae_mean",
        "deltae_p95",
        "deltae_max",
        "deltae_pct_gt1",
        "deltae_pct_gt2",
        "deltae_pct_gt3",
        "deltae_pct_gt5",
        "color_patch_count",
    )


def test_deltae_single_colour_shift():
    # one colour pair everywhere: every statistic is that pair's ΔE00
    a = np.full((1, 6, 9, 3), (200, 30, 40), dtype=np.uint8)
    b = np.full_like(a, (190, 35, 40))
    de = skcolor.deltaE_ciede2000(skcolor.rgb2lab(a[0, 0, 0]), skcolor.rgb2lab(b[0, 0, 0]))
    row = colour.deltae(a, b)[0]
    np.testing.assert_allclose(row[:3], de, rtol=1e-12)
    np.testing.assert_array_equal(row[3:7], [100.0 * (de > thr) for thr in (1, 2, 3, 5)])


def test_deltae_summary_is_gifwide_statistics(pair):
    original, compressed = pair
    per_frame = colour.deltae(original, _posterise(compressed, 32))
    summary = colour.deltae_summary(np.vstack([np.full((1, 8), np.nan), per_frame]))
    de = skcolor.deltaE_ciede2000(
        skcolor.rgb2lab(original), skcolor.rgb2lab(_posterise(compressed, 32))
    )
    assert tuple(summary) == colour.DELTAE_OUTPUTS
    assert summary["deltae_mean"] == pytest.approx(de.mean(), rel=1e-9)
    assert summary["deltae_max"] == pytest.approx(de.max(), rel=1e-12)
    assert summary["deltae_pct_gt2"] == pytest.approx(np.mean(de > 2) * 100, rel=1e-12)
    assert summary["color_patch_count"] == de.size
    assert math.isnan(colour.deltae_summary(np.empty((0, 8)))["deltae_mean"])


# -- banding ---------------------------------------------------------------------------------


def _ref_regions_cv2(gray: np.ndarray, cv2, patch: int = 64) -> list[tuple[int, int, int, int]]:
    """GifLab's gradient-region definition, written out with OpenCV, one patch at a time."""
    found = []
    step = patch // 2
    for y in range(0, gray.shape[0] - patch, step):
        for x in range(0, gray.shape[1] - patch, step):
            p = gray[y : y + patch, x : x + patch].astype(np.float32)
            mag = np.hypot(
                cv2.Sobel(p, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(p, cv2.CV_64F, 0, 1, ksize=3)
            )
            smooth = np.var(p.astype(np.float64)) < 100
            if smooth and mag.mean() > 1 and mag.std() / max(mag.mean(), 1) < 0.8:
                found.append((x, y, patch, patch))
    merged: list[tuple[int, int, int, int]] = []
    for x, y, w, h in found:
        for k, (mx, my, mw, mh) in enumerate(merged):
            ox = max(0, min(x + w, mx + mw) - max(x, mx))
            oy = max(0, min(y + h, my + mh) - max(y, my))
            if ox * oy > 0.3 * min(w * h, mw * mh):
                x0, y0 = min(x, mx), min(y, my)
                merged[k] = (x0, y0, max(x + w, mx + mw) - x0, max(y + h, my + mh) - y0)
                break
        else:
            merged.append((x, y, w, h))
    return merged


def _ref_banding_cv2(original, compressed, cv2, edges) -> np.ndarray:
    """GifLab's banding score per frame with OpenCV's Sobel/findContours; ``edges`` = Canny."""

    def hist(p):
        g = p.astype(np.float32)
        mag = np.hypot(
            cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3)
        )
        h = np.histogram(mag.ravel(), bins=32)[0].astype(np.float32)
        return h / h.sum()

    def contours(p):
        found, _ = cv2.findContours(edges(p), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return sum(cv2.contourArea(c) > 10 for c in found)

    rows = []
    for o, c in zip(original, compressed, strict=True):
        go, gc = cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)
        regions = _ref_regions_cv2(go, cv2)
        scores = []
        for x, y, w, h in regions:
            po, pc = go[y : y + h, x : x + w], gc[y : y + h, x : x + w]
            h1, h2 = hist(po), hist(pc)
            diff = np.sum((h1 - h2) ** 2 / (h1 + h2 + 1e-10))
            excess = max(0, contours(pc) - contours(po))
            scores.append(float(min(100.0, max(0.0, diff * 30.0 + excess * 10.0))))
        if scores:
            rows.append([np.mean(scores), np.percentile(scores, 95), len(scores), len(regions)])
        else:
            rows.append([np.nan, np.nan, 0, len(regions)])
    return np.array(rows)


def test_banding_identity_posterised_and_no_gradient():
    ramp = _ramp(2)
    same = colour.banding(ramp, ramp.copy())
    assert np.all(same[:, 2] > 0)  # regions were found ...
    np.testing.assert_array_equal(same[:, :2], 0.0)  # ... and nothing changed
    np.testing.assert_array_equal(same[:, 2], same[:, 3])
    banded = colour.banding(ramp, _posterise(ramp, 24))
    assert np.all(banded[:, 0] > 5)
    noise = np.random.default_rng(0).integers(0, 256, (1, 100, 100, 3), dtype=np.uint8)
    row = colour.banding(noise, noise.copy())[0]  # no smooth gradient anywhere
    assert math.isnan(row[0]) and math.isnan(row[1])
    np.testing.assert_array_equal(row[2:], 0.0)
    small = colour.banding(ramp[:, :64, :64], ramp[:, :64, :64])  # GifLab's grid: no patch
    assert np.isnan(small[:, 0]).all()


def test_banding_matches_opencv_reference():
    cv2 = pytest.importorskip("cv2")
    original = np.concatenate([_ramp(2), _scene(1, 128, 192, seed=4)])
    for compressed in (_posterise(original, 24), _jitter(original, 2)):
        got = colour.banding(original, compressed)
        want = _ref_banding_cv2(original, compressed, cv2, lambda p: cv2.Canny(p, 30, 100))
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
        assert np.isfinite(got[:, 0]).any()  # not vacuous


def test_canny_port_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(21)
    images = [_ref_luma(f) for f in _scene(2, 60, 90, seed=2)]
    images += [(im // 40 * 40).astype(np.uint8) for im in images]
    for _ in range(20):
        h, w = rng.integers(3, 60, 2)
        images.append(rng.integers(0, 256, (h, w), dtype=np.uint8))
        images.append((rng.integers(0, 4, (h, w)) * 60).astype(np.uint8))
    for im in images:
        for low, high in ((50, 150), (30, 100), (10, 20), (100, 50)):
            want = cv2.Canny(im, low, high) > 0
            np.testing.assert_array_equal(texture.canny_opencv(im, low, high), want)


def test_edge_similarity_opencv_method_is_exact(pair):
    cv2 = pytest.importorskip("cv2")
    original, compressed = pair
    got = texture.edge_similarity(original, compressed, method="opencv")
    want = [
        _cv2_edge_similarity(cv2, o, c, l2=False) for o, c in zip(original, compressed, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_banding_summary_weights_regions():
    per_frame = np.array([[10.0, 12.0, 2, 2], [np.nan, np.nan, 0, 0], [40.0, 40.0, 1, 1]])
    summary = colour.banding_summary(per_frame)
    assert summary["banding_score_mean"] == pytest.approx((10 * 2 + 40) / 3)
    assert summary["banding_patch_count"] == 3 and summary["gradient_region_count"] == 3
    none = colour.banding_summary(np.array([[np.nan, np.nan, 0, 0]]))
    assert math.isnan(none["banding_score_mean"]) and none["banding_patch_count"] == 0


def test_contour_areas_match_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(8)
    for trial in range(300):
        h, w = rng.integers(3, 40, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        if trial % 2:
            mask = ndi.binary_dilation(mask) ^ mask  # rings and loops
        found, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        for min_area in (0.0, 2.0, 10.0):
            want = sum(cv2.contourArea(c) > min_area for c in found)
            assert colour._count_outer_contours(mask, min_area) == want


# -- temporal --------------------------------------------------------------------------------


def _giflab_temporal(frames: np.ndarray, dtype=np.float64) -> float:
    """GifLab's temporal consistency of a whole stream (its definition, one pass)."""
    if len(frames) < 2:
        return math.nan  # GifLab: 1.0
    d = np.array([np.mean(np.abs(frames[k].astype(dtype) - frames[k - 1].astype(dtype)))
                  for k in range(1, len(frames))], dtype=np.float64)  # fmt: skip
    m, v = d.mean(), d.var()
    if v == 0:
        return 1.0
    return float(np.clip(np.exp(-2.0 * v / m**2), 0, 1))


def _wrapper_like(kernel, original, compressed, chunks):
    """What the dask wrapper does: one-frame leading overlap, NaN for the GIF's first frame."""
    out, start = [], 0
    for size in chunks:
        stop = start + size
        if start == 0:
            block = kernel(original[:stop], compressed[:stop])
            out.append(np.vstack([np.full((1, block.shape[1]), np.nan), block]))
        else:
            out.append(kernel(original[start - 1 : stop], compressed[start - 1 : stop]))
        start = stop
    return np.concatenate(out)


@pytest.fixture(scope="module")
def animation() -> tuple[np.ndarray, np.ndarray]:
    original = _scene(9, 24, 32, seed=7)
    original[4] = original[3]  # a held frame: an uneven transition
    compressed = _posterise(original, 32)
    compressed[6] = compressed[5]  # a dropped frame shown twice
    return original, compressed


@pytest.mark.parametrize("backend", ["numpy", "auto"])  # auto: numba when it is installed
def test_temporal_kernel_values(animation, backend):
    original, compressed = animation
    got = temporal.temporal_consistency(original, compressed, backend=backend)
    assert got.shape == (len(original) - 1, 2) and got.dtype == np.float64
    for col, frames in enumerate((original, compressed)):
        want = [
            np.abs(frames[k].astype(float) - frames[k - 1]).mean() for k in range(1, len(frames))
        ]
        np.testing.assert_allclose(got[:, col], want, rtol=1e-13)
    assert got[3, 0] == 0.0 and got[5, 1] == 0.0


@pytest.mark.parametrize(
    "chunks", [(9,), (1, 8), (4, 5), (8, 1), (2, 3, 4), (1, 1, 1, 1, 1, 1, 1, 1, 1)]
)
def test_temporal_overlap_blocks_equal_whole(animation, chunks):
    original, compressed = animation
    whole = np.vstack(
        [np.full((1, 2), np.nan), temporal.temporal_consistency(original, compressed)]
    )
    split = _wrapper_like(temporal.temporal_consistency, original, compressed, chunks)
    np.testing.assert_array_equal(split, whole)


def test_temporal_every_two_block_split_equals_whole(animation):
    original, compressed = animation
    whole = _wrapper_like(temporal.temporal_consistency, original, compressed, (len(original),))
    for b in range(1, len(original)):
        split = _wrapper_like(
            temporal.temporal_consistency, original, compressed, (b, len(original) - b)
        )
        np.testing.assert_array_equal(split, whole)


def test_temporal_summary_reproduces_giflab(animation):
    original, compressed = animation
    per_frame = _wrapper_like(temporal.temporal_consistency, original, compressed, (4, 5))
    summary = temporal.temporal_consistency_summary(per_frame)
    assert tuple(summary) == temporal.SUMMARY_OUTPUTS
    want_o, want_c = _giflab_temporal(original), _giflab_temporal(compressed)
    assert summary["temporal_consistency_original"] == pytest.approx(want_o, rel=1e-12)
    assert summary["temporal_consistency_compressed"] == pytest.approx(want_c, rel=1e-12)
    assert summary["temporal_consistency_delta"] == pytest.approx(abs(want_o - want_c), abs=1e-12)
    assert 0 < want_o < 1 and 0 < want_c < 1 and want_o != want_c  # not vacuous
    # GifLab's float32 arithmetic differs only in rounding
    assert summary["temporal_consistency_original"] == pytest.approx(
        _giflab_temporal(original, np.float32), rel=1e-5
    )
    # partial sums (n, sum d, sum d^2) give the same number (a tree reduction can use them)
    d = per_frame[1:, 0]
    n, s1, s2 = d.size, d.sum(), (d * d).sum()
    assert math.exp(-2 * (n * s2 / s1**2 - 1)) == pytest.approx(want_o, rel=1e-9)


def test_temporal_rules_static_uniform_single():
    static = np.repeat(_scene(1, 8, 8), 4, axis=0)
    assert temporal.temporal_consistency_from_transitions([np.nan, 0, 0, 0]) == 1.0
    assert temporal.temporal_consistency_summary(
        _wrapper_like(temporal.temporal_consistency, static, static, (2, 2))
    ) == {
        "temporal_consistency_original": 1.0,
        "temporal_consistency_compressed": 1.0,
        "temporal_consistency_delta": 0.0,
    }
    assert temporal.temporal_consistency_from_transitions([np.nan, 5.0, 5.0]) == 1.0
    assert math.isnan(temporal.temporal_consistency_from_transitions([np.nan]))
    assert math.isnan(temporal.temporal_consistency_from_transitions([]))
    one = _scene(1, 8, 8)
    assert temporal.temporal_consistency(one, one).shape == (0, 2)
    summary = temporal.temporal_consistency_summary(
        _wrapper_like(temporal.temporal_consistency, one, one, (1,))
    )
    assert all(math.isnan(v) for v in summary.values())  # GifLab writes 1.0 / 1.0 / 0.0


def test_temporal_known_value():
    # transitions 0, 250, 250 -> var/mean^2 = 1/2 -> exp(-1)
    frames = np.stack([np.full((4, 4, 3), v, dtype=np.uint8) for v in (0, 0, 250, 0)])
    value = temporal.temporal_consistency_from_transitions(temporal.frame_differences(frames))
    assert value == pytest.approx(math.exp(-1), rel=1e-12)


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel",
    [
        texture.chist,
        texture.edge_similarity,
        texture.texture_similarity,
        texture.sharpness_similarity,
        colour.deltae,
        colour.banding,
        temporal.temporal_consistency,
    ],
)
def test_kernels_validate_inputs(kernel):
    # the shared check (giflab_dask.kernels._luma.check_pair) raises ValueError (GiflabError is one)
    good = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        kernel(good.astype(np.float32), good)
    with pytest.raises(ValueError, match="shape"):
        kernel(good, good[:, :4])
    with pytest.raises(ValueError, match="shape"):
        kernel(good[..., :2], good[..., :2])


def test_parameter_validation():
    good = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(GiflabError, match="bins"):
        texture.chist(good, good, bins=0)
    with pytest.raises(GiflabError, match="low_threshold"):
        texture.edge_similarity(good, good, low_threshold=200)
    with pytest.raises(GiflabError, match="method"):
        texture.edge_similarity(good, good, method="canny")
    with pytest.raises(GiflabError, match="sigma"):
        texture.edge_similarity(good, good, method="opencv", sigma=1.0)
    with pytest.raises(GiflabError, match="radius"):
        texture.texture_similarity(good, good, radius=0)
    with pytest.raises(GiflabError, match="patch_size"):
        colour.banding(good, good, patch_size=4)
