"""Fidelity and structural kernels against their references (skimage, OpenCV, pytorch_msssim,
sewar, and an eager numpy MS-SSIM kept here), identities, per-frame independence and checks.

Optional references (opencv-python-headless, sewar, torch + pytorch-msssim) are skipped when
not installed; skimage and scipy are hard dependencies of the package.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from giflab_dask.kernels import fidelity, structural
from giflab_dask.kernels._luma import luma
from giflab_dask.kernels.fidelity import mse, psnr, psnr_from_mse, psnr_normalized, rmse
from giflab_dask.kernels.structural import MS_SSIM_WEIGHTS, ms_ssim, ssim

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


# --------------------------------------------------------------------------- frame factories


def _gradient(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(t):
        phase = rng.uniform(0, 2 * np.pi)
        r = 255 * xx / max(w - 1, 1)
        g = 255 * yy / max(h - 1, 1)
        b = 127.5 + 120 * np.sin(xx / 7.0 + yy / 11.0 + phase + i)
        frames.append(np.stack([r, g, b], axis=-1))
    noise = rng.normal(0, 4, (t, h, w, 3))
    return np.clip(np.rint(np.array(frames) + noise), 0, 255).astype(np.uint8)


def _noise(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _gif_like(frames: np.ndarray, levels: int = 6, block: int = 4) -> np.ndarray:
    """What lossy GIF compression does to frames: block-flattening plus a small palette."""
    t, h, w, _ = frames.shape
    hp, wp = -(-h // block) * block, -(-w // block) * block
    padded = np.pad(frames.astype(np.float64), ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), "edge")
    blocks = padded.reshape(t, hp // block, block, wp // block, block, 3).mean(axis=(2, 4))
    up = np.repeat(np.repeat(blocks, block, axis=1), block, axis=2)[:, :h, :w]
    step = 255 / (levels - 1)
    return np.clip(np.rint(np.rint(up / step) * step), 0, 255).astype(np.uint8)


def _pairs(
    shape: tuple[int, int], seed: int, t: int = 2
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Representative (original, compressed) blocks of one frame shape."""
    rng = np.random.default_rng(seed)
    h, w = shape
    grad = _gradient(rng, t, h, w)
    noise = _noise(rng, t, h, w)
    noisy = np.clip(grad.astype(int) + rng.integers(-25, 26, grad.shape), 0, 255).astype(np.uint8)
    return [
        ("gradient-vs-blocky", grad, _gif_like(grad)),
        ("gradient-vs-noisy", grad, noisy),
        ("noise-vs-noise", noise, _noise(rng, t, h, w)),
        ("noise-vs-quantised", noise, _gif_like(noise, levels=4, block=1)),
    ]


SHAPES = [(7, 7), (8, 50), (13, 9), (31, 17), (64, 96), (97, 131)]


# ------------------------------------------------------------------------------------- luma


def test_luma_matches_opencv_on_every_rgb_colour() -> None:
    cv2 = pytest.importorskip("cv2")
    v = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    img = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    np.testing.assert_array_equal(luma(img), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))


def test_luma_is_the_documented_fixed_point_formula() -> None:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    expected = [(9798 * int(r) + 19235 * int(g) + 3735 * int(b) + 16384) >> 15 for r, g, b in px]
    np.testing.assert_array_equal(luma(px), np.array(expected, dtype=np.uint8))
    # Where round(0.299 R + 0.587 G + 0.114 B) and OpenCV differ, OpenCV wins.
    assert luma(np.array([0, 0, 250], np.uint8)) == 28  # float formula: 28.5 -> 29
    assert luma(np.array([[255, 255, 255], [0, 0, 0]], np.uint8)).tolist() == [255, 0]


def test_luma_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        luma(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="last axis of length 3"):
        luma(np.zeros((4, 4, 4), np.uint8))


