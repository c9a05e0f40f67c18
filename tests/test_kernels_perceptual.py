"""Tests of the FSIM / FSIMc / GMSD pair kernels (giflab_dask.kernels.perceptual).

References used:

* a plain, eager float64 transcription of the authors' MATLAB code (``FeatureSIM.m`` with its
  ``phasecong2`` and ``lowpassfilter``, and ``GMSD.m``), kept below line by line, including
  MATLAB's ``conv2(.., 'same')`` alignment and ``round``;
* piq (PyPI, PyTorch), an independent published implementation of both metrics, when it can be
  imported (it is not a project dependency; those tests skip without it).
"""

from __future__ import annotations

import ast
import importlib.util
import math
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import skimage.data
from PIL import Image

from giflab_dask.kernels import _numba, perceptual
from giflab_dask.kernels.perceptual import fsim, gmsd

# Every value test runs on both backends: numpy, and the fused numba kernels when numba is
# installed (optional extra; tests/test_kernels_perceptual_numba.py compares the two).
BACKENDS = [
    "numpy",
    pytest.param(
        "numba",
        marks=pytest.mark.skipif(
            not _numba.available(), reason="numba is not installed (optional extra)"
        ),
    ),
]

# --------------------------------------------------------------------------------------------
# Reference: the authors' MATLAB code, transcribed to numpy (float64, no shortcuts)
# --------------------------------------------------------------------------------------------


def _conv2_same(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(a, k, 'same')``: the centre of the full convolution, starting at k//2."""
    full = scipy.signal.convolve2d(a, k, mode="full")
    r0, c0 = k.shape[0] // 2, k.shape[1] // 2
    return full[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]]


def _fspecial_average(n: int) -> np.ndarray:
    return np.full((n, n), 1.0 / (n * n))


def _kovesi_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    if cols % 2:
        xrange = np.arange(-(cols - 1) / 2, (cols - 1) / 2 + 1) / (cols - 1)
    else:
        xrange = np.arange(-cols / 2, cols / 2) / cols
    if rows % 2:
        yrange = np.arange(-(rows - 1) / 2, (rows - 1) / 2 + 1) / (rows - 1)
    else:
        yrange = np.arange(-rows / 2, rows / 2) / rows
    return np.meshgrid(xrange, yrange)


def _lowpassfilter(rows: int, cols: int, cutoff: float, n: int) -> np.ndarray:
    x, y = _kovesi_grid(rows, cols)
    radius = np.sqrt(x**2 + y**2)
    return np.fft.ifftshift(1.0 / (1.0 + (radius / cutoff) ** (2 * n)))


def _phasecong2(im: np.ndarray) -> np.ndarray:
    nscale, norient, min_wave_length, mult = 4, 4, 6, 2
    sigma_on_f, d_theta_on_sigma, k, epsilon = 0.55, 1.2, 2.0, 0.0001
    theta_sigma = math.pi / norient / d_theta_on_sigma
    rows, cols = im.shape
    imagefft = np.fft.fft2(im)
    zero = np.zeros((rows, cols))
    x, y = _kovesi_grid(rows, cols)
    radius = np.sqrt(x**2 + y**2)
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    radius[0, 0] = 1
    sintheta, costheta = np.sin(theta), np.cos(theta)
    lp = _lowpassfilter(rows, cols, 0.45, 15)
    log_gabor = []
    for s in range(nscale):
        wavelength = min_wave_length * mult**s
        fo = 1.0 / wavelength
        lg = np.exp((-((np.log(radius / fo)) ** 2)) / (2 * math.log(sigma_on_f) ** 2))
        lg = lg * lp
        lg[0, 0] = 0
        log_gabor.append(lg)
    spread = []
    for o in range(norient):
        angl = o * math.pi / norient
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread.append(np.exp((-(dtheta**2)) / (2 * theta_sigma**2)))
    energy_all = np.zeros((rows, cols))
    an_all = np.zeros((rows, cols))
    for o in range(norient):
        sum_e = zero.copy()
        sum_o = zero.copy()
        sum_an = zero.copy()
        energy = zero.copy()
        eo = []
        ifft_filter_array = []
        em_n = max_an = None
        for s in range(nscale):
            filt = log_gabor[s] * spread[o]
            ifft_filter_array.append(np.real(np.fft.ifft2(filt)) * math.sqrt(rows * cols))
            eo.append(np.fft.ifft2(imagefft * filt))
            an = np.abs(eo[s])
            sum_an = sum_an + an
            sum_e = sum_e + np.real(eo[s])
            sum_o = sum_o + np.imag(eo[s])
            if s == 0:
                em_n = np.sum(filt**2)
                max_an = an
            else:
                max_an = np.maximum(max_an, an)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e = sum_e / x_energy
        mean_o = sum_o / x_energy
        for s in range(nscale):
            e, od = np.real(eo[s]), np.imag(eo[s])
            energy = energy + e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        median_e2n = np.median((np.abs(eo[0]) ** 2).reshape(-1))
        mean_e2n = -median_e2n / math.log(0.5)
        noise_power = mean_e2n / em_n
        est_sum_an2 = zero.copy()
        for s in range(nscale):
            est_sum_an2 = est_sum_an2 + ifft_filter_array[s] ** 2
        est_sum_ai_aj = zero.copy()
        for si in range(nscale - 1):
            for sj in range(si + 1, nscale):
                est_sum_ai_aj = est_sum_ai_aj + ifft_filter_array[si] * ifft_filter_array[sj]
        est_noise_energy2 = 2 * noise_power * np.sum(est_sum_an2) + 4 * noise_power * np.sum(
            est_sum_ai_aj
        )
        tau = math.sqrt(est_noise_energy2 / 2)
        est_noise_energy = tau * math.sqrt(math.pi / 2)
        est_noise_energy_sigma = math.sqrt((2 - math.pi / 2) * tau**2)
        t = (est_noise_energy + k * est_noise_energy_sigma) / 1.7
        energy = np.maximum(energy - t, zero)
        energy_all = energy_all + energy
        an_all = an_all + sum_an
    return energy_all / an_all


