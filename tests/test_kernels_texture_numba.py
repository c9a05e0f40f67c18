"""The numba paths of the texture, edge, histogram, sharpness and temporal kernels against their
numpy paths and against scikit-image itself, and their dispatch.

Equality here is exact (``assert_array_equal``): the numba kernels port skimage's LBP and Canny
operation for operation and count the same integers, so codes, edge maps, histograms and sums
are bit-identical. Frames cover odd and tiny sizes (1x1 up to 270x480), photos, noise,
posterised plateaus (many exact ties), flat and extreme frames and GIF-like animations. The
numpy paths keep their references in ``test_kernels_colour_texture.py``. Speed is measured by
``benchmarks/bench_kernels.py``, never asserted here.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from skimage import data, transform
from skimage.feature import canny, local_binary_pattern

from giflab_dask import metrics
from giflab_dask.kernels import _numba, _numba_texture, temporal, texture
from giflab_dask.kernels._luma import luma
from giflab_dask.testing import make_animation_frames

requires_numba = pytest.mark.skipif(
    not _numba.available(),
    reason="numba is not installed (optional: pip install 'giflab-dask[numba]'); the numpy "
    "paths are tested in test_kernels_colour_texture.py",
)

SHAPES = [(1, 1), (1, 7), (2, 2), (3, 3), (4, 5), (7, 3), (13, 9), (31, 17), (64, 96), (256, 452)]
IDS = [f"{h}x{w}" for h, w in SHAPES]
KERNELS = {
    "chist": texture.chist,
    "edge_similarity": texture.edge_similarity,
    "texture_similarity": texture.texture_similarity,
    "sharpness_similarity": texture.sharpness_similarity,
    "temporal_consistency": temporal.temporal_consistency,
}


# --------------------------------------------------------------------------- frame factories


@functools.lru_cache(maxsize=1)
def _photos() -> np.ndarray:
    """Three of scikit-image's bundled photos at 270x480."""
    images = [data.astronaut(), data.coffee(), data.chelsea()]
    frames = [transform.resize(im, (270, 480), anti_aliasing=True) for im in images]
    return np.clip(np.rint(np.array(frames) * 255), 0, 255).astype(np.uint8)


def _photo(h: int, w: int, t: int) -> np.ndarray:
    """Crops of the photos (a different place in each frame)."""
    photos = _photos()
    return np.stack([photos[i % 3, 7 * i : 7 * i + h, 11 * i : 11 * i + w] for i in range(t)])


def _animation(h: int, w: int, t: int, seed: int) -> np.ndarray:
    frames, palette = make_animation_frames(t, w, h, seed=seed)
    return np.stack([palette[f.indices] for f in frames])


def _posterise(frames: np.ndarray, step: int) -> np.ndarray:
    return (frames // step * step + step // 2).astype(np.uint8)


def _jitter(frames: np.ndarray, rng: np.random.Generator, amount: int) -> np.ndarray:
    noise = rng.integers(-amount, amount + 1, frames.shape)
    return np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)


