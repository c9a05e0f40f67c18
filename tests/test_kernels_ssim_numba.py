"""The optional numba kernels (SSIM, squared error) against the numpy kernels and
scikit-image, and the dispatch.

numba is an optional extra (``pip install 'giflab-dask[numba]'``): tests that need it skip
with that reason when it is not installed; the tests of the fallback run either way. Speed is
measured by ``benchmarks/bench_kernels.py``, never asserted here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from giflab_dask.kernels import _numba, structural
from giflab_dask.kernels._luma import luma
from giflab_dask.kernels.structural import ssim

requires_numba = pytest.mark.skipif(
    not _numba.available(),
    reason="numba is not installed (optional: pip install 'giflab-dask[numba]'); the numpy "
    "SSIM kernel is tested in test_kernels_structural.py",
)

SHAPES = [(7, 7), (7, 40), (40, 7), (8, 9), (13, 9), (31, 17), (64, 96), (97, 131), (270, 480)]


# --------------------------------------------------------------------------- frame factories


def _gradient(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [
        np.stack(
            [
                255 * xx / max(w - 1, 1),
                255 * yy / max(h - 1, 1),
                127.5 + 120 * np.sin(xx / 7.0 + yy / 11.0 + rng.uniform(0, 2 * np.pi)),
            ],
            axis=-1,
        )
        for _ in range(t)
    ]
    noisy = np.array(frames) + rng.normal(0, 4, (t, h, w, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _blocky(frames: np.ndarray, levels: int = 6, block: int = 4) -> np.ndarray:
    """Lossy-GIF-like: block-flattened and quantised to a few levels."""
    t, h, w, _ = frames.shape
    hp, wp = -(-h // block) * block, -(-w // block) * block
    padded = np.pad(frames.astype(np.float64), ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), "edge")
    means = padded.reshape(t, hp // block, block, wp // block, block, 3).mean(axis=(2, 4))
    up = np.repeat(np.repeat(means, block, axis=1), block, axis=2)[:, :h, :w]
    step = 255 / (levels - 1)
    return np.clip(np.rint(np.rint(up / step) * step), 0, 255).astype(np.uint8)


def _pairs(shape: tuple[int, int], seed: int, t: int = 2):
    rng = np.random.default_rng(seed)
    h, w = shape
    grad = _gradient(rng, t, h, w)
    noise = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    return [
        ("gradient-vs-blocky", grad, _blocky(grad)),
        (
            "gradient-vs-noisy",
            grad,
            np.clip(grad + rng.normal(0, 20, grad.shape), 0, 255).astype(np.uint8),
        ),
        ("noise-vs-noise", noise, rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)),
        ("gradient-vs-inverted", grad, 255 - grad),
        ("extremes", np.zeros((t, h, w, 3), np.uint8), np.full((t, h, w, 3), 255, np.uint8)),
        ("flat-vs-noise", np.full((t, h, w, 3), 128, np.uint8), noise),
    ]


# ------------------------------------------------------------------------------- equal values


@requires_numba
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_numba_equals_numpy_kernel(shape: tuple[int, int]) -> None:
    """Same integer window sums and the same float32 ratio per window: equal to ~1e-16."""
    for name, a, b in _pairs(shape, seed=sum(shape)):
        fast = ssim(a, b, backend="numba")
        ref = ssim(a, b, backend="numpy")
        assert fast.dtype == np.float64 and fast.shape == (a.shape[0],)
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12, err_msg=name)


@requires_numba
@pytest.mark.parametrize("shape", [(7, 7), (13, 9), (64, 96), (270, 480)])
def test_numba_matches_skimage_on_luma(shape: tuple[int, int]) -> None:
    for name, a, b in _pairs(shape, seed=7, t=1):
        ref = structural_similarity(luma(a[0]), luma(b[0]), data_range=255)
        tol = 1e-7 if shape[0] * shape[1] >= 1000 else 1e-6  # float32 ratio per window
        np.testing.assert_allclose(ssim(a, b, backend="numba"), [ref], atol=tol, err_msg=name)


@requires_numba
def test_numba_identities() -> None:
    rng = np.random.default_rng(3)
    for a in (
        _gradient(rng, 2, 30, 41),
        rng.integers(0, 256, (2, 9, 8, 3), dtype=np.uint8),
        np.full((1, 10, 10, 3), 77, np.uint8),
        np.zeros((1, 7, 7, 3), np.uint8),
    ):
        # Identical frames: every window's ratio is exactly 1/4 in float32, so SSIM is 1.0.
        np.testing.assert_array_equal(ssim(a, a, backend="numba"), 1.0)
        np.testing.assert_array_equal(ssim(a, a, backend="numpy"), 1.0)
    a = _gradient(rng, 1, 32, 32)
    assert ssim(a, 255 - a, backend="numba")[0] < 0  # anti-correlated: kept negative


@requires_numba
def test_numba_block_equals_frames_alone_and_layout_is_irrelevant() -> None:
    rng = np.random.default_rng(5)
    a = _gradient(rng, 5, 33, 47)
    b = _blocky(a)
    b[2] = a[2]
    block = ssim(a, b, backend="numba")
    alone = np.concatenate([ssim(a[i : i + 1], b[i : i + 1], backend="numba") for i in range(5)])
    np.testing.assert_array_equal(block, alone)
    # Non-contiguous views (a dask block may be one) give the values of their copies.
    big_a, big_b = _gradient(rng, 4, 40, 60), _gradient(rng, 4, 40, 60)
    view_a, view_b = big_a[::2, 3:, ::2], big_b[::2, 3:, ::2]
    np.testing.assert_array_equal(
        ssim(view_a, view_b, backend="numba"),
        ssim(view_a.copy(), view_b.copy(), backend="numba"),
    )
    empty = ssim(a[:0], b[:0], backend="numba")
    assert empty.shape == (0,) and empty.dtype == np.float64
    small = np.zeros((3, 6, 50, 3), np.uint8)
    assert np.isnan(ssim(small, small, backend="numba")).all()


def test_constants_are_the_numpy_kernels() -> None:
    """The numba kernel repeats the numpy kernel's float32 constants (no import cycle)."""
    fast = (_numba._C1_HALF, _numba._C2_HALF, _numba._C1_FULL, _numba._C2_FULL)
    c1, c2 = structural._c1, structural._c2
    assert fast == tuple(np.float32(c) for c in (c1 / 2, c2 / 2, c1, c2))
    assert _numba._WIN == structural._WIN
    assert (_numba._LUMA_R, _numba._LUMA_G, _numba._LUMA_B) == (9798, 19235, 3735)


