"""The kernel contract, checked on every registered metric (so a new one is checked the moment
it is registered): output shape and dtype, NaN for frames too small, the same values whatever
the block size, and the metric's best value for a pair of equal frames."""

from __future__ import annotations

import re
import shutil
from typing import Any

import numpy as np
import pytest

from giflab_dask.metrics import (
    BoundMetric,
    MetricSpec,
    available_metrics,
    get_metric,
    measure_block,
)

#: What each output gives for two equal frames (the metric's best value). A metric registered
#: without its outputs here or in NOT_A_SCORE fails test_every_output_has_an_identity_value.
BEST = {
    "mse": 0.0,
    "rmse": 0.0,
    "psnr": get_metric("psnr").params["cap_db"],
    "psnr_normalized": 1.0,
    "ssim": 1.0,
    "ms_ssim": 1.0,
    "fsim": 1.0,
    "gmsd": 0.0,
    "chist": 1.0,
    "edge_similarity": 1.0,
    "texture_similarity": 1.0,
    "sharpness_similarity": 1.0,
    "ssimulacra2": 100.0,
    "butteraugli": 0.0,
    "deltae_mean": 0.0,
    "deltae_p95": 0.0,
    "deltae_max": 0.0,
    "deltae_pct_gt1": 0.0,
    "deltae_pct_gt2": 0.0,
    "deltae_pct_gt3": 0.0,
    "deltae_pct_gt5": 0.0,
    "banding_score_mean": 0.0,
    "banding_score_p95": 0.0,
}
#: Outputs that are not a quality score, and what equal frames give instead.
NOT_A_SCORE = {
    "color_patch_count": "a count of the original's patches: the same for any compressed frame",
    "banding_patch_count": "a count of the original's gradient regions",
    "gradient_region_count": "a count of the original's gradient regions",
    "temporal_consistency_original": "each stream's own change: equal for equal streams",
    "temporal_consistency_compressed": "each stream's own change: equal for equal streams",
}
FRAMES = 4
_NEEDS_SIZE = re.compile(r"at least (\d+)x(\d+) pixels")


def _package_metrics() -> list[str]:
    """Every registered metric whose kernel is the package's (other test modules register
    throwaway metrics, some broken on purpose, in the same registry)."""
    names = []
    for name in available_metrics():
        kernel = get_metric(name).kernel
        where = kernel if isinstance(kernel, str) else getattr(kernel, "__module__", "")
        if where.startswith("giflab_dask."):
            names.append(name)
    return names


def _metrics() -> list[Any]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                name == "butteraugli" and shutil.which("butteraugli") is None,
                reason="butteraugli is not on PATH (apt-get install butteraugli)",
            ),
        )
        for name in _package_metrics()
    ]


def _min_side(spec: MetricSpec) -> int:
    """The smallest frame side the metric has a value for, as its ``needs`` states (1: any)."""
    found = _NEEDS_SIZE.search(spec.needs)
    return max(int(found[1]), int(found[2])) if found else 1