def reference_feature_sim(ref: np.ndarray, dis: np.ndarray) -> tuple[float, float]:
    """``[FSIM, FSIMc] = FeatureSIM(imageRef, imageDis)`` for (H, W, 3) RGB 0..255."""
    rows, cols = ref.shape[:2]
    r1, g1, b1 = (ref[..., c].astype(np.float64) for c in range(3))
    r2, g2, b2 = (dis[..., c].astype(np.float64) for c in range(3))
    y1 = 0.299 * r1 + 0.587 * g1 + 0.114 * b1
    y2 = 0.299 * r2 + 0.587 * g2 + 0.114 * b2
    i1 = 0.596 * r1 - 0.274 * g1 - 0.322 * b1
    i2 = 0.596 * r2 - 0.274 * g2 - 0.322 * b2
    q1 = 0.211 * r1 - 0.523 * g1 + 0.312 * b1
    q2 = 0.211 * r2 - 0.523 * g2 + 0.312 * b2
    min_dimension = min(rows, cols)
    f = max(1, math.floor(min_dimension / 256 + 0.5))  # MATLAB round
    ave = _fspecial_average(f)
    i1, i2, q1, q2, y1, y2 = (_conv2_same(p, ave)[::f, ::f] for p in (i1, i2, q1, q2, y1, y2))
    pc1 = _phasecong2(y1)
    pc2 = _phasecong2(y2)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    dy = np.array([[3, 10, 3], [0, 0, 0], [-3, -10, -3]]) / 16
    gm1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dy) ** 2)
    gm2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dy) ** 2)
    t1, t2 = 0.85, 160
    pc_sim = (2 * pc1 * pc2 + t1) / (pc1**2 + pc2**2 + t1)
    g_sim = (2 * gm1 * gm2 + t2) / (gm1**2 + gm2**2 + t2)
    pcm = np.maximum(pc1, pc2)
    sim = g_sim * pc_sim * pcm
    fsim_value = np.sum(sim) / np.sum(pcm)
    t3 = t4 = 200
    i_sim = (2 * i1 * i2 + t3) / (i1**2 + i2**2 + t3)
    q_sim = (2 * q1 * q2 + t4) / (q1**2 + q2**2 + t4)
    lam = 0.03
    chroma = np.real((i_sim * q_sim).astype(np.complex128) ** lam)
    fsimc_value = np.sum(g_sim * pc_sim * chroma * pcm) / np.sum(pcm)
    return float(fsim_value), float(fsimc_value)