# ------------------------------------------------------------------------------ squared error


@requires_numba
@pytest.mark.parametrize("shape", [(1, 1), (7, 40), (97, 131), (270, 480)])
def test_numba_sse_equals_numpy_exactly_and_skimage(shape: tuple[int, int]) -> None:
    from skimage.metrics import mean_squared_error

    from giflab_dask.kernels import fidelity

    for _, a, b in _pairs(shape, seed=5):
        fast = _numba.sse(a, b)
        assert fast is not None and fast.dtype == np.float64
        np.testing.assert_array_equal(fast, fidelity._sse(a, b, backend="numpy"))
        n = a[0].size
        for i in range(a.shape[0]):
            assert fast[i] / n == pytest.approx(mean_squared_error(a[i], b[i]), rel=1e-12)
    # a non-contiguous view (every other frame) gives the same integers
    a, b = _pairs(shape, seed=6, t=4)[1][1:]
    np.testing.assert_array_equal(_numba.sse(a[::2], b[::2]), fidelity._sse(a[::2], b[::2]))
    empty = np.zeros((0, *shape, 3), np.uint8)
    assert _numba.sse(empty, empty).shape == (0,)


def test_fidelity_without_numba_gives_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from giflab_dask.kernels import fidelity

    _, a, b = _pairs((20, 30), seed=7)[1]
    expected = [fidelity.mse(a, b), fidelity.psnr(a, b)]
    monkeypatch.setattr(_numba, "_kernel", None)
    monkeypatch.setattr(_numba, "_sse_kernel", None)
    monkeypatch.setattr(_numba, "_import_error", "ImportError: No module named 'numba'")
    assert _numba.sse(a, b) is None
    np.testing.assert_array_equal(fidelity.mse(a, b), expected[0])
    np.testing.assert_array_equal(fidelity.psnr(a, b), expected[1])
    with pytest.raises(ImportError, match=r"backend='numba' needs numba.*giflab-dask\[numba\]"):
        fidelity.psnr(a, b, backend="numba")
    with pytest.raises(ValueError, match=r"backend must be 'auto'"):
        fidelity.mse(a, b, backend="cuda")


