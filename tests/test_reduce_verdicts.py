from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giflab_dask.errors import GiflabError
from giflab_dask.reduce import (
    COMPOSITE_WEIGHTS,
    STATS,
    composite_quality,
    psnr_from_mse,
    summarize,
    summary_array,
)
from giflab_dask.verdicts import evaluate, load_profile


def reference_summary(values: np.ndarray) -> dict[str, float]:
    """Plain numpy, eager: what every chunking must reproduce."""
    finite = values[np.isfinite(values)]
    return {
        "mean": np.mean(finite),
        "std": np.std(finite),
        "min": np.min(finite),
        "max": np.max(finite),
        "p5": np.percentile(finite, 5),
        "p50": np.percentile(finite, 50),
        "p95": np.percentile(finite, 95),
        "first": values[0],
        "middle": values[len(values) // 2],
        "last": values[-1],
        "n_frames": len(values),
        "n_missing": len(values) - len(finite),
    }


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=1, max_size=60
    ),
    chunk=st.integers(min_value=1, max_value=60),
    nan_at=st.lists(st.integers(min_value=0, max_value=59), max_size=5),
)
def test_summary_matches_numpy_for_any_chunking(values, chunk, nan_at) -> None:
    x = np.array(values)
    for i in nan_at:
        if i < len(x) - 1:
            x[i] = np.nan
    if not np.isfinite(x).any():
        return
    got = summary_array(da.from_array(x, chunks=chunk), "m-summary").compute()
    whole = summary_array(da.from_array(x, chunks=len(x)), "m-summary").compute()
    np.testing.assert_array_equal(got, whole)  # bit-for-bit whatever the chunking
    expected = reference_summary(x)
    for name, value in zip(STATS, got, strict=True):
        np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_all_missing_gives_nan_statistics_and_counts() -> None:
    got = summary_array(da.from_array(np.full(4, np.nan), chunks=2), "m").compute()
    named = summarize("m", got)
    assert math.isnan(named["m_mean"]) and named["m_n_missing"] == 4


def test_summary_layer_is_named_and_lazy() -> None:
    calls = []

    def spy(block: np.ndarray) -> np.ndarray:
        calls.append(1)
        return block

    x = da.from_array(np.arange(10.0), chunks=3).map_blocks(spy, dtype=float)
    s = summary_array(x, "ssim-summary-abc")
    assert calls == [] or len(calls) <= 1  # dask may probe meta once, never computes blocks
    assert any(name.startswith("ssim-summary") for name in s.dask.layers)


def test_psnr_from_aggregated_mse() -> None:
    assert psnr_from_mse(0.0) == 100.0
    assert psnr_from_mse(255.0**2) == 0.0
    np.testing.assert_allclose(psnr_from_mse(65.025), 10 * np.log10(255**2 / 65.025))
    assert math.isnan(psnr_from_mse(float("nan")))


def test_composite_weights_sum_to_one() -> None:
    # GifLab's 11-metric set sums to 1; SSIMULACRA2's 0.02 and LPIPS's 0.01 come on top when
    # those metrics are computed.
    extra = {"ssimulacra2_mean": 0.02, "lpips_quality_mean": 0.01}
    base = {k: w for k, w in COMPOSITE_WEIGHTS.items() if k not in extra}
    assert math.isclose(sum(base.values()), 1.0)
    assert {k: COMPOSITE_WEIGHTS[k] for k in extra} == extra


def test_a_registered_lpips_is_weighed_as_giflab_does() -> None:
    # GifLab's "one_minus" mapping of lpips_quality_mean (an LPIPS distance)
    score, reason = composite_quality({"ssim_mean": 1.0, "lpips_quality_mean": 0.25})
    assert reason is None and math.isclose(score, (0.18 + 0.01 * 0.75) / 0.19)


def test_composite_maps_ssimulacra2_as_giflab_does() -> None:
    # GifLab's Ssimulacra2Validator.normalize_score: 10 -> 0, 90 -> 1, linear, clamped.
    for raw, expected in ((100.0, 1.0), (90.0, 1.0), (50.0, 0.5), (10.0, 0.0), (-30.0, 0.0)):
        score, reason = composite_quality({"ssim_mean": 1.0, "ssimulacra2_mean": raw})
        assert reason is None
        assert math.isclose(score, (0.18 + 0.02 * expected) / 0.20), raw
    # a computed but unmeasurable SSIMULACRA2 keeps its weight as missing
    score, _ = composite_quality({"ssim_mean": 0.5, "ssimulacra2_mean": float("nan")})
    assert math.isclose(score, 0.5)