def reference_gmsd(ref: np.ndarray, dis: np.ndarray) -> float:
    """``GMSD(Y1, Y2)`` on ``double(rgb2gray(..))`` luma, with the paper's 1/N deviation."""
    coef = np.linalg.inv(
        np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    )
    w = coef[0]  # MATLAB rgb2gray weights
    y1 = ref.astype(np.float64) @ w
    y2 = dis.astype(np.float64) @ w
    t = 170
    dx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]]) / 3
    dy = dx.T
    ave = _fspecial_average(2)
    y1 = _conv2_same(y1, ave)[::2, ::2]
    y2 = _conv2_same(y2, ave)[::2, ::2]
    gm1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dy) ** 2)
    gm2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dy) ** 2)
    quality_map = (2 * gm1 * gm2 + t) / (gm1**2 + gm2**2 + t)
    return float(np.std(quality_map))  # GMSD.m: std2 (N - 1); the paper's Eq. 8: 1/N


# --------------------------------------------------------------------------------------------
# Test images: natural photographs shipped with scikit-image, distorted deterministically
# --------------------------------------------------------------------------------------------


def _photo(name: str, shape: tuple[int, int]) -> np.ndarray:
    img = getattr(skimage.data, name)()
    h, w = shape
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BOX))


def _palette(img: np.ndarray, colors: int) -> np.ndarray:
    """A GIF-like distortion: median-cut palette with Floyd-Steinberg dithering."""
    return np.asarray(Image.fromarray(img).quantize(colors=colors).convert("RGB"))


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _pair(name: str, shape: tuple[int, int], colors: int = 16) -> tuple[np.ndarray, np.ndarray]:
    ref = _photo(name, shape)
    return ref[None], _palette(ref, colors)[None]


# Shapes: even/odd mixes with F = 1, plus F = 2 (min side 384..639) and F = 3 (640..895).
FSIM_CASES = [
    ("chelsea", (96, 128)),
    ("coffee", (75, 101)),
    ("astronaut", (64, 57)),
    ("rocket", (400, 520)),
    ("coffee", (641, 650)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "shape"), FSIM_CASES)
def test_fsim_matches_matlab_transcription(name: str, shape: tuple[int, int], backend: str) -> None:
    ref, dis = _pair(name, shape)
    want_fsim, want_fsimc = reference_feature_sim(ref[0], dis[0])
    got = fsim(ref, dis, backend=backend)
    got_c = fsim(ref, dis, chroma=True, backend=backend)
    assert got.shape == (1,) and got.dtype == np.float64
    assert 0.5 < want_fsim < 1.0
    # float32 maps vs the float64 transcription: measured <= 1.2e-7 on these cases.
    np.testing.assert_allclose(got, [want_fsim], rtol=0, atol=5e-7)
    np.testing.assert_allclose(got_c, [want_fsimc], rtol=0, atol=5e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(96, 128), (75, 101), (5, 5), (6, 9), (33, 64), (400, 520)])
def test_gmsd_matches_matlab_transcription(shape: tuple[int, int], backend: str) -> None:
    ref, dis = _pair("chelsea", shape)
    noisy = _noisy(ref[0].astype(np.float64), 8.0, 1)[None]
    for other in (dis, noisy):
        want = reference_gmsd(ref[0], other[0])
        got = gmsd(ref, other, backend=backend)
        assert got.shape == (1,) and got.dtype == np.float64
        np.testing.assert_allclose(got, [want], rtol=0, atol=5e-8)  # measured <= 1e-8


