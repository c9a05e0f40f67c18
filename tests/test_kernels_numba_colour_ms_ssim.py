"""The numba kernels of MS-SSIM (and the Gaussian SSIM), ΔE2000 and banding against their numpy
paths and the eager references, and the dispatch.

The reference tests in test_kernels_structural.py and test_kernels_colour_texture.py run the
default backend (numba when installed); here both backends are compared with each other, on
frame sizes that include odd and tiny ones: they must be equal bit for bit. Speed is measured
by ``benchmarks/bench_colour_kernels.py``, never asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from giflab_dask.kernels import _numba, _numba_colour, _numba_ms_ssim, colour
from giflab_dask.kernels._luma import luma
from giflab_dask.kernels.structural import MS_SSIM_WEIGHTS, ms_ssim, ssim
from tests.test_kernels_colour_texture import _posterise, _ramp, _ref_deltae_row, _scene
from tests.test_kernels_ssim_numba import _gradient, _pairs
from tests.test_kernels_structural import _ref_ms_ssim

requires_numba = pytest.mark.skipif(
    not _numba.available(),
    reason="numba is not installed (optional: pip install 'giflab-dask[numba]'); the numpy "
    "kernels are tested against the references in the other kernel tests",
)

# ------------------------------------------------------------------------------------ MS-SSIM

MS_CASES = [
    ((161, 170), MS_SSIM_WEIGHTS),
    ((177, 203), MS_SSIM_WEIGHTS),  # odd at every scale
    ((270, 480), MS_SSIM_WEIGHTS),
    ((45, 67), MS_SSIM_WEIGHTS[:3]),
    ((23, 22), MS_SSIM_WEIGHTS[:2]),
    ((11, 11), (1.0,)),  # one window
    ((11, 40), (0.5,)),
]


@requires_numba
@pytest.mark.parametrize(("shape", "weights"), MS_CASES, ids=[f"{h}x{w}" for (h, w), _ in MS_CASES])
def test_ms_ssim_numba_equals_numpy_and_reference(shape, weights) -> None:
    for name, a, b in _pairs(shape, seed=sum(shape), t=2):
        fast = ms_ssim(a, b, weights=weights, backend="numba")
        slow = ms_ssim(a, b, weights=weights, backend="numpy")
        ref = [_ref_ms_ssim(luma(x), luma(y), weights) for x, y in zip(a, b, strict=True)]
        assert fast.dtype == np.float64 and fast.shape == (a.shape[0],)
        np.testing.assert_array_equal(fast, slow, err_msg=name)
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12, err_msg=name)


@requires_numba
@pytest.mark.parametrize("shape", [(11, 11), (12, 31), (64, 96), (97, 131)])
def test_gaussian_ssim_numba_equals_numpy_and_skimage(shape) -> None:
    for name, a, b in _pairs(shape, seed=3, t=2):
        fast = ssim(a, b, gaussian=True, backend="numba")
        slow = ssim(a, b, gaussian=True, backend="numpy")
        np.testing.assert_array_equal(fast, slow, err_msg=name)
        ref = [
            structural_similarity(
                luma(x), luma(y), data_range=255, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False,
            )
            for x, y in zip(a, b, strict=True)
        ]  # fmt: skip
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12, err_msg=name)


@requires_numba
def test_ms_ssim_numba_blocks_views_and_small_frames() -> None:
    rng = np.random.default_rng(8)
    a = _gradient(rng, 4, 47, 61)
    b = _gradient(rng, 4, 47, 61)
    b[1] = a[1]
    w = MS_SSIM_WEIGHTS[:3]
    block = ms_ssim(a, b, weights=w, backend="numba")
    alone = [ms_ssim(a[i : i + 1], b[i : i + 1], weights=w, backend="numba")[0] for i in range(4)]
    np.testing.assert_array_equal(block, alone)
    assert block[1] == 1.0
    view_a, view_b = a[::2, 1:, ::-1], b[::2, 1:, ::-1]  # non-contiguous, as a dask block may be
    np.testing.assert_array_equal(
        ms_ssim(view_a, view_b, weights=w, backend="numba"),
        ms_ssim(view_a.copy(), view_b.copy(), weights=w, backend="numba"),
    )
    assert np.isnan(ms_ssim(a, b, backend="numba")).all()  # 47x61: too small for 5 scales
    assert ms_ssim(a[:0], b[:0], backend="numba").shape == (0,)
    assert ms_ssim(a, 255 - a, weights=w, backend="numba").min() >= 0.0  # clamped terms


@requires_numba
def test_ms_ssim_kernel_releases_the_gil() -> None:
    kernel = _numba_ms_ssim.load()
    assert kernel is not None and kernel.targetoptions.get("nogil") is True


def test_ms_ssim_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_numba_ms_ssim, "_kernel", None)
    monkeypatch.setattr(_numba_ms_ssim, "_failed", True)
    _, a, b = _pairs((30, 41), seed=2)[1]
    w = MS_SSIM_WEIGHTS[:2]
    np.testing.assert_array_equal(
        ms_ssim(a, b, weights=w), ms_ssim(a, b, weights=w, backend="numpy")
    )
    with pytest.raises(ImportError, match=r"ms_ssim: backend='numba' needs numba"):
        ms_ssim(a, b, weights=w, backend="numba")
    with pytest.raises(ImportError, match=r"ssim: backend='numba' needs numba"):
        ssim(a, b, gaussian=True, backend="numba")
    with pytest.raises(ValueError, match=r"backend must be 'auto'"):
        ms_ssim(a, b, backend="gpu")


# ------------------------------------------------------------------------------------- ΔE2000


def _colour_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(12)
    scene = _scene(3, 37, 53)
    noise = rng.integers(0, 256, (2, 61, 67, 3), dtype=np.uint8)  # ~all pixels distinct
    few = rng.integers(0, 4, (2, 9, 13, 3), dtype=np.uint8) * 60
    return [
        ("scene-posterised", scene, _posterise(scene, 32)),
        ("noise-vs-noise", noise, rng.integers(0, 256, noise.shape, dtype=np.uint8)),
        ("noise-vs-itself", noise, noise.copy()),
        ("few-colours", few, few[:, ::-1].copy()),
        ("one-pixel", scene[:, :1, :1], _posterise(scene[:, :1, :1], 64)),
        ("one-row", scene[:, :1], scene[:, :1, ::-1].copy()),
        ("ramp-posterised", _ramp(2, 40, 70), _posterise(_ramp(2, 40, 70), 24)),
    ]


@requires_numba
@pytest.mark.parametrize("case", range(7))
def test_deltae_numba_equals_numpy_bit_for_bit(case: int) -> None:
    name, a, b = _colour_pairs()[case]
    fast = colour.deltae(a, b, backend="numba")
    np.testing.assert_array_equal(fast, colour.deltae(a, b, backend="numpy"), err_msg=name)
    want = np.array([_ref_deltae_row(o, c) for o, c in zip(a, b, strict=True)])
    np.testing.assert_allclose(fast, want, rtol=1e-9, atol=1e-9, err_msg=name)


@requires_numba
def test_colour_pairs_are_the_sorted_distinct_pairs() -> None:
    rng = np.random.default_rng(4)
    # 3000 colours: the hash table grows (it starts at 512) and the pairs take the sort path.
    a = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    b = _posterise(a, 16)
    pairs = _numba_colour.colour_pairs(a.shape[0] * a.shape[1])
    assert pairs is not None
    colours_o, colours_c, pair_o, pair_c, counts = pairs(a, b)

    def code(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.int64)
        return (x[..., 0] << 16) | (x[..., 1] << 8) | x[..., 2]

    keys, want_counts = np.unique(code(a) << 24 | code(b), return_counts=True)
    np.testing.assert_array_equal(colours_o, np.unique(code(a)))
    np.testing.assert_array_equal(colours_c, np.unique(code(b)))
    got = colours_o[pair_o].astype(np.int64) << 24 | colours_c[pair_c]
    np.testing.assert_array_equal(got, keys)
    np.testing.assert_array_equal(counts, want_counts)


def test_percentile_of_repeats_is_numpys_percentile() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        k = int(rng.integers(1, 40))
        values = rng.choice([rng.random(k) * 10, np.round(rng.random(k) * 4)])  # ties as well
        counts = rng.integers(1, 30, k)
        for q in (95, 50, 0, 100, 99.9):
            want = np.percentile(np.repeat(values, counts), q)
            assert colour._percentile_of_repeats(values, counts, q) == want


def test_deltae_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_numba_colour, "_kernels", {})
    monkeypatch.setattr(_numba_colour, "_failed", True)
    _, a, b = _colour_pairs()[0]
    np.testing.assert_array_equal(colour.deltae(a, b), colour.deltae(a, b, backend="numpy"))
    with pytest.raises(ImportError, match=r"deltae: backend='numba' needs numba"):
        colour.deltae(a, b, backend="numba")
    with pytest.raises(ImportError, match=r"banding: backend='numba' needs numba"):
        colour.banding(a, b, backend="numba")
    with pytest.raises(ValueError, match=r"backend must be 'auto'"):
        colour.deltae(a, b, backend="cuda")


# ------------------------------------------------------------------------------------ banding


def _banding_pairs() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(9)
    ramp = _ramp(3, 128, 192)
    odd = _ramp(2, 101, 157)
    noisy = np.clip(ramp.astype(int) + rng.integers(-2, 3, ramp.shape), 0, 255).astype(np.uint8)
    return [
        ("ramp-posterised", ramp, _posterise(ramp, 24), 64),
        ("ramp-identical", ramp, ramp.copy(), 64),
        ("odd-size-small-patches", odd, _posterise(odd, 12), 13),
        ("noisy-ramp-patch-8", noisy, _posterise(noisy, 16), 8),
        ("scene", _scene(2, 90, 140), _posterise(_scene(2, 90, 140), 32), 31),
        ("too-small", ramp[:, :64, :64], ramp[:, :64, :64], 64),
    ]


@requires_numba
@pytest.mark.parametrize("case", range(6))
def test_banding_numba_equals_numpy_bit_for_bit(case: int) -> None:
    name, a, b, patch = _banding_pairs()[case]
    fast = colour.banding(a, b, patch_size=patch, backend="numba")
    slow = colour.banding(a, b, patch_size=patch, backend="numpy")
    np.testing.assert_array_equal(fast, slow, err_msg=name)


@requires_numba
def test_banding_on_shared_read_only_luma() -> None:
    """Inside a block's shared conversions the luma planes are read-only arrays."""
    from giflab_dask.kernels import _frames

    name, a, b, patch = _banding_pairs()[0]
    want = colour.banding(a, b, patch_size=patch, backend="numpy")
    with _frames.shared_conversions():
        assert not _frames.luma(a[0]).flags.writeable
        got = colour.banding(a, b, patch_size=patch, backend="numba")
    np.testing.assert_array_equal(got, want, err_msg=name)