def test_composite_perfect_and_normalisation() -> None:
    perfect = {
        "ssim_mean": 1.0,
        "ms_ssim_mean": 1.0,
        "psnr_mean": 100.0,
        "mse_mean": 0.0,
        "fsim_mean": 1.0,
        "edge_similarity_mean": 1.0,
        "gmsd_mean": 0.0,
        "chist_mean": 1.0,
        "sharpness_similarity_mean": 1.0,
        "texture_similarity_mean": 1.0,
        "temporal_consistency_delta": 0.0,
    }
    score, reason = composite_quality(perfect)
    assert math.isclose(score, 1.0) and reason is None
    half = dict(perfect, psnr_mean=25.0)  # 25 dB normalises to 0.5
    score, _ = composite_quality(half)
    assert math.isclose(score, 1 - 0.15 * 0.5)


def test_composite_redistributes_missing_weight_and_refuses_majority_missing() -> None:
    only = {"ssim_mean": 0.9, "psnr_mean": 40.0}
    score, reason = composite_quality(only)
    assert reason is None
    assert math.isclose(score, (0.9 * 0.18 + 0.8 * 0.15) / 0.33)
    nan_heavy = {"ssim_mean": 0.9, "ms_ssim_mean": float("nan")}
    score, reason = composite_quality(nan_heavy)
    assert math.isnan(score) and "missing" in reason
    score, reason = composite_quality({})
    assert math.isnan(score) and "none of the metrics" in reason


def test_default_profile_pass_warn_fail_with_reasons() -> None:
    good = {"composite_quality": 0.95, "ssim_mean": 0.97, "ssim_min": 0.9,
            "timing_drift": 0.0, "frame_count_change": 0.0}  # fmt: skip
    assert evaluate(good).status == "pass"
    warn = dict(good, composite_quality=0.75)
    verdict = evaluate(warn)
    assert verdict.status == "warn"
    assert verdict.reasons == ["composite_quality 0.75 < 0.8"]
    fail = dict(good, composite_quality=0.6, ssim_min=0.4)
    verdict = evaluate(fail)
    assert verdict.status == "fail"
    assert "composite_quality 0.6 < 0.7" in verdict.reasons
    assert "ssim_min 0.4 < 0.5" in verdict.reasons
    # GifLab's checker thresholds are the default's composite thresholds
    assert evaluate(dict(good, composite_quality=0.7)).status == "warn"
    assert evaluate(dict(good, composite_quality=0.6999)).status == "fail"


def test_unmeasured_values_warn_and_uncomputed_are_skipped() -> None:
    verdict = evaluate({"composite_quality": float("nan"), "ssim_mean": 0.99})
    assert verdict.status == "warn"
    skipped = [c.name for c in verdict.checks if c.status == "skipped"]
    assert "deltae_p95" in skipped


def test_profiles_from_config_and_mappings() -> None:
    with dask.config.set({"giflab.verdicts.profiles.tiny": {"ssim_mean": {"fail-below": 0.99}}}):
        assert evaluate({"ssim_mean": 0.98}, "tiny").status == "fail"
        with dask.config.set({"giflab.verdicts.profile": "tiny"}):
            assert evaluate({"ssim_mean": 0.995}).profile == "tiny"
    assert evaluate({"psnr_mean": 20.0}, {"psnr_mean": {"warn-below": 30}}).status == "warn"
    with pytest.raises(GiflabError, match="unknown verdict profile 'nope'"):
        load_profile("nope")
    with pytest.raises(GiflabError, match="unknown threshold"):
        load_profile({"ssim_mean": {"fail-under": 0.5}})
    assert {"default", "strict", "lenient"} <= set(dask.config.get("giflab.verdicts.profiles"))


def test_ssimulacra2_thresholds_are_optional_and_off_in_default() -> None:
    profiles = dask.config.get("giflab.verdicts.profiles")
    assert "ssimulacra2_mean" not in profiles["default"]
    assert profiles["strict"]["ssimulacra2_mean"] == {"fail-below": 50, "warn-below": 70}
    good = {"composite_quality": 0.95, "ssim_mean": 0.97, "ssim_min": 0.9,
            "deltae_p95": 1.0, "timing_drift": 0.0, "timing_drift_ms": 0.0,
            "frame_count_change": 0.0}  # fmt: skip
    not_computed = evaluate(good, "strict")
    assert not_computed.status == "pass"
    assert {c.name: c.status for c in not_computed.checks}["ssimulacra2_mean"] == "skipped"
    assert evaluate(dict(good, ssimulacra2_mean=75.0), "strict").status == "pass"
    assert evaluate(dict(good, ssimulacra2_mean=60.0), "strict").reasons == [
        "ssimulacra2_mean 60 < 70"
    ]
    assert evaluate(dict(good, ssimulacra2_mean=40.0), "strict").status == "fail"
    assert evaluate(dict(good, ssimulacra2_mean=40.0)).status == "pass"  # default: no check