def _pairs(shape: tuple[int, int], seed: int, t: int = 3) -> list[tuple[str, Any, Any]]:
    rng = np.random.default_rng(seed)
    h, w = shape
    photo = _photo(h, w, t)
    anim = _animation(h, w, t, seed)
    noise = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    return [
        ("photo-vs-lossy", photo, _jitter(_posterise(photo, 12), rng, 3)),
        ("photo-vs-plateaus", photo, _posterise(photo, 64)),
        ("animation-vs-jitter", anim, _jitter(anim, rng, 6)),
        ("noise-vs-noise", noise, rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)),
        ("low-contrast-noise", (noise // 64 + 100).astype(np.uint8), noise),
        ("flat-vs-extremes", np.full_like(noise, 128), (noise > 127).astype(np.uint8) * 255),
        ("zeros-vs-255", np.zeros_like(noise), np.full_like(noise, 255)),
    ]


# ------------------------------------------------------------------- kernels against skimage


@requires_numba
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_lbp_histograms_are_skimages_codes(shape: tuple[int, int]) -> None:
    radii = (1, 2, 3) if shape[0] * shape[1] < 5000 else (1,)
    for name, a, b in _pairs(shape, seed=sum(shape)):
        gray = luma(np.concatenate([a, b]))
        for radius in radii:
            p = 8 * radius
            got = _numba_texture.lbp_histograms(gray, radius)
            assert got.shape == (len(gray), p + 2)
            for frame, counts in zip(gray, got, strict=True):
                codes = local_binary_pattern(frame, p, radius, "uniform").astype(np.intp)
                want = np.bincount(codes.ravel(), minlength=p + 2)
                np.testing.assert_array_equal(counts, want, err_msg=f"{name} R={radius}")


@requires_numba
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_canny_edge_maps_are_skimages(shape: tuple[int, int]) -> None:
    thresholds = [(50, 150), (0, 0), (10, 20), (50.5, 149.9), (100, 100), (0.0, 30)]
    found = 0
    for name, a, b in _pairs(shape, seed=sum(shape) + 1):
        gray = luma(np.concatenate([a, b]))
        for low, high in thresholds:
            got = _numba_texture.canny(gray, low, high)
            assert got.dtype == bool and got.shape == gray.shape
            for frame, edges in zip(gray, got, strict=True):
                want = canny(frame, sigma=0, low_threshold=low, high_threshold=high, mode="nearest")
                np.testing.assert_array_equal(edges, want, err_msg=f"{name} {low}/{high}")
                found += int(want.sum())
    assert found > 0 or min(shape) < 3  # frames of 3x3 and more have edges: not vacuous


# ------------------------------------------------------------------ metrics: numba == numpy


@requires_numba
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("kernel", list(KERNELS), ids=list(KERNELS))
def test_numba_values_equal_numpy_values(kernel: str, shape: tuple[int, int]) -> None:
    func = KERNELS[kernel]
    for name, a, b in _pairs(shape, seed=sum(shape) + 2):
        fast = func(a, b, backend="numba")
        slow = func(a, b, backend="numpy")
        assert fast.dtype == np.float64 and fast.shape == slow.shape
        np.testing.assert_array_equal(fast, slow, err_msg=name)
        np.testing.assert_array_equal(func(a, b), fast, err_msg=name)  # auto is numba


@requires_numba
def test_parameters_and_views_reach_the_numba_kernels() -> None:
    (_, a, b), *_ = _pairs((40, 56), seed=9, t=4)
    for bins in (1, 7, 32, 256):
        np.testing.assert_array_equal(
            texture.chist(a, b, bins=bins, backend="numba"),
            texture.chist(a, b, bins=bins, backend="numpy"),
        )
    for radius in (1, 2):
        np.testing.assert_array_equal(
            texture.texture_similarity(a, b, radius=radius, backend="numba"),
            texture.texture_similarity(a, b, radius=radius, backend="numpy"),
        )
    for low, high in ((20, 40), (50, 150), (0, 255)):
        np.testing.assert_array_equal(
            texture.edge_similarity(a, b, low_threshold=low, high_threshold=high, backend="numba"),
            texture.edge_similarity(a, b, low_threshold=low, high_threshold=high, backend="numpy"),
        )
    # Non-contiguous views (a dask block may be one) give the values of their copies.
    va, vb = a[::2, 3:, ::2], b[::2, 3:, ::2]
    for func in KERNELS.values():
        np.testing.assert_array_equal(
            func(va, vb, backend="numba"), func(va.copy(), vb.copy(), backend="numpy")
        )
        empty = func(a[:0], b[:0], backend="numba")
        assert empty.shape[0] == 0


@requires_numba
def test_sharpness_variance_is_exact() -> None:
    """Both paths take the variance from exact integer sums: one rounding, where np.var's float
    sums may be 1 ulp off; the ratio stays within 1e-15 of the float64 reference."""
    from scipy import ndimage as ndi

    _, a, b = _pairs((256, 452), seed=3)[0]
    got = texture.sharpness_similarity(a, b, backend="numba")
    for i in range(len(a)):
        v = []
        for frame in (a[i], b[i]):
            lap = ndi.laplace(luma(frame).astype(np.int64), mode="mirror")
            n = lap.size
            v.append((n * int((lap * lap).sum()) - int(lap.sum()) ** 2) / (n * n))
            assert v[-1] == pytest.approx(np.var(lap.astype(np.float64)), rel=1e-15)
        assert got[i] == min(v) / max(v)


# ----------------------------------------------------------------------------------- threads


@requires_numba
def test_numba_kernels_release_the_gil_and_are_thread_safe() -> None:
    (_, a, b), *_ = _pairs((45, 70), seed=11, t=4)
    for func in KERNELS.values():
        func(a[:2], b[:2], backend="numba")
    assert all(k.targetoptions.get("nogil") for k in _numba_texture._compiled.values())
    blocks = [(a[i : i + 2], b[i : i + 2]) for i in range(3)] * 3
    for func in KERNELS.values():
        expected = [func(x, y, backend="numpy") for x, y in blocks]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda xy, f=func: f(*xy, backend="numba"), blocks))
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)


# ---------------------------------------------------------------------------------- dispatch


def test_without_numba_auto_falls_back_and_numba_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    (_, a, b), *_ = _pairs((20, 30), seed=4)
    expected = {name: func(a, b, backend="numpy") for name, func in KERNELS.items()}
    monkeypatch.setattr(_numba_texture, "_compiled", {})
    monkeypatch.setattr(_numba_texture, "_import_error", "ImportError: No module named 'numba'")
    for name, func in KERNELS.items():
        np.testing.assert_array_equal(func(a, b), expected[name], err_msg=name)
        with pytest.raises(ImportError, match=rf"{name}: backend='numba' needs numba.*\[numba\]"):
            func(a, b, backend="numba")


@pytest.mark.parametrize("kernel", list(KERNELS), ids=list(KERNELS))
def test_bad_backend_raises_a_helpful_error(kernel: str) -> None:
    a = np.zeros((2, 12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=r"backend must be 'auto'.*'numba' or 'numpy'"):
        KERNELS[kernel](a, a, backend="cuda")


@pytest.mark.parametrize("kernel", list(KERNELS), ids=list(KERNELS))
def test_metric_runs_pass_the_configured_backend(kernel: str) -> None:
    import dask

    assert metrics._runtime_options(KERNELS[kernel]) == {"backend": "auto"}
    with dask.config.set({"giflab.kernels.numba": "off"}):
        assert metrics._runtime_options(KERNELS[kernel]) == {"backend": "numpy"}


def test_kernels_import_without_numba_and_do_not_import_it_eagerly() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from giflab_dask.kernels import texture, temporal, _numba_texture
        assert "numba" not in sys.modules, "numba imported eagerly"
        sys.modules["numba"] = None  # what an absent numba looks like to import
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
        b = a[::-1].copy()
        for f in (texture.chist, texture.edge_similarity, texture.texture_similarity,
                  texture.sharpness_similarity, temporal.temporal_consistency):
            assert np.array_equal(f(a, b), f(a, b, backend="numpy"), equal_nan=True)
            try:
                f(a, b, backend="numba")
            except ImportError as exc:
                assert "pip install" in str(exc)
            else:
                raise AssertionError("backend='numba' without numba did not raise")
        assert "numba" in _numba_texture.import_error()
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