# ---------------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("shape", SHAPES)
def test_mse_rmse_psnr_match_skimage(shape: tuple[int, int]) -> None:
    for _, a, b in _pairs(shape, seed=1):
        ref_mse = [mean_squared_error(x, y) for x, y in zip(a, b, strict=True)]
        ref_psnr = [
            peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)
        ]
        np.testing.assert_allclose(mse(a, b), ref_mse, rtol=1e-13)
        np.testing.assert_allclose(rmse(a, b), np.sqrt(ref_mse), rtol=1e-13)
        np.testing.assert_allclose(psnr(a, b), ref_psnr, rtol=1e-13)
        np.testing.assert_allclose(psnr(a, b, cap_db=None), ref_psnr, rtol=1e-13)


def test_psnr_normalized_is_giflabs_clamped_ratio() -> None:
    for _, a, b in _pairs((40, 56), seed=2):
        db = np.array(
            [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)]
        )
        expected = np.maximum(0.0, np.minimum(db / 50.0, 1.0))
        np.testing.assert_allclose(psnr_normalized(a, b), expected, rtol=1e-13)
        np.testing.assert_allclose(psnr_normalized(a, b, max_db=20.0), np.clip(db / 20, 0, 1))
    a = _pairs((16, 16), seed=3)[0][1]
    near = a.copy()
    near[:, 0, 0, 0] ^= 1  # one level in one value: PSNR far above 50 dB
    np.testing.assert_array_equal(psnr_normalized(a, near), 1.0)
    assert fidelity.GIFLAB_OUTPUT_NAMES["psnr_normalized"] == "psnr"
    assert fidelity.GIFLAB_OUTPUT_NAMES["psnr"] == "psnr_raw"


def test_fidelity_identities_and_cap() -> None:
    a = _gradient(np.random.default_rng(4), 3, 30, 40)
    np.testing.assert_array_equal(mse(a, a), 0.0)
    np.testing.assert_array_equal(rmse(a, a), 0.0)
    np.testing.assert_array_equal(psnr(a, a), 100.0)
    np.testing.assert_array_equal(psnr(a, a, cap_db=60.0), 60.0)
    np.testing.assert_array_equal(psnr(a, a, cap_db=None), np.inf)
    np.testing.assert_array_equal(psnr_normalized(a, a), 1.0)
    # Extremes of 8-bit data: MSE 65025, PSNR 0 dB.
    black, white = np.zeros((1, 5, 5, 3), np.uint8), np.full((1, 5, 5, 3), 255, np.uint8)
    assert mse(black, white)[0] == 65025.0
    assert psnr(black, white)[0] == 0.0
    # The cap clips rather than jumps: nearly identical large frames stay at the cap.
    big = np.zeros((1, 300, 500, 3), np.uint8)
    one_off = big.copy()
    one_off[0, 0, 0, 0] = 1
    assert psnr(big, one_off, cap_db=None)[0] > 100.0
    assert psnr(big, one_off)[0] == 100.0


def test_psnr_from_mse() -> None:
    assert psnr_from_mse(65025.0) == 0.0
    assert psnr_from_mse(0.0) == 100.0
    assert psnr_from_mse(0.0, cap_db=None) == np.inf
    assert np.isnan(psnr_from_mse(np.nan))
    values = np.array([1.0, 10.0, 0.0, np.nan])
    out = psnr_from_mse(values)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_allclose(out[:2], 10 * np.log10(255.0**2 / values[:2]))
    assert out[2] == 100.0 and np.isnan(out[3])
    # "PSNR of aggregated MSE" equals PSNR of a block's mean MSE.
    a, b = _pairs((20, 24), seed=5)[0][1:]
    per_frame = mse(a, b)
    assert psnr_from_mse(per_frame.mean()) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=255), rel=1e-12
    )


# ------------------------------------------------------------------------------------- SSIM


def _skimage_ssim(a: np.ndarray, b: np.ndarray, gaussian: bool = False) -> np.ndarray:
    kw = (
        {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} if gaussian else {}
    )
    return np.array(
        [
            structural_similarity(luma(x), luma(y), data_range=255, **kw)
            for x, y in zip(a, b, strict=True)
        ]
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_ssim_matches_skimage_on_luma(shape: tuple[int, int]) -> None:
    for name, a, b in _pairs(shape, seed=6):
        got = ssim(a, b)
        ref = _skimage_ssim(a, b)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6, err_msg=name)
        if shape[0] * shape[1] >= 1000:  # many windows: float32 rounding averages out
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("shape", [(11, 11), (12, 40), (31, 17), (97, 131)])
def test_gaussian_ssim_matches_skimage_on_luma(shape: tuple[int, int]) -> None:
    for name, a, b in _pairs(shape, seed=7):
        got = ssim(a, b, gaussian=True)
        np.testing.assert_allclose(got, _skimage_ssim(a, b, True), rtol=0, atol=1e-12, err_msg=name)


