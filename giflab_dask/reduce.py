"""Reductions: per-frame vectors -> per-pair summaries, chunk/combine/aggregate style.

The chunk step keeps each block's finite values (NaN frames are counted as missing), combine
concatenates, and aggregate sorts and sums exactly (``math.fsum``), so a summary is the same to
the last bit whatever the chunking. Positional samples (first/middle/last frame, GifLab's
positional sampling) come from the frame index, not from a sample.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "COMPOSITE_WEIGHTS",
    "STATS",
    "composite_quality",
    "mean_intervals",
    "psnr_from_mse",
    "summarize",
    "summarize_sample",
    "summarize_values",
    "summary_array",
]

#: Summary statistics per metric output, in the order of :func:`summary_array`'s result.
STATS = ("mean", "std", "min", "max", "p5", "p50", "p95", "first", "middle", "last",
         "n_frames", "n_missing")  # fmt: skip


def summarize_values(values: np.ndarray) -> np.ndarray:
    """All statistics of one per-frame vector (NaN = missing frame)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = len(values)
    finite = np.sort(values[np.isfinite(values)])
    out = np.full(len(STATS), np.nan)
    out[STATS.index("n_frames")] = n
    out[STATS.index("n_missing")] = n - len(finite)
    if n:
        out[STATS.index("first")] = values[0]
        out[STATS.index("middle")] = values[n // 2]
        out[STATS.index("last")] = values[-1]
    if len(finite):
        mean = math.fsum(finite) / len(finite)
        out[STATS.index("mean")] = mean
        out[STATS.index("std")] = math.sqrt(math.fsum((finite - mean) ** 2) / len(finite))
        out[STATS.index("min")] = finite[0]
        out[STATS.index("max")] = finite[-1]
        for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
            out[STATS.index(name)] = np.percentile(finite, q)
    return out


def _chunk(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return x  # keep the values: percentiles and positions need them, and vectors are small


def _combine(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return x  # with concatenate=True dask hands over the blocks already joined in order


def _aggregate(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return summarize_values(x)


def summary_array(values: da.Array, name: str) -> da.Array:
    """Lazy ``(len(STATS),)`` float64 summary of a ``(T,)`` vector, in a layer ``name``."""
    import dask.array as da

    return da.reduction(
        values,
        chunk=_chunk,
        combine=_combine,
        aggregate=_aggregate,
        axis=0,
        keepdims=False,
        dtype=np.float64,
        concatenate=True,
        output_size=len(STATS),
        name=name,
        meta=np.empty((0,), dtype=np.float64),
    )


# -- sampled summaries (the design and estimators are in sampling.py) -------------------------


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Inverted-CDF quantile of a weighted sample (each value stands for ``weight`` frames)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    index = int(np.searchsorted(cum, q / 100 * cum[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])


def summarize_sample(
    values: np.ndarray, weights: np.ndarray, positions: np.ndarray, population: int
) -> np.ndarray:
    """:data:`STATS` estimated from a weighted sample of a ``(population,)`` vector.

    ``mean`` is the weighted estimate (its interval: :func:`giflab_dask.sampling.estimate_mean`);
    ``std`` and ``p5/p50/p95`` are weighted estimates of the population's (no interval);
    ``min``/``max`` are the sample's own (the population's can only be lower / higher);
    ``first``/``middle``/``last`` are exact when those positions were measured (the designs
    always measure them), else NaN; ``n_frames``/``n_missing`` count the measured frames.
    A sample of every frame gives exactly :func:`summary_array`'s statistics.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    positions = np.asarray(positions, dtype=np.int64).ravel()
    if len(positions) == population:  # every frame (positions are sorted and unique): exact
        return summarize_values(values)
    out = np.full(len(STATS), np.nan)
    finite = np.isfinite(values)
    out[STATS.index("n_frames")] = len(values)
    out[STATS.index("n_missing")] = len(values) - int(finite.sum())
    for name, position in (("first", 0), ("middle", population // 2), ("last", population - 1)):
        hit = np.flatnonzero(positions == position)
        if len(hit):
            out[STATS.index(name)] = values[hit[0]]
    if finite.any():
        y, w = values[finite], weights[finite]
        total = math.fsum(w)
        mean = math.fsum(w * y) / total
        out[STATS.index("mean")] = mean
        out[STATS.index("std")] = math.sqrt(math.fsum(w * (y - mean) ** 2) / total)
        out[STATS.index("min")] = y.min()
        out[STATS.index("max")] = y.max()
        for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
            out[STATS.index(name)] = _weighted_quantile(y, w, q)
    return out


def mean_intervals(
    summaries: Mapping[str, float],
    standard_errors: Mapping[str, tuple[float, int]],
    confidence: float,
) -> dict[str, float]:
    """``<output>_mean_ci_low`` / ``_mean_ci_high`` from each output's estimated mean (in
    ``summaries``) and its ``(standard error, degrees of freedom)``. Only means get intervals:
    nothing else a sample reports has one."""
    from giflab_dask.sampling import t_interval

    out: dict[str, float] = {}
    for output, (se, df) in standard_errors.items():
        mean = summaries.get(f"{output}_mean", math.nan)
        low, high = t_interval(mean, se, df, confidence)
        out[f"{output}_mean_ci_low"], out[f"{output}_mean_ci_high"] = low, high
    return out


def summarize(output: str, stats: np.ndarray) -> dict[str, float]:
    """Name a computed summary array: ``{f"{output}_{stat}": value}``."""
    return dict(zip(_summary_names(output), stats.tolist(), strict=True))


@functools.cache
def _summary_names(output: str) -> tuple[str, ...]:
    # one set of key strings shared by every pair's summaries: a batch holds them all
    return tuple(sys.intern(f"{output}_{stat}") for stat in STATS)


def psnr_from_mse(mse: float, data_range: float = 255.0, cap: float = 100.0) -> float:
    """PSNR in dB of an (aggregated) MSE; ``cap`` for zero MSE, as GifLab caps identical frames."""
    if not np.isfinite(mse):
        return float("nan")
    if mse <= 0:
        return cap
    return float(min(cap, 10.0 * math.log10(data_range**2 / mse)))


#: GifLab's composite weights (its MetricsConfig ENHANCED_*_WEIGHT values): the 11-metric
#: set, SSIMULACRA2's 0.02 and LPIPS's 0.01 (each counts only when its metric was computed;
#: LPIPS is never built in: a user registers ``lpips_quality`` with their own weights file).
COMPOSITE_WEIGHTS: Mapping[str, float] = {
    "ssim_mean": 0.18,
    "ms_ssim_mean": 0.22,
    "psnr_mean": 0.15,
    "mse_mean": 0.10,
    "fsim_mean": 0.08,
    "edge_similarity_mean": 0.07,
    "gmsd_mean": 0.05,
    "chist_mean": 0.04,
    "sharpness_similarity_mean": 0.03,
    "texture_similarity_mean": 0.03,
    "temporal_consistency_delta": 0.05,
    "ssimulacra2_mean": 0.02,
    "lpips_quality_mean": 0.01,
}


def _normalize(key: str, value: float) -> float:
    """GifLab's per-metric normalisation to [0, 1], higher is better."""
    if key == "psnr_mean":
        return min(1.0, max(0.0, value / 50.0))
    if key == "mse_mean":
        return 1.0 if value <= 0 else min(1.0, max(0.0, 1.0 / (1.0 + math.log10(max(value, 1.0)))))
    if key == "gmsd_mean":
        return 1.0 - min(value, 0.5) / 0.5
    if key == "temporal_consistency_delta":
        return 1.0 - min(1.0, max(0.0, value))
    if key == "ssimulacra2_mean":  # GifLab's Ssimulacra2Validator: 10 -> 0, 90 -> 1, linear
        return min(1.0, max(0.0, (value - 10.0) / 80.0))
    if key == "lpips_quality_mean":  # an LPIPS distance despite GifLab's name: 1 - d
        return min(1.0, max(0.0, 1.0 - value))
    return min(1.0, max(0.0, value))


def composite_quality(
    summaries: Mapping[str, float], weights: Mapping[str, float] | None = None
) -> tuple[float, str | None]:
    """GifLab's composite quality from the summaries it names, and why it is missing if it is.

    Metrics not computed do not contribute; metrics computed but unmeasurable (NaN) keep their
    weight as missing; the weight of the measured ones is renormalised. When half or more of the
    present weight is missing the composite is NaN (GifLab's majority-missing rule).
    """
    weights = COMPOSITE_WEIGHTS if weights is None else weights
    present = {k: w for k, w in weights.items() if k in summaries}
    if not present:
        return float("nan"), "none of the metrics the composite weighs was computed"
    measured = {k: w for k, w in present.items() if np.isfinite(summaries[k])}
    total, kept = sum(present.values()), sum(measured.values())
    if total <= 0 or (total - kept) / total >= 0.5:
        missing = sorted(set(present) - set(measured))
        return float("nan"), f"half or more of the composite's weight is missing ({missing})"
    score = math.fsum(_normalize(k, summaries[k]) * w for k, w in measured.items()) / kept
    return min(1.0, max(0.0, score)), None