def _frames(side: int) -> tuple[np.ndarray, np.ndarray]:
    """An original block (a smooth ramp on the left for banding's gradient regions, texture and
    noise on the right) and a distorted copy (posterised and noisy)."""
    rng = np.random.default_rng(17)
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    original = np.empty((FRAMES, side, side, 3), np.uint8)
    for i in range(FRAMES):
        ramp = 90 + 0.4 * x + 0.1 * y + i
        texture = 60 + 120 * ((x // 4 + y // 4 + i) % 2) + rng.integers(-8, 9, x.shape)
        luma = np.where(x < side // 2 + 16, ramp, texture)
        rgb = np.stack([luma, 0.8 * luma + 20, 0.6 * luma + 40], axis=-1)
        original[i] = np.clip(np.rint(rgb), 0, 255)
    noisy = (original // 16) * 16 + rng.integers(-6, 7, original.shape)
    return original, np.clip(noisy, 0, 255).astype(np.uint8)


def _bound(name: str) -> BoundMetric:
    return BoundMetric.of(get_metric(name))


def _measure(metric: BoundMetric, original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    """``(t, k)`` values of one block starting at the GIF's first frame (the batch's path)."""
    values = measure_block([metric], original, compressed, previous=False)[metric.spec.name]
    assert not isinstance(values, str), f"{metric.spec.name} raised: {values}"
    return values


def test_every_output_has_an_identity_value() -> None:
    outputs = {out for name in _package_metrics() for out in get_metric(name).outputs}
    missing = outputs - set(BEST) - set(NOT_A_SCORE)
    assert not missing, f"add the best value (equal frames) of {sorted(missing)} to BEST"


@pytest.mark.parametrize("name", _metrics())
def test_kernel_output_shape_and_dtype(name: str) -> None:
    metric = _bound(name)
    spec = metric.spec
    original, compressed = _frames(max(96, _min_side(spec) + 7))
    values = metric.kernel(original, compressed, **spec.params, **metric.runtime)
    t = FRAMES - 1 if spec.temporal else FRAMES  # a temporal block carries its previous frame
    expected = (t,) if len(spec.outputs) == 1 else (t, len(spec.outputs))
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
    assert values.shape == expected
    empty = metric.kernel(original[:0], compressed[:0], **spec.params, **metric.runtime)
    assert empty.shape == (0, *expected[1:]) and empty.dtype == np.float64


@pytest.mark.parametrize("name", _metrics())
def test_frames_too_small_give_nan(name: str) -> None:
    metric = _bound(name)
    side = _min_side(metric.spec)
    for small in sorted({1, 2, side - 1} - {0}):
        original, compressed = _frames(96)
        values = _measure(metric, original[:, :small, :small], compressed[:, :small, :small])
        assert values.shape == (FRAMES, len(metric.spec.outputs))
        if small < side:  # below the size its ``needs`` states: missing, never a default
            assert np.isnan(values).all(), f"{name} at {small}x{small}: {values}"
        else:
            assert not np.isinf(values).any()


@pytest.mark.parametrize("name", _metrics())
def test_block_equals_frame_by_frame(name: str) -> None:
    metric = _bound(name)
    original, compressed = _frames(max(96, _min_side(metric.spec) + 7))
    block = _measure(metric, original, compressed)
    one = [_measure(metric, original[:1], compressed[:1])]
    for i in range(1, FRAMES):  # each later frame with the one before it (temporal kernels)
        lead = measure_block(
            [metric], original[i - 1 : i + 1], compressed[i - 1 : i + 1], previous=True
        )
        one.append(lead[name])
    np.testing.assert_array_equal(block, np.concatenate(one))


@pytest.mark.parametrize("name", _metrics())
def test_equal_frames_give_the_best_value(name: str) -> None:
    metric = _bound(name)
    spec = metric.spec
    original, compressed = _frames(max(96, _min_side(spec) + 7))
    same = _measure(metric, original, original.copy())
    worse = _measure(metric, original, compressed)
    first = 1 if spec.temporal else 0  # the GIF's first frame has no temporal value
    for j, output in enumerate(spec.outputs):
        if output in NOT_A_SCORE:
            continue
        best = BEST[output]
        np.testing.assert_allclose(same[:, j], best, rtol=0, atol=1e-9, err_msg=output)
        measured = worse[:, j][~np.isnan(worse[:, j])]
        assert measured.size, f"{output}: the distorted frames give no value to compare"
        if spec.better_high(output):
            assert (measured < best).all(), output
        else:
            assert (measured > best).all(), output
    if spec.temporal:
        assert np.isnan(same[0]).all()
        streams = same[first:]
        np.testing.assert_array_equal(streams[:, 0], streams[:, 1])


@pytest.mark.parametrize("name", _metrics())
def test_bad_frames_raise_the_same_error(name: str) -> None:
    metric = _bound(name)
    good = np.zeros((2, 16, 16, 3), np.uint8)
    params = {**metric.spec.params, **metric.runtime}
    with pytest.raises(ValueError, match=rf"^{name}: original must be uint8 RGB.*np\.clip"):
        metric.kernel(good.astype(np.float32), good, **params)
    with pytest.raises(ValueError, match=rf"^{name}: compressed must be a block.*\(t, H, W, 3\)"):
        metric.kernel(good, good[0], **params)
    with pytest.raises(ValueError, match=rf"^{name}: original and compressed must have the same"):
        metric.kernel(good, good[:1], **params)