def test_ssim_is_giflabs_definition_end_to_end() -> None:
    """GifLab: skimage SSIM (defaults, data_range=255) on cv2.cvtColor(RGB2GRAY) luma."""
    cv2 = pytest.importorskip("cv2")
    for name, a, b in _pairs((45, 80), seed=8):
        ref = [
            structural_similarity(
                cv2.cvtColor(x, cv2.COLOR_RGB2GRAY),
                cv2.cvtColor(y, cv2.COLOR_RGB2GRAY),
                data_range=255,
            )
            for x, y in zip(a, b, strict=True)
        ]
        np.testing.assert_allclose(ssim(a, b), ref, rtol=0, atol=1e-7, err_msg=name)
    assert structural.GIFLAB_OUTPUT_NAMES == {"ssim": "ssim", "ms_ssim": "ms_ssim"}


def test_ssim_identities_and_extremes() -> None:
    rng = np.random.default_rng(9)
    for a in (
        _gradient(rng, 2, 30, 41),
        _noise(rng, 2, 9, 8),
        np.full((1, 10, 10, 3), 77, np.uint8),
    ):
        np.testing.assert_allclose(ssim(a, a), 1.0, rtol=0, atol=1e-7)
        np.testing.assert_allclose(ssim(a, a, gaussian=a.shape[1] >= 11), 1.0, rtol=0, atol=1e-12)
    # Anti-correlated frames give a negative SSIM, which is kept (GifLab would clip to 0).
    a = _gradient(rng, 1, 32, 32)
    inv = 255 - a
    got = ssim(a, inv)
    assert got[0] < 0
    np.testing.assert_allclose(got, _skimage_ssim(a, inv), rtol=0, atol=1e-7)


def test_ssim_of_frames_smaller_than_the_window_is_nan() -> None:
    a = np.zeros((3, 6, 50, 3), np.uint8)
    assert np.isnan(ssim(a, a)).all() and ssim(a, a).shape == (3,)
    b = np.zeros((2, 10, 50, 3), np.uint8)
    assert not np.isnan(ssim(b, b)).any()
    assert np.isnan(ssim(b, b, gaussian=True)).all()


# ---------------------------------------------------------------------------------- MS-SSIM


def _ref_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """MATLAB fspecial('gaussian', 11, 1.5)."""
    x = np.arange(size) - size // 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _ref_ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    win = _ref_window()

    def filt(im: np.ndarray) -> np.ndarray:
        return correlate2d(im, win, mode="valid")

    mu1, mu2 = filt(x), filt(y)
    s11 = filt(x * x) - mu1 * mu1
    s22 = filt(y * y) - mu2 * mu2
    s12 = filt(x * y) - mu1 * mu2
    cs = (2 * s12 + C2) / (s11 + s22 + C2)
    lum = (2 * mu1 * mu2 + C1) / (mu1 * mu1 + mu2 * mu2 + C1)
    return float((lum * cs).mean()), float(cs.mean())


def _ref_downsample(x: np.ndarray) -> np.ndarray:
    """MATLAB: imfilter(x, ones(2)/4, 'symmetric', 'same'), then x(1:2:end, 1:2:end)."""
    p = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    f = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4
    return f[::2, ::2]


def _ref_ms_ssim(x8: np.ndarray, y8: np.ndarray, weights=MS_SSIM_WEIGHTS) -> float:
    """Plain eager MS-SSIM (Wang et al. 2003), negative terms clamped at 0."""
    x, y = x8.astype(np.float64), y8.astype(np.float64)
    terms = []
    for j in range(len(weights)):
        s, cs = _ref_ssim_cs(x, y)
        terms.append(cs if j < len(weights) - 1 else s)
        x, y = _ref_downsample(x), _ref_downsample(y)
    return float(np.prod(np.maximum(terms, 0.0) ** np.asarray(weights)))


