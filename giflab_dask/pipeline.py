"""Building and computing the validation graph of a pair (batches arrive in a later stage).

``validate_pair`` decodes both GIFs into the frame store (once per content), aligns them, applies
every metric's kernel per chunk, reduces the per-frame vectors, and evaluates the verdict, in a
single ``dask.compute``. ``validate_pair_lazy`` returns the same graph uncomputed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.align import AlignedPair, AlignOptions, align, display_times
from giflab_dask.metrics import MetricSpec, per_frame, resolve_metrics
from giflab_dask.reduce import composite_quality, psnr_from_mse, summarize, summary_array
from giflab_dask.results import PairResult
from giflab_dask.verdicts import evaluate

if TYPE_CHECKING:
    import dask.array as da
    from dask.delayed import Delayed

    from giflab_dask.framestore import FrameStore, StoredGif

__all__ = ["LazyPairResult", "validate_pair", "validate_pair_lazy"]

GifLike = str | os.PathLike[str]


def pair_facts(pair: AlignedPair, original: StoredGif, compressed: StoredGif) -> dict[str, float]:
    """Pair-level values the verdict checks besides metric summaries."""
    o_total = display_times(original.durations_ms, pair.options).sum()
    c_total = display_times(compressed.durations_ms, pair.options).sum()
    return {
        "timing_drift": float(abs(c_total - o_total) / o_total) if o_total else float("nan"),
        "frame_count_change": float(max(0, original.n_frames - compressed.n_frames))
        / original.n_frames,
        "original_frames": float(original.n_frames),
        "compressed_frames": float(compressed.n_frames),
    }


def _finish(
    stats: Mapping[str, np.ndarray],
    facts: Mapping[str, float],
    profile: str | Mapping[str, Any] | None,
) -> tuple[dict[str, float], Any]:
    summaries: dict[str, float] = {}
    for output, values in stats.items():
        summaries.update(summarize(output, values))
    summaries.update(facts)
    if "mse_mean" in summaries:
        summaries["psnr_of_mean_mse"] = psnr_from_mse(summaries["mse_mean"])
    summaries["composite_quality"], _ = composite_quality(summaries)
    return summaries, evaluate(summaries, profile)


@dataclass
class LazyPairResult:
    """The uncomputed graph of one pair: per-frame vectors, summaries and the verdict."""

    original: StoredGif
    compressed: StoredGif
    original_path: str
    compressed_path: str
    pair: AlignedPair
    specs: list[MetricSpec]
    per_frame: dict[str, da.Array]
    summaries: dict[str, da.Array]
    verdict: Delayed
    facts: dict[str, float]
    profile: str | Mapping[str, Any] | None = None

    def dask_objects(self) -> tuple[Any, ...]:
        return (self.per_frame, self.summaries, self.verdict)

    def compute(self, **compute_kwargs: Any) -> PairResult:
        """Compute in one ``dask.compute``; a metric whose kernel fails is reported missing."""
        import dask

        # No graph optimization: fusion would rename the layers (the dashboard shows
        # "ssim-frame", not "getitem-ssim-frame-ssim-summary") and optimize the verdict's copy
        # of the arrays separately, computing every kernel twice.
        compute_kwargs.setdefault("optimize_graph", False)
        missing: dict[str, str] = {}
        try:
            vectors, stats, (summaries, verdict) = dask.compute(
                self.per_frame, self.summaries, self.verdict, **compute_kwargs
            )
        except Exception:
            # Isolate the failing metric(s): compute each alone, keep the reasons.
            vectors, stats = {}, {}
            for spec in self.specs:
                outs = spec.outputs
                try:
                    v, s = dask.compute(
                        {o: self.per_frame[o] for o in outs},
                        {o: self.summaries[o] for o in outs},
                        **compute_kwargs,
                    )
                except Exception as exc:
                    missing[spec.name] = f"{type(exc).__name__}: {exc}"
                    continue
                vectors.update(v)
                stats.update(s)
            summaries, verdict = _finish(stats, self.facts, self.profile)
        for spec in self.specs:
            for output in spec.outputs:
                if output in vectors and not np.isfinite(vectors[output]).any():
                    missing.setdefault(spec.name, "no frame could be measured (all values NaN)")
        return PairResult(
            original=self.original_path,
            compressed=self.compressed_path,
            original_key=self.original.key,
            compressed_key=self.compressed.key,
            summaries=summaries,
            per_frame={k: np.asarray(v) for k, v in vectors.items()},
            mapping=self.pair.mapping,
            alignment={
                "mode": self.pair.mode,
                "size": list(self.pair.size),
                "original_size": list(self.pair.original_size),
                "compressed_size": list(self.pair.compressed_size),
                "notes": self.pair.notes,
            },
            verdict=verdict,
            missing=missing,
        )


def validate_pair_lazy(
    original: GifLike | StoredGif,
    compressed: GifLike | StoredGif,
    *,
    metrics: Iterable[str | MetricSpec] | str | None = None,
    profile: str | Mapping[str, Any] | None = None,
    align_options: AlignOptions | None = None,
    store: FrameStore | None = None,
) -> LazyPairResult:
    """The graph of one pair, uncomputed (the GIFs are decoded into the store if needed)."""
    import dask
    from dask.base import tokenize

    from giflab_dask.framestore import FrameStore, StoredGif
    from giflab_dask.verdicts import load_profile

    load_profile(profile)  # eager: a bad profile fails before any work
    specs = resolve_metrics(metrics)
    store = store or FrameStore()

    def stored(gif: GifLike | StoredGif) -> tuple[StoredGif, str]:
        if isinstance(gif, StoredGif):
            return gif, str(gif.attrs.get("source_name", gif.key))
        return store.ensure(gif), str(Path(gif))

    o, o_path = stored(original)
    c, c_path = stored(compressed)
    pair = align(o, c, align_options)
    vectors: dict[str, da.Array] = {}
    summaries: dict[str, da.Array] = {}
    for spec in specs:
        for output, vector in per_frame(spec, pair).items():
            vectors[output] = vector
            summaries[output] = summary_array(
                vector, name=f"{spec.name}-summary-{tokenize(output, vector.name)}"
            )
    facts = pair_facts(pair, o, c)
    token = tokenize(o.key, c.key, pair.options, specs, profile)
    # Reference the summaries by key (to_delayed without optimization): wrapping the arrays
    # themselves would give the verdict a separately optimized copy of their graph.
    summary_refs = {k: v.to_delayed(optimize_graph=False).ravel()[0] for k, v in summaries.items()}
    verdict = dask.delayed(_finish, pure=True)(
        summary_refs, facts, profile, dask_key_name=f"verdict-{token}"
    )
    return LazyPairResult(
        o, c, o_path, c_path, pair, specs, vectors, summaries, verdict, facts, profile
    )


def validate_pair(
    original: GifLike | StoredGif,
    compressed: GifLike | StoredGif,
    *,
    metrics: Iterable[str | MetricSpec] | str | None = None,
    profile: str | Mapping[str, Any] | None = None,
    align_options: AlignOptions | None = None,
    store: FrameStore | None = None,
    **compute_kwargs: Any,
) -> PairResult:
    """Validate one pair: summaries, per-frame vectors, the frame mapping and the verdict."""
    return validate_pair_lazy(
        original,
        compressed,
        metrics=metrics,
        profile=profile,
        align_options=align_options,
        store=store,
    ).compute(**compute_kwargs)