@requires_numba
def test_banding_found_regions_in_the_comparison() -> None:
    # The bit-for-bit comparisons above must cover frames with gradient regions.
    name, a, b, patch = _banding_pairs()[0]
    rows = colour.banding(a, b, patch_size=patch, backend="numba")
    assert (rows[:, 3] > 0).all() and (rows[:, 0] > 0).all(), name


@requires_numba
def test_patch_statistics_and_histograms_are_numpys_bit_for_bit() -> None:
    rng = np.random.default_rng(10)
    cases = [(8, (30, 41)), (13, (50, 50)), (16, (60, 70)), (32, (90, 100)), (64, (150, 230))]
    for p, (h, w) in [*cases, (65, (140, 200))]:  # power-of-two sizes: integer variance
        yy, xx = np.mgrid[0:h, 0:w]
        for gray in (
            rng.integers(0, 256, (h, w), dtype=np.uint8),
            rng.integers(0, 2, (h, w), dtype=np.uint8) * 255,  # the largest variances
            np.clip(0.7 * xx + 0.3 * yy + rng.normal(0, 2, (h, w)), 0, 255).astype(np.uint8),
        ):
            step = p // 2
            ys, xs = list(range(0, h - p, step)), list(range(0, w - p, step))
            windows = np.lib.stride_tricks.sliding_window_view(gray, (p, p))
            stack = windows[np.ix_(ys, xs)].reshape(-1, p, p).astype(np.float64)
            mag = colour._sobel_magnitude(stack)
            want = np.stack(
                [stack.var(axis=(1, 2)), mag.mean(axis=(1, 2)), mag.std(axis=(1, 2))], axis=1
            )
            np.testing.assert_array_equal(_numba_colour.patch_stats(gray, ys, xs, p), want)
            region = gray[3 : 3 + p + 5, 2 : 2 + p]
            hist, _ = np.histogram(colour._sobel_magnitude(region).ravel(), bins=32)
            np.testing.assert_array_equal(_numba_colour.gradient_histogram(region, 32), hist)
    flat = np.full((20, 20), 7, np.uint8)  # one magnitude: numpy widens the range by 0.5
    hist, _ = np.histogram(colour._sobel_magnitude(flat).ravel(), bins=32)
    np.testing.assert_array_equal(_numba_colour.gradient_histogram(flat, 32), hist)


