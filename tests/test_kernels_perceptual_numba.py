"""The fused numba kernels of FSIM / GMSD (``giflab_dask.kernels._numba_perceptual``) against
the numpy code they replace, piece by piece and end to end, and the ``backend`` dispatch.

The two backends are meant to give the same bits (same float32 operations in the same order,
exact integer sums, exact selection), so equality is asserted exactly. Agreement with the
float64 transcription of the authors' MATLAB code is tested for both backends in
tests/test_kernels_perceptual.py. Speed is measured by benchmarks, never asserted here.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from giflab_dask import metrics
from giflab_dask.kernels import _numba, _numba_perceptual, perceptual
from giflab_dask.kernels.perceptual import fsim, gmsd
from giflab_dask.pipeline import validate_pair

from .conftest import write_lossy_variants

requires_numba = pytest.mark.skipif(
    not _numba.available(),
    reason="numba is not installed (optional: pip install 'giflab-dask[numba]'); the numpy "
    "kernels are tested in test_kernels_perceptual.py",
)


def _frames(shape: tuple[int, int], seed: int, t: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Smooth structure plus noise, and a coarsely quantised, noisier copy (GIF-like)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([127 + 100 * np.sin(xx / 5.0 + c + yy / (7.0 + c)) for c in range(3)], axis=-1)
    ref = np.clip(base + rng.normal(0, 6, (t, h, w, 3)), 0, 255).astype(np.uint8)
    dis = np.clip(np.rint(ref / 32.0) * 32 + rng.normal(0, 3, ref.shape), 0, 255)
    return ref, dis.astype(np.uint8)


# Downsampling factors 1 (min side < 384), 2 and 3; odd and even sizes; the smallest frames.
SHAPES = [(3, 3), (5, 8), (31, 17), (64, 96), (75, 101), (270, 480), (384, 390), (641, 650)]


@requires_numba
@pytest.mark.parametrize("shape", SHAPES)
def test_fsim_backends_give_the_same_values(shape: tuple[int, int]) -> None:
    ref, dis = _frames(shape, seed=sum(shape))
    for chroma in (False, True):
        fast = fsim(ref, dis, chroma=chroma, backend="numba")
        slow = fsim(ref, dis, chroma=chroma, backend="numpy")
        assert np.isfinite(slow).all()
        np.testing.assert_array_equal(fast, slow)


@requires_numba
@pytest.mark.parametrize("shape", [(5, 5), (6, 9), (31, 17), (270, 480), (721, 1283)])
def test_gmsd_backends_give_the_same_values(shape: tuple[int, int]) -> None:
    ref, dis = _frames(shape, seed=sum(shape))
    slow = gmsd(ref, dis, backend="numpy")
    assert np.isfinite(slow).all() and (slow > 0).all()
    np.testing.assert_array_equal(gmsd(ref, dis, backend="numba"), slow)


@requires_numba
def test_orientation_kernel_equals_numpy() -> None:
    # One orientation of phase congruency: energy before the threshold, |EO_0| and sum |EO_s|.
    rng = np.random.default_rng(4)
    img = (rng.random((37, 52)) * 255).astype(np.float32)
    bank = perceptual._log_gabor_bank(*img.shape)
    kernels = _numba_perceptual.load()
    eps = np.float32(perceptual._PC_EPSILON)
    for o in range(perceptual._PC_NORIENT):
        eo = scipy.fft.ifft2(scipy.fft.fft2(img) * bank.filters[o], axes=(-2, -1))
        an_slow = np.full(img.shape, 3.0, np.float32)
        energy_slow, an0_slow = perceptual._orientation_numpy(eo, eps, an_slow)
        an_fast = np.full(img.size, 3.0, np.float32)
        energy_fast = np.empty(img.size, np.float32)
        an0_fast = np.empty(img.size, np.float32)
        kernels.orientation(eo.reshape(4, -1), eps, energy_fast, an_fast, an0_fast)
        np.testing.assert_array_equal(energy_fast, energy_slow.ravel())
        np.testing.assert_array_equal(an0_fast, an0_slow.ravel())
        np.testing.assert_array_equal(an_fast, an_slow.ravel())
        assert (energy_fast != 0).any() and (an0_fast > 0).all()


def _median_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    spread = rng.lognormal(0.0, 3.0, 10_001).astype(np.float32)  # ~10 decades, odd size
    return [
        spread,
        spread[:-1],  # even size
        np.full(64, 2.5, np.float32),  # all equal: one histogram bin holds everything
        np.zeros(9, np.float32),
        np.array([0.0, 0.0, 0.0, 7.0, 7.0, 7.0], np.float32),  # middle pair straddles bins
        np.array([1e-30, 3.0, 1e18, 2.0], np.float32),
        rng.random(1000).astype(np.float32) * np.float32(1e-3) + np.float32(1.0),  # one bin
        np.arange(1, 12, dtype=np.float32)[::-1].copy(),
    ]


@pytest.mark.parametrize("case", range(len(_median_cases())))
def test_median_of_squares_is_numpys_median(case: int) -> None:
    values = _median_cases()[case]
    want = float(np.median(np.square(values)))
    assert perceptual._median_of_squares(values.copy()) == want
    if _numba.available():
        assert float(_numba_perceptual.load().median_of_squares(values.copy())) == want


def _reference_block_sums(frame: np.ndarray, factor: int) -> np.ndarray:
    """MATLAB ``conv2(channel, ones(F), 'same')`` sampled at ``1:F:end``, in float64."""
    kernel = np.ones((factor, factor))
    r0 = c0 = factor // 2  # 'same' keeps the full convolution from index floor(F / 2)
    planes = []
    for ch in range(frame.shape[2]):
        full = scipy.signal.convolve2d(frame[..., ch].astype(np.float64), kernel, mode="full")
        same = full[r0 : r0 + frame.shape[0], c0 : c0 + frame.shape[1]]
        planes.append(same[::factor, ::factor])
    return np.stack(planes, axis=-1)


BLOCK_CASES = [((5, 7), 2), ((3, 3), 2), ((6, 6), 5), ((721, 1283), 3), ((40, 70), 17)]


def _block_frame(shape: tuple[int, int], factor: int) -> np.ndarray:
    frame = np.random.default_rng(factor).integers(0, 256, (*shape, 3), dtype=np.uint8)
    if factor == 17:
        frame[:] = 255  # sums up to 255 * 17^2 > 65535: the numpy path must widen to uint32
    frame.setflags(write=False)  # frames often come read-only (Pillow, Zarr)
    return frame


@pytest.mark.parametrize(("shape", "factor"), BLOCK_CASES)
def test_block_sums_are_matlab_conv2_same(shape: tuple[int, int], factor: int) -> None:
    frame = _block_frame(shape, factor)
    want = _reference_block_sums(frame, factor)
    np.testing.assert_array_equal(perceptual._block_sums(frame, factor), want)


@requires_numba
@pytest.mark.parametrize(("shape", "factor"), BLOCK_CASES)
def test_block_planes_kernel_equals_numpy(shape: tuple[int, int], factor: int) -> None:
    frame = _block_frame(shape, factor)
    weights = perceptual._YIQ
    kernels = _numba_perceptual.load()
    slow = perceptual._weighted_planes(frame, weights, factor, None)
    fast = perceptual._weighted_planes(frame, weights, factor, kernels)
    want = _reference_block_sums(frame, factor) @ weights.T / factor**2
    for ch in range(3):
        np.testing.assert_array_equal(fast[ch], slow[ch])
        np.testing.assert_allclose(slow[ch], want[..., ch], rtol=1e-7, atol=1e-5)


@requires_numba
@pytest.mark.parametrize("shape", [(1, 2), (3, 3), (2, 9), (57, 43)])
def test_gradient_kernel_equals_numpy(shape: tuple[int, int]) -> None:
    img = (np.random.default_rng(6).random(shape) * 255).astype(np.float32)
    kernels = _numba_perceptual.load()
    for smooth in ((3 / 16, 10 / 16, 3 / 16), (1 / 3, 1 / 3, 1 / 3)):
        slow = perceptual._gradient_magnitude(img, smooth, None)
        assert (slow > 0).any()
        np.testing.assert_array_equal(perceptual._gradient_magnitude(img, smooth, kernels), slow)


@pytest.mark.parametrize("kernel", [fsim, gmsd])
def test_backend_is_checked(kernel) -> None:
    good = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="backend must be 'auto'"):
        kernel(good, good, backend="fast")
    with pytest.raises(ValueError, match="backend must be 'auto'"):
        kernel(good[:0], good[:0], backend=None)


@pytest.mark.parametrize("kernel", [fsim, gmsd])
def test_missing_numba(monkeypatch: pytest.MonkeyPatch, kernel) -> None:
    ref, dis = _frames((24, 32), seed=1, t=1)
    want = kernel(ref, dis, backend="numpy")
    monkeypatch.setattr(_numba_perceptual, "load", lambda: None)
    with pytest.raises(ImportError, match=r"backend='numba' needs numba.*pip install"):
        kernel(ref, dis, backend="numba")
    np.testing.assert_array_equal(kernel(ref, dis, backend="auto"), want)  # falls back


def test_metric_pipeline_passes_the_backend_setting() -> None:
    # The backend is a runtime option read from giflab.kernels.numba, not a spec parameter.
    with dask.config.set({"giflab.kernels.numba": "off"}):
        assert metrics._runtime_options(fsim) == {"backend": "numpy"}
        assert metrics._runtime_options(gmsd) == {"backend": "numpy"}
    with dask.config.set({"giflab.kernels.numba": "on"}):
        assert metrics._runtime_options(fsim) == {"backend": "numba"}


@requires_numba
def test_validate_pair_values_do_not_depend_on_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = write_lossy_variants(tmp_path, 9, 64, 48, seed=3)
    loads = []
    real_load = _numba_perceptual.load
    monkeypatch.setattr(_numba_perceptual, "load", lambda: loads.append(1) or real_load())
    results = {}
    for setting in ("off", "auto"):
        config = {"giflab.kernels.numba": setting, "giflab.cache-dir": str(tmp_path / setting)}
        with dask.config.set(config):
            results[setting] = validate_pair(made["original"], made["dropped"], metrics="fsim,gmsd")
        assert bool(loads) is (setting == "auto"), setting
    for name in ("fsim", "gmsd"):
        values = results["off"].per_frame[name]
        assert np.isfinite(values).all() and len(values) == 9
        np.testing.assert_array_equal(results["auto"].per_frame[name], values)


def test_kernel_constants_match_the_definition() -> None:
    # The numba orientation kernel unrolls a fixed number of scales.
    assert _numba_perceptual._NSCALE == perceptual._PC_NSCALE