@pytest.mark.parametrize("shape", [(161, 170), (176, 192), (177, 203)])
def test_ms_ssim_matches_eager_reference(shape: tuple[int, int]) -> None:
    for name, a, b in _pairs(shape, seed=10, t=1)[:3]:
        ref = [_ref_ms_ssim(luma(x), luma(y)) for x, y in zip(a, b, strict=True)]
        np.testing.assert_allclose(ms_ssim(a, b), ref, rtol=0, atol=1e-12, err_msg=name)


def test_ms_ssim_with_fewer_scales_matches_eager_reference() -> None:
    weights = MS_SSIM_WEIGHTS[:3]
    for name, a, b in _pairs((45, 67), seed=11, t=1):
        ref = [_ref_ms_ssim(luma(x), luma(y), weights) for x, y in zip(a, b, strict=True)]
        np.testing.assert_allclose(
            ms_ssim(a, b, weights=weights), ref, rtol=0, atol=1e-12, err_msg=name
        )


def test_ms_ssim_matches_pytorch_msssim() -> None:
    """pytorch_msssim zero-pads odd sizes when pooling; on sizes that stay even it is Wang's."""
    how = "(to run the torch-based reference tests: pip install torch pytorch-msssim piq)"
    torch = pytest.importorskip("torch", reason=f"torch is not installed {how}")
    pytorch_msssim = pytest.importorskip("pytorch_msssim", reason=f"pytorch_msssim is not "
                                         f"installed {how}")  # fmt: skip
    # pytorch_msssim builds its window in float32 by default (differences ~4e-6 in MS-SSIM,
    # from the window's sum not being exactly 1); give it the same formula in float64.
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    win = torch.from_numpy(g / g.sum()).reshape(1, 1, 1, 11)

    def reference(a: np.ndarray, b: np.ndarray, **kw) -> np.ndarray:
        x = torch.from_numpy(luma(a).astype(np.float64))[:, None]
        y = torch.from_numpy(luma(b).astype(np.float64))[:, None]
        return pytorch_msssim.ms_ssim(x, y, data_range=255, size_average=False, **kw).numpy()

    for shape in [(176, 192), (192, 256)]:
        for name, a, b in _pairs(shape, seed=12, t=1):
            got = ms_ssim(a, b)
            np.testing.assert_allclose(
                got, reference(a, b, win=win), rtol=0, atol=1e-12, err_msg=name
            )
            np.testing.assert_allclose(got, reference(a, b), rtol=0, atol=1e-5, err_msg=name)
    # Anti-correlated frames: negative terms are clamped at 0 by both.
    a = _gradient(np.random.default_rng(13), 1, 176, 176)
    assert reference(a, 255 - a, win=win)[0] == 0.0
    assert ms_ssim(a, 255 - a)[0] == 0.0


def test_ms_ssim_per_scale_terms_match_sewar() -> None:
    """sewar's ssim with a Gaussian window in 'valid' mode returns (mean SSIM, mean cs).

    (sewar's msssim itself is not comparable: it pools pixel pairs offset by one.)
    """
    sewar_full_ref = pytest.importorskip("sewar.full_ref")
    sewar_utils = pytest.importorskip("sewar.utils")
    specs = {"fltr": sewar_utils.Filter.GAUSSIAN, "sigma": 1.5, "ws": 11}
    for name, a, b in _pairs((40, 53), seed=14, t=1):
        x, y = luma(a[0]).astype(np.float64), luma(b[0]).astype(np.float64)
        ref = sewar_full_ref.ssim(x, y, ws=11, MAX=255, fltr_specs=specs, mode="valid")
        got = structural._gaussian_ssim_cs(x, y)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=name)