@requires_numba
def test_numba_canny_is_the_numpy_port() -> None:
    from giflab_dask.kernels import texture

    rng = np.random.default_rng(13)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        gray = [
            rng.integers(0, 256, (h, w), dtype=np.uint8),
            ((xx * 3 + yy * 2) // 17 * 17 % 256).astype(np.uint8),  # posterised ramp
            (rng.integers(0, 2, (h, w)) * 255).astype(np.uint8),
        ][trial % 3]
        view = gray[:, ::-1] if trial % 4 == 0 else gray  # a non-contiguous patch view
        low, high = (30, 100) if trial % 2 else sorted(rng.uniform(0, 300, 2))
        np.testing.assert_array_equal(
            _numba_colour.canny_opencv(view, low, high), texture.canny_opencv(view, low, high)
        )


@requires_numba
def test_pairwise_sum_is_numpys_sum() -> None:
    import numba

    assert _numba_colour._load("stats") is not None
    total = numba.njit(lambda x: _numba_colour._pairwise_sum(x, 0, x.size))
    rng = np.random.default_rng(11)
    for n in [*range(1, 300), 1000, 4096, 4225, 10007, 70000]:
        x = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 6, n)
        assert total(x) == x.sum(), n


# ----------------------------------------------------------------------------------- pipeline