# ----------------------------------------------------------------------------------- threads


@requires_numba
def test_numba_kernel_releases_the_gil_and_is_thread_safe() -> None:
    kernel = _numba.load()
    assert kernel is not None
    assert kernel.targetoptions.get("nogil") is True  # dask threads run it in parallel
    rng = np.random.default_rng(11)
    blocks = [(_gradient(rng, 3, 45, 70), _gradient(rng, 3, 45, 70)) for _ in range(8)]
    expected = [ssim(a, b, backend="numpy") for a, b in blocks]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda ab: ssim(*ab, backend="numba"), blocks))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- dispatch


@requires_numba
def test_auto_uses_numba_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = _numba.ssim_uniform

    def spy(a, b):
        calls.append(a.shape)
        return original(a, b)

    monkeypatch.setattr(_numba, "ssim_uniform", spy)
    a = _gradient(np.random.default_rng(2), 2, 20, 30)
    ssim(a, a)
    ssim(a, a, backend="auto")
    assert len(calls) == 2
    ssim(a, a, backend="numpy")
    ssim(a, a, gaussian=True, backend="numba")  # the Gaussian window: _numba_ms_ssim
    assert len(calls) == 2


def test_without_numba_auto_falls_back_and_numba_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_numba, "_kernel", None)
    monkeypatch.setattr(_numba, "_import_error", "ImportError: No module named 'numba'")
    _, a, b = _pairs((20, 30), seed=4)[0]
    np.testing.assert_array_equal(ssim(a, b), ssim(a, b, backend="numpy"))
    with pytest.raises(ImportError, match=r"backend='numba' needs numba.*giflab-dask\[numba\]"):
        ssim(a, b, backend="numba")


def test_bad_backend_raises_a_helpful_error() -> None:
    a = np.zeros((1, 12, 12, 3), np.uint8)
    for bad in ("cuda", "on", None, True):
        with pytest.raises(ValueError, match=r"backend must be 'auto'.*'numba' or 'numpy'"):
            ssim(a, a, backend=bad)


def test_kernels_import_without_numba_and_do_not_import_it_eagerly() -> None:
    """With numba unimportable the kernels import, and auto SSIM runs on numpy."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from giflab_dask.kernels import structural, _numba
        assert "numba" not in sys.modules, "numba imported eagerly"
        sys.modules["numba"] = None  # what an absent numba looks like to import
        a = np.random.default_rng(0).integers(0, 256, (2, 16, 20, 3), dtype=np.uint8)
        b = a[::-1].copy()
        assert np.array_equal(structural.ssim(a, b), structural.ssim(a, b, backend="numpy"))
        assert _numba.load() is None and "numba" in _numba.import_error()
        try:
            structural.ssim(a, b, backend="numba")
        except ImportError as exc:
            assert "pip install" in str(exc)
        else:
            raise AssertionError("backend='numba' without numba did not raise")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_numba_kernels_take_read_only_frames() -> None:
    """Frames from read-only buffers (np.asarray of a Pillow image, np.frombuffer) work."""
    from giflab_dask.kernels.fidelity import mse
    from giflab_dask.kernels.structural import ssim

    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (2, 24, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 24, 30, 3), dtype=np.uint8)
    ra, rb = a.copy(), b.copy()
    ra.setflags(write=False)
    rb.setflags(write=False)
    np.testing.assert_array_equal(ssim(ra, rb, backend="numba"), ssim(a, b, backend="numpy"))
    np.testing.assert_array_equal(mse(ra, rb), mse(a, b))