def test_gmsd_luma_is_matlab_rgb2gray() -> None:
    # rgb2gray's weights are the first row of inv(YIQ -> RGB), printed 0.2989 0.5870 0.1140.
    yiq_to_rgb = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    np.testing.assert_allclose(perceptual._RGB2GRAY, np.linalg.inv(yiq_to_rgb)[0], atol=1e-15)
    np.testing.assert_allclose(perceptual._RGB2GRAY, [0.2989, 0.5870, 0.1140], atol=5e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fsimc_chroma_branch_with_negative_similarity(backend: str) -> None:
    # Opposite chroma (large positive I in one frame, negative in the other) makes S_I < 0;
    # the MATLAB code takes the real part of the complex power there.
    rng = np.random.default_rng(3)
    ref = np.zeros((1, 40, 48, 3), np.uint8)
    ref[0, ..., 0] = 230
    ref[0, ..., 1:] = 20
    ref[0, 10:30, 12:36] = (40, 200, 40)
    dis = ref[..., ::-1].copy()  # swap R and B: I changes sign
    dis[0] = np.clip(dis[0] + rng.integers(-3, 4, dis[0].shape), 0, 255).astype(np.uint8)
    want = reference_feature_sim(ref[0], dis[0])[1]
    np.testing.assert_allclose(
        fsim(ref, dis, chroma=True, backend=backend), [want], rtol=0, atol=5e-7
    )


# --------------------------------------------------------------------------------------------
# Independent published implementation: piq (skips when it cannot be imported)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def piq_metrics() -> types.SimpleNamespace:
    """piq's ``fsim`` and ``gmsd`` functions, loaded without ``piq/__init__``.

    ``piq/__init__`` imports torchvision (for its VGG-based metrics) although ``piq.fsim`` and
    ``piq.gmsd`` need only torch; loading the package without running ``__init__`` keeps the
    test working where torch is installed without a matching torchvision.
    """
    pytest.importorskip(
        "torch", exc_type=ImportError, reason="torch is not installed (to run the torch-based "
        "reference tests: pip install torch pytorch-msssim piq)",
    )  # fmt: skip
    spec = importlib.util.find_spec("piq")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("piq is not installed (pip install torch pytorch-msssim piq)")
    saved = {k: v for k, v in sys.modules.items() if k == "piq" or k.startswith("piq.")}
    package = types.ModuleType("piq")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["piq"] = package
    try:
        import piq.fsim
        import piq.gmsd

        found = types.SimpleNamespace(fsim=piq.fsim.fsim, gmsd=piq.gmsd.gmsd)
    finally:
        for key in [k for k in sys.modules if k == "piq" or k.startswith("piq.")]:
            del sys.modules[key]
        sys.modules.update(saved)
    return found


# piq downsamples with avg_pool2d (blocks aligned at 0, remainder dropped) rather than the
# authors' conv2 'same' + 1:F:end, so only sizes with F = 1 (min side < 384) compare.
PIQ_FSIM_CASES = [*FSIM_CASES[:3], ("coffee", (270, 480))]


def _torch_rgb(a: np.ndarray):
    import torch

    return torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float64))


@pytest.mark.parametrize(("name", "shape"), PIQ_FSIM_CASES)
def test_fsim_matches_piq(
    piq_metrics: types.SimpleNamespace, name: str, shape: tuple[int, int]
) -> None:
    ref, dis = _pair(name, shape)
    want = piq_metrics.fsim(_torch_rgb(dis), _torch_rgb(ref), data_range=255.0, chromatic=False)
    # piq's epsilons (machine eps instead of phasecong2's 1e-4 in the mean phase vector, and
    # +eps on the final ratio) move FSIM by up to ~5e-6 from the authors' code.
    np.testing.assert_allclose(fsim(ref, dis), [float(want)], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("name", "shape"), PIQ_FSIM_CASES[:3])
def test_fsimc_close_to_piq(
    piq_metrics: types.SimpleNamespace, name: str, shape: tuple[int, int]
) -> None:
    ref, dis = _pair(name, shape, colors=4)
    want = piq_metrics.fsim(_torch_rgb(dis), _torch_rgb(ref), data_range=255.0, chromatic=True)
    # piq's FSIMc uses other I/Q weights (0.5959, -0.2746, -0.3213 / 0.2115, -0.5227, 0.3112
    # vs FeatureSIM.m's 0.596, -0.274, -0.322 / 0.211, -0.523, 0.312) and |S_I S_Q|^lambda
    # instead of real((S_I S_Q)^lambda): measured differences up to ~7e-5.
    np.testing.assert_allclose(fsim(ref, dis, chroma=True), [float(want)], rtol=0, atol=2e-4)


@pytest.mark.parametrize("shape", [(96, 128), (64, 58), (270, 480)])
def test_gmsd_matches_piq(piq_metrics: types.SimpleNamespace, shape: tuple[int, int]) -> None:
    import torch

    # piq gets the rgb2gray luma as a 1-channel image (its own RGB path takes YIQ's Y, 0.299 R
    # + 0.587 G + 0.114 B, not the luma GMSD's authors use), and even sizes only: for an odd
    # size piq pads *both* axes before its 2x2 pooling, adding a zero row or column.
    ref, dis = _pair("coffee", shape)
    luma = perceptual._RGB2GRAY

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a.astype(np.float64) @ luma)[:, None])

    want = piq_metrics.gmsd(tensor(dis), tensor(ref), data_range=255.0, reduction="none")
    # piq equals the float64 transcription to ~1e-16; the float32 kernel is within ~1e-8.
    np.testing.assert_allclose(gmsd(ref, dis), want.numpy(), rtol=0, atol=5e-8)