def test_ms_ssim_identity_small_frames_and_weights() -> None:
    a = _gradient(np.random.default_rng(15), 2, 161, 170)
    np.testing.assert_allclose(ms_ssim(a, a), 1.0, rtol=0, atol=1e-12)
    small = a[:, :160]  # 160 -> 80 -> 40 -> 20 -> 10 < 11: too small for five scales
    assert np.isnan(ms_ssim(small, small)).all()
    np.testing.assert_allclose(ms_ssim(small, small, weights=MS_SSIM_WEIGHTS[:4]), 1.0, atol=1e-12)
    tiny = a[:, :11, :11]
    np.testing.assert_allclose(ms_ssim(tiny, tiny, weights=[1.0]), 1.0, atol=1e-12)
    # One scale with weight 1 is the Gaussian SSIM (clamped at 0).
    b = _gif_like(a)
    np.testing.assert_allclose(ms_ssim(a, b, weights=[1.0]), ssim(a, b, gaussian=True), atol=1e-12)
    assert np.isnan(ms_ssim(tiny[:, :10], tiny[:, :10], weights=[1.0])).all()


# ------------------------------------------------------------------ contract: shapes, blocks


KERNELS = [
    ("mse", mse, {}),
    ("rmse", rmse, {}),
    ("psnr", psnr, {}),
    ("psnr_normalized", psnr_normalized, {}),
    ("ssim", ssim, {}),
    ("ssim-gaussian", ssim, {"gaussian": True}),
    ("ms_ssim", ms_ssim, {"weights": MS_SSIM_WEIGHTS[:2]}),
]


@pytest.mark.parametrize(("name", "kernel", "params"), KERNELS, ids=[k[0] for k in KERNELS])
def test_block_equals_frames_alone(name: str, kernel, params: dict) -> None:
    rng = np.random.default_rng(16)
    a = _gradient(rng, 5, 33, 47)
    b = _gif_like(a)
    b[2] = a[2]  # one identical frame inside the block
    block = kernel(a, b, **params)
    assert block.dtype == np.float64 and block.shape == (5,)
    alone = np.concatenate([kernel(a[i : i + 1], b[i : i + 1], **params) for i in range(5)])
    np.testing.assert_array_equal(block, alone)
    # Splitting the block anywhere changes nothing either.
    split = np.concatenate([kernel(a[:2], b[:2], **params), kernel(a[2:], b[2:], **params)])
    np.testing.assert_array_equal(block, split)
    empty = kernel(a[:0], b[:0], **params)
    assert empty.shape == (0,) and empty.dtype == np.float64


@pytest.mark.parametrize(("name", "kernel", "params"), KERNELS, ids=[k[0] for k in KERNELS])
def test_bad_inputs_raise_helpful_errors(name: str, kernel, params: dict) -> None:
    a = np.zeros((2, 12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=r"uint8 RGB.*np\.clip"):
        kernel(a.astype(np.float32), a, **params)
    with pytest.raises(ValueError, match=r"frame\[np\.newaxis\]"):
        kernel(a[0], a[0], **params)
    with pytest.raises(ValueError, match=r"\(t, H, W, 3\).*alpha"):
        kernel(np.zeros((2, 12, 12, 4), np.uint8), np.zeros((2, 12, 12, 4), np.uint8), **params)
    with pytest.raises(ValueError, match=r"same shape.*Align the pair"):
        kernel(a, a[:, :10], **params)


def test_bad_parameters_raise_helpful_errors() -> None:
    a = np.zeros((1, 12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="gaussian must be True or False"):
        ssim(a, a, gaussian="yes")
    for bad in ([], [[0.5, 0.5]], [0.5, float("nan")], "abc", None):
        with pytest.raises(ValueError, match="weights must be a non-empty 1-D sequence"):
            ms_ssim(a, a, weights=bad)
    with pytest.raises(ValueError, match=r"weights must all be > 0.*MS_SSIM_WEIGHTS\[:3\]"):
        ms_ssim(a, a, weights=[0.5, 0.0])
    for bad in (0, -3.0, float("inf"), "100", True):
        with pytest.raises(ValueError, match="cap_db must be a positive finite number"):
            psnr(a, a, cap_db=bad)
    with pytest.raises(ValueError, match="max_db must be a positive finite number"):
        psnr_normalized(a, a, max_db=0)
    with pytest.raises(ValueError, match="mse must be >= 0"):
        psnr_from_mse([1.0, -1.0])