@requires_numba
def test_numba_setting_changes_speed_not_values_of_these_metrics(tmp_path) -> None:
    """Through ``validate_pair``: ``giflab.kernels.numba`` off and auto give the same values
    (``backend`` reaches these kernels as a runtime option, never a metric parameter)."""
    import dask

    from giflab_dask.pipeline import validate_pair
    from tests.conftest import write_lossy_variants

    (tmp_path / "gifs").mkdir()
    made = write_lossy_variants(tmp_path / "gifs", 4, 176, 168, seed=3)
    results = {}
    for setting in ("off", "auto"):
        with dask.config.set(
            {"giflab.kernels.numba": setting, "giflab.cache-dir": str(tmp_path / setting)}
        ):
            results[setting] = validate_pair(
                made["original"], made["dropped"], metrics="ms_ssim,deltae,banding"
            )
    off, auto = results["off"].per_frame, results["auto"].per_frame
    assert np.isfinite(auto["ms_ssim"]).all() and np.isfinite(auto["deltae_mean"]).all()
    for name in ("ms_ssim", *colour.DELTAE_OUTPUTS, *colour.BANDING_OUTPUTS):
        np.testing.assert_array_equal(off[name], auto[name], err_msg=name)


def test_without_numba_installed_auto_uses_numpy_and_numba_raises() -> None:
    """With numba unimportable (a fresh interpreter): the same values from the numpy paths,
    and ``backend="numba"`` names the missing package."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        sys.modules["numba"] = None  # what an absent numba looks like to import
        import numpy as np
        from giflab_dask.kernels import colour, structural
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (2, 24, 30, 3), dtype=np.uint8)
        b = (a // 32 * 32).astype(np.uint8)
        w = structural.MS_SSIM_WEIGHTS[:2]
        for f, kw in ((structural.ms_ssim, {"weights": w}), (colour.deltae, {}),
                      (colour.banding, {"patch_size": 8})):
            assert np.array_equal(f(a, b, **kw), f(a, b, backend="numpy", **kw), equal_nan=True)
            try:
                f(a, b, backend="numba", **kw)
            except ImportError as exc:
                assert "needs numba (ModuleNotFoundError" in str(exc), str(exc)
            else:
                raise AssertionError(f"{f.__name__}: backend='numba' without numba did not raise")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