# --------------------------------------------------------------------------------------------
# Identities, monotonicity, per-frame independence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_identity(backend: str) -> None:
    ref, _ = _pair("astronaut", (90, 120))
    np.testing.assert_allclose(fsim(ref, ref, backend=backend), [1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        fsim(ref, ref, chroma=True, backend=backend), [1.0], rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(gmsd(ref, ref, backend=backend), [0.0])


def test_more_noise_is_worse() -> None:
    ref = _photo("chelsea", (80, 112))
    noisy = np.stack([_noisy(ref.astype(np.float64), s, seed=7) for s in (2, 6, 15, 30, 60)])
    block = np.broadcast_to(ref, noisy.shape).copy()
    f = fsim(block, noisy)
    fc = fsim(block, noisy, chroma=True)
    g = gmsd(block, noisy)
    assert np.all(np.diff(f) < 0), f
    assert np.all(np.diff(fc) < 0), fc
    assert np.all(np.diff(g) > 0), g
    assert np.all((f > 0) & (f < 1)) and np.all(g > 0)


def test_fewer_palette_colours_is_worse() -> None:
    ref = _photo("coffee", (72, 96))
    dis = np.stack([_palette(ref, c) for c in (128, 32, 8, 2)])
    block = np.broadcast_to(ref, dis.shape).copy()
    assert np.all(np.diff(fsim(block, dis)) < 0)
    assert np.all(np.diff(gmsd(block, dis)) > 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_of_a_block_are_independent(backend: str) -> None:
    refs = np.stack([_photo(n, (60, 84)) for n in ("chelsea", "coffee", "astronaut", "rocket")])
    dis = np.stack([_palette(r, c) for r, c in zip(refs, (4, 8, 16, 64), strict=True)])
    for kernel in (fsim, gmsd):
        whole = kernel(refs, dis, backend=backend)
        singles = np.concatenate(
            [kernel(refs[i : i + 1], dis[i : i + 1], backend=backend) for i in range(4)]
        )
        np.testing.assert_array_equal(whole, singles)
        order = [2, 0, 3, 1]
        np.testing.assert_array_equal(
            kernel(refs[order], dis[order], backend=backend), whole[order]
        )
        assert len(set(whole.tolist())) == 4  # the frames really differ


def test_swapping_the_pair_is_symmetric() -> None:
    ref, dis = _pair("rocket", (70, 90), colors=8)
    np.testing.assert_allclose(fsim(ref, dis), fsim(dis, ref), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gmsd(ref, dis), gmsd(dis, ref), rtol=0, atol=1e-12)


def test_threads_share_the_filter_bank() -> None:
    # Dask's default scheduler runs kernels in threads; results must not depend on that.
    perceptual._log_gabor_bank.cache_clear()
    refs = np.stack([_photo(n, (48, 60)) for n in ("chelsea", "coffee", "astronaut", "rocket")])
    dis = np.stack([_palette(r, 8) for r in refs])
    serial = fsim(refs, dis, chroma=True)
    perceptual._log_gabor_bank.cache_clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        parts = list(
            pool.map(lambda i: fsim(refs[i : i + 1], dis[i : i + 1], chroma=True), range(4))
        )
    np.testing.assert_array_equal(np.concatenate(parts), serial)


def test_filter_bank_is_cached_per_shape_and_read_only() -> None:
    perceptual._log_gabor_bank.cache_clear()
    ref, dis = _pair("chelsea", (50, 70))
    fsim(np.repeat(ref, 3, axis=0), np.repeat(dis, 3, axis=0))
    info = perceptual._log_gabor_bank.cache_info()
    assert (info.misses, info.hits) == (1, 2)  # one shape, looked up once per frame
    bank = perceptual._log_gabor_bank(50, 70)
    assert not bank.filters.flags.writeable and not bank.noise_coef.flags.writeable


# --------------------------------------------------------------------------------------------
# Small, flat and empty frames
# --------------------------------------------------------------------------------------------


def test_empty_block() -> None:
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    for result in (fsim(empty, empty), gmsd(empty, empty)):
        assert result.shape == (0,) and result.dtype == np.float64


@pytest.mark.parametrize("shape", [(1, 1), (2, 40), (40, 2), (0, 8)])
def test_fsim_too_small_is_nan(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    assert np.isnan(fsim(a, a[::-1])).all()
    assert np.isnan(fsim(a, a[::-1], chroma=True)).all()


@pytest.mark.parametrize("shape", [(4, 40), (40, 4), (3, 3), (1, 1)])
def test_gmsd_too_small_is_nan(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    assert np.isnan(gmsd(a, a[::-1])).all()


@pytest.mark.parametrize("shape", [(3, 3), (3, 10), (7, 5)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fsim_smallest_frames_are_measured(shape: tuple[int, int], backend: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8)
    b = _noisy(a.astype(np.float64), 20.0, 2)
    got = fsim(a, b, backend=backend)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, [reference_feature_sim(a[0], b[0])[0]], rtol=0, atol=5e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flat_frames(backend: str) -> None:
    flat = np.full((1, 48, 64, 3), 128, np.uint8)
    other_flat = np.full((1, 48, 64, 3), 30, np.uint8)
    textured = _photo("chelsea", (48, 64))[None]
    # Neither frame has phase-congruent structure: FSIM's weighted mean is 0/0.
    assert np.isnan(fsim(flat, flat, backend=backend)).all()
    assert np.isnan(fsim(flat, other_flat, chroma=True, backend=backend)).all()
    # A flat frame against a textured one is measurable (PC of the flat frame is 0) and bad.
    both_ways = np.concatenate(
        [fsim(flat, textured, backend=backend), fsim(textured, flat, backend=backend)]
    )
    assert np.isfinite(both_ways).all() and (both_ways < 0.5).all()
    np.testing.assert_allclose(both_ways[0], both_ways[1], rtol=0, atol=1e-12)
    # GMSD of flat frames is defined. The same flat frame gives 0; two flat frames of different
    # colours do not, because GMSD.m zero-pads its filters, so the border ring of each frame
    # has a gradient towards black that depends on the colour (the authors' definition).
    np.testing.assert_array_equal(gmsd(flat, flat, backend=backend), [0.0])
    border_only = gmsd(flat, other_flat, backend=backend)[0]
    np.testing.assert_allclose(border_only, reference_gmsd(flat[0], other_flat[0]), atol=5e-8)
    assert 0 < border_only < gmsd(flat, textured, backend=backend)[0]


# --------------------------------------------------------------------------------------------
# Validation and contract
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [fsim, gmsd])
def test_validation_messages(kernel) -> None:
    good = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"uint8 RGB \(0-255\); got dtype float32.*np\.clip"):
        kernel(good.astype(np.float32), good)
    with pytest.raises(ValueError, match=r"\(t, H, W, 3\).*frame\[np.newaxis\]"):
        kernel(good[0], good[0])
    with pytest.raises(ValueError, match=r"\(t, H, W, 3\)"):
        kernel(np.zeros((2, 16, 16, 4), np.uint8), np.zeros((2, 16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match=r"same shape.*align"):
        kernel(good, good[:1])
    with pytest.raises(ValueError, match="must be uint8 RGB"):  # array-likes: checked as arrays
        kernel(good.tolist(), good)


def test_fsim_rejects_non_bool_chroma() -> None:
    good = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="chroma must be True or False"):
        fsim(good, good, chroma="yes")


def test_module_imports_no_dask() -> None:
    source = Path(perceptual.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "dask" not in imported and "distributed" not in imported


def test_docstrings_state_definition_and_reference() -> None:
    for kernel, paper in ((fsim, "Zhang"), (gmsd, "Xue")):
        doc = kernel.__doc__ or ""
        assert "Definition" in doc and "References" in doc and paper in doc
        assert "GifLab" in doc and "NaN" in doc


def test_per_frame_time_is_reasonable() -> None:
    # Not a benchmark: a guard against an accidental slow path (e.g. filters rebuilt per
    # frame). 480 x 270 FSIM is measured at ~35 ms (numba) / ~70 ms (numpy) per frame.
    ref, dis = _pair("coffee", (270, 480))
    fsim(ref, dis)  # build the filter bank
    start = time.perf_counter()
    fsim(np.repeat(ref, 3, axis=0), np.repeat(dis, 3, axis=0))
    gmsd(np.repeat(ref, 3, axis=0), np.repeat(dis, 3, axis=0))
    assert (time.perf_counter() - start) / 3 < 2.0
