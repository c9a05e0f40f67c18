"""Opt-in frame sampling (DESIGN decision 31): designs, intervals, the sampled pipeline, CLI."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dask.callbacks import Callback
from dask.utils import key_split
from hypothesis import given, settings
from hypothesis import strategies as st

from giflab_dask.align import AlignmentError, align
from giflab_dask.cli import cli
from giflab_dask.decode import scan_gif
from giflab_dask.demo import write_demo_data
from giflab_dask.framestore import open_frame_store
from giflab_dask.inputs import PairInput, collect_pairs
from giflab_dask.keys import gif_key
from giflab_dask.metrics import register_metric
from giflab_dask.pipeline import plan_batch, validate_batch, validate_pair
from giflab_dask.reduce import STATS, summarize_sample, summarize_values
from giflab_dask.results import batch_table, load_per_frame
from giflab_dask.resultstore import open_result_store
from giflab_dask.sampling import (
    MIN_SAMPLE,
    SampleDesign,
    SampleSpec,
    SamplingError,
    adaptive_design,
    design_for,
    estimate_mean,
    fixed_positions,
    t_interval,
    uniform_design,
)
from giflab_dask.verdicts import evaluate

from .conftest import write_lossy_variants

H, W, T = 32, 40, 48
CHUNK = 4  # frames per time-chunk in the pipeline tests


# -- designs ----------------------------------------------------------------------------------


def _check_design(design: SampleDesign, population: int) -> None:
    p = design.positions
    assert p.dtype == np.int64 and p.ndim == 1
    assert np.all(np.diff(p) > 0), "sorted and unique"
    assert p[0] >= 0 and p[-1] < population
    assert math.isclose(design.weights.sum(), population), "weights stand for every frame"
    assert set(fixed_positions(population).tolist()) <= set(p.tolist())
    strata = design.strata
    counts = np.bincount(strata[strata >= 0], minlength=design.n_strata)
    assert np.all(counts == 1), "one random frame per stratum"
    assert design.stratum_sizes.sum() + len(design.certain) == population


@settings(max_examples=150, deadline=None)
@given(
    population=st.integers(1, 3000),
    n=st.integers(MIN_SAMPLE, 300),
    seed=st.integers(0, 2**63 - 1),
    strategy=st.sampled_from(["uniform", "keyframes"]),
)
def test_designs_are_sorted_unique_in_range_and_of_the_requested_size(
    population: int, n: int, seed: int, strategy: str
) -> None:
    scores = np.random.default_rng(seed).random(population)
    design = design_for(SampleSpec(n, strategy), population, seed, scores)
    _check_design(design, population)
    assert len(design.positions) == min(n, population)
    if strategy == "keyframes" and n < population:
        masked = scores.copy()
        masked[fixed_positions(population)] = -1
        top = np.argsort(-masked, kind="stable")[: (n - 3) // 3]
        assert set(top.tolist()) <= set(design.certain.tolist())
    again = design_for(SampleSpec(n, strategy), population, seed, scores)
    np.testing.assert_array_equal(again.positions, design.positions)  # reruns hit the cache


@settings(max_examples=100, deadline=None)
@given(
    population=st.integers(1, 3000),
    n=st.integers(MIN_SAMPLE, 200),
    seed=st.integers(0, 2**63 - 1),
    outputs=st.integers(1, 3),
)
def test_adaptive_designs_extend_their_pilot_up_to_the_requested_size(
    population: int, n: int, seed: int, outputs: int
) -> None:
    pilot = design_for(SampleSpec(n, "adaptive"), population, seed)
    assert len(pilot.positions) == min(SampleSpec(n, "adaptive").pilot().n, population)
    values = np.random.default_rng(seed).normal(size=(len(pilot.positions), outputs))
    design = adaptive_design(pilot, values, n, 0.0, seed + 1)
    _check_design(design, population)
    assert set(pilot.positions.tolist()) <= set(design.positions.tolist())
    assert len(design.positions) <= max(n, len(pilot.positions))
    if population >= 2 * n:  # room everywhere: tolerance 0 spends the whole budget
        assert len(design.positions) == n


def test_adaptive_spends_frames_where_the_values_vary() -> None:
    population, n = 1200, 60
    y = np.full(population, 0.95)
    y[800:1000] = 0.6 + np.random.default_rng(0).normal(0, 0.1, 200)  # one busy stretch
    pilot = uniform_design(population, SampleSpec(n).pilot().n, seed=1)
    design = adaptive_design(pilot, y[pilot.positions], n, 0.0, seed=2)
    added = np.setdiff1d(design.positions, pilot.positions)
    busy = ((added >= 700) & (added < 1100)).mean()
    assert busy > 0.6, added  # the stretch is a third of the frames, it gets most new ones
    # a loose tolerance is met by the pilot already: nothing is added
    assert len(adaptive_design(pilot, y[pilot.positions], n, 10.0, 2).positions) == len(
        pilot.positions
    )


def test_sample_spec_validation_and_keys() -> None:
    with pytest.raises(SamplingError, match="at least 8"):
        SampleSpec(3)
    with pytest.raises(SamplingError, match="strategy"):
        SampleSpec(10, "random")
    with pytest.raises(SamplingError, match="tolerance"):
        SampleSpec(10, "adaptive", tolerance=-1)
    from dask.base import tokenize

    assert tokenize(SampleSpec(30)) == tokenize(SampleSpec(30, tolerance=0.5))  # unused option
    assert tokenize(SampleSpec(30)) != tokenize(SampleSpec(31))
    assert tokenize(SampleSpec(30, "adaptive")) != tokenize(SampleSpec(30, "adaptive", 0.5))
    assert SampleSpec(30, "adaptive").pilot() == SampleSpec(15)
    with dask.config.set({"giflab.sampling.n": 20, "giflab.sampling.strategy": "keyframes"}):
        assert SampleSpec.from_config() == SampleSpec(20, "keyframes")
    assert SampleSpec.from_config() is None  # default: every frame


# -- estimates --------------------------------------------------------------------------------


def test_a_sample_of_every_frame_is_exact_with_a_zero_width_interval() -> None:
    y = np.random.default_rng(3).normal(size=50)
    y[[0, 7]] = np.nan
    design = design_for(SampleSpec(60), 50, seed=0)
    assert design.is_full
    estimate = estimate_mean(y, design)
    assert estimate.mean == summarize_values(y)[STATS.index("mean")]
    assert estimate.se == 0.0
    assert t_interval(estimate.mean, estimate.se, estimate.df, 0.95) == (estimate.mean,) * 2
    np.testing.assert_array_equal(
        summarize_sample(y, design.weights, design.positions, 50), summarize_values(y)
    )


def _series(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "iid":
        return rng.normal(0, 1, n)
    if kind == "ar1":
        e = rng.normal(0, 1, n)
        y = np.empty(n)
        y[0] = e[0]
        for i in range(1, n):
            y[i] = 0.95 * y[i - 1] + e[i]
        return y
    if kind == "walk":
        return np.cumsum(rng.normal(0, 1, n))
    if kind == "steps":  # scene changes
        return np.repeat(rng.normal(0, 1, n // 20 + 1), 20)[:n] + rng.normal(0, 0.1, n)
    if kind == "skewed":
        return rng.exponential(1, n)
    if kind == "busy-stretch":  # still frames, then a stretch where quality varies
        y = 0.95 + rng.normal(0, 0.002, n)
        a = int(rng.integers(0, n // 2))
        y[a : a + n // 4] = 0.7 + rng.normal(0, 0.08, len(y[a : a + n // 4]))
        return y
    y = rng.normal(0, 1, n)  # "missing": some frames not measurable
    y[rng.random(n) < 0.1] = np.nan
    y[0] = np.nan
    return y


KINDS = ("iid", "ar1", "walk", "steps", "skewed", "busy-stretch", "missing")


@pytest.mark.parametrize("strategy", ["uniform", "keyframes", "adaptive"])
def test_95_percent_intervals_cover_the_true_mean(strategy: str) -> None:
    rng = np.random.default_rng({"uniform": 1, "keyframes": 2, "adaptive": 3}[strategy])
    runs, covered = 120, Counter()
    for kind in KINDS:
        for _ in range(runs):
            population, n = int(rng.integers(60, 1500)), int(rng.integers(8, 60))
            y = _series(kind, population, rng)
            seed = int(rng.integers(2**62))
            spec = SampleSpec(n, strategy)
            scores = np.abs(np.diff(y, prepend=y[0]))  # a stand-in for the change score
            design = design_for(spec, population, seed, np.nan_to_num(scores))
            if strategy == "adaptive":
                design = adaptive_design(design, y[design.positions], n, 0.0, seed + 1)
            e = estimate_mean(y[design.positions], design)
            low, high = t_interval(e.mean, e.se, e.df, 0.95)
            covered[kind] += low <= np.nanmean(y) <= high
    rates = {kind: covered[kind] / runs for kind in KINDS}
    assert sum(covered.values()) / (runs * len(KINDS)) >= 0.92, rates
    assert min(rates.values()) >= 0.85, rates


# -- the pipeline -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gifs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An original; a 16-colour variant (same frames); one with every 3rd frame dropped."""
    return write_lossy_variants(tmp_path_factory.mktemp("sampling"), T, W, H, seed=5)


@pytest.fixture(autouse=True)
def small_chunks() -> None:
    with dask.config.set({"giflab.framestore.chunk-mib": CHUNK * H * W * 3 / 2**20}):
        yield


def _abs_diff(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    seen.append(len(original))
    return np.abs(original.astype(np.int16) - compressed).mean(axis=(1, 2, 3))


seen: list[int] = []
register_metric("abs_diff_spy", _abs_diff, higher_is_better=False, replace=True)


def _one_pair(original: Path, compressed: Path) -> list[PairInput]:
    return [PairInput(1, str(original), str(compressed))]


class _Tasks(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.prefixes: Counter[str] = Counter()

    def _pretask(self, key, dsk, state) -> None:  # type: ignore[no-untyped-def]
        self.prefixes[key_split(key)] += 1


@pytest.mark.parametrize("variant", ["quantized", "dropped"])
def test_sampled_run_measures_only_sampled_frames_with_the_full_values(
    gifs: dict[str, Path], variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giflab_dask.framestore import read as framestore

    original, compressed = gifs["original"], gifs[variant]
    metrics = "abs_diff_spy,ssim,temporal_consistency"
    seen.clear()
    read: set[tuple[str, int]] = set()
    reader = framestore.read_chunk_file

    def spy(files, t, out=None):  # type: ignore[no-untyped-def]
        read.add((files.base, t))
        return reader(files, t, out)

    monkeypatch.setattr(framestore, "read_chunk_file", spy)
    with _Tasks() as tasks:  # a fresh cache: frames come from decode tasks in the graph
        sampled = validate_pair(original, compressed, metrics=metrics, sample=SampleSpec(10))
    assert sum(seen) == 10, "the metric saw the sampled frames only"
    assert tasks.prefixes["pair-metrics"] > 0 and tasks.prefixes["gif-frames"] == 0  # fused
    positions = np.array(sampled.sample["positions"]["abs_diff_spy"])
    assert len(positions) == 10 and sampled.summaries["abs_diff_spy_n_frames"] == 10
    # only the chunks holding sampled frames (or their predecessors) were read: on the
    # original's side those chunks, on the compressed side the chunks those frames map to
    transitions = np.union1d(positions, positions[positions > 0] - 1)
    o_chunks = {int(c) for c in np.unique(transitions // CHUNK)}
    c_chunks = {int(c) for c in np.unique(sampled.mapping[transitions] // CHUNK)}
    by_entry: dict[str, set[int]] = {}
    for base, t in read:
        if base.endswith("/frames"):
            by_entry.setdefault(base, set()).add(t)
    o_entry = open_frame_store().entry_path(gif_key(original))
    assert by_entry.pop(f"{o_entry}/frames") == o_chunks
    assert list(by_entry.values()) == [c_chunks]
    assert len(o_chunks) < math.ceil(T / CHUNK)

    seen.clear()
    full = validate_pair(original, compressed, metrics=metrics)
    assert sum(seen) == T
    for name in ("abs_diff_spy", "ssim", "temporal_consistency_compressed"):
        at = np.array(sampled.sample["positions"][name.split("_compressed")[0]])
        np.testing.assert_array_equal(sampled.per_frame[name][at], full.per_frame[name][at])
        others = np.setdiff1d(np.arange(T), at)
        assert np.isnan(sampled.per_frame[name][others]).all(), "not measured: NaN"
    np.testing.assert_array_equal(sampled.mapping, full.mapping)
    for output in ("abs_diff_spy", "ssim"):
        s = sampled.summaries
        assert s[f"{output}_mean_ci_low"] < s[f"{output}_mean"] < s[f"{output}_mean_ci_high"]
        assert s[f"{output}_first"] == full.summaries[f"{output}_first"]  # always measured
        assert s[f"{output}_last"] == full.summaries[f"{output}_last"]
    assert sampled.summaries["sampled_frames"] == 10
    assert sampled.sample["population"] == T and sampled.sample["confidence"] == 0.95
    assert full.sample is None and "ssim_mean_ci_low" not in full.summaries


@pytest.mark.parametrize("n", [T, T + 5])
def test_a_sample_of_at_least_every_frame_is_the_full_result(gifs: dict[str, Path], n: int) -> None:
    original, compressed = gifs["original"], gifs["dropped"]
    metrics = "ssim,psnr,temporal_consistency"
    full = validate_pair(original, compressed, metrics=metrics)
    sampled = validate_pair(original, compressed, metrics=metrics, sample=n)
    for key, value in full.summaries.items():
        got = sampled.summaries[key]
        assert got == value or (math.isnan(got) and math.isnan(value)), key
    for output in ("ssim", "psnr", "temporal_consistency_original"):
        mean = full.summaries[f"{output}_mean"]
        assert sampled.summaries[f"{output}_mean_ci_low"] == mean
        assert sampled.summaries[f"{output}_mean_ci_high"] == mean
        np.testing.assert_array_equal(sampled.per_frame[output], full.per_frame[output])
    assert sampled.summaries["sampled_frames"] == T


def test_sampled_and_full_nodes_never_mix(gifs: dict[str, Path]) -> None:
    original, compressed = gifs["original"], gifs["quantized"]
    pairs = _one_pair(original, compressed)
    full = validate_batch(pairs, metrics="ssim,psnr")
    assert full.stats["node_misses"] == 2
    sampled = validate_batch(pairs, metrics="ssim,psnr", sample=SampleSpec(12))
    assert sampled.stats["node_hits"] == 0 and sampled.stats["node_misses"] == 2
    again = validate_batch(pairs, metrics="ssim,psnr", sample=SampleSpec(12))
    assert again.stats["node_hits"] == 2 and again.stats["metric_tasks"] == 0
    first, second = sampled.outcomes[0].result, again.outcomes[0].result
    assert first is not None and second is not None
    assert first.sample == second.sample  # same frames: the seed comes from the content keys
    assert first.summaries == second.summaries
    other = validate_batch(pairs, metrics="ssim,psnr", sample=SampleSpec(12, "keyframes"))
    assert other.stats["node_misses"] == 2
    back = validate_batch(pairs, metrics="ssim,psnr")
    assert back.stats["node_hits"] == 2
    assert back.outcomes[0].result.summaries == full.outcomes[0].result.summaries  # type: ignore[union-attr]


def test_keyframes_measure_the_frames_the_encoder_stored_most_of(gifs: dict[str, Path]) -> None:
    original, compressed = gifs["original"], gifs["quantized"]
    result = validate_pair(original, compressed, metrics="ssim", sample=SampleSpec(14, "keyframes"))
    layout = scan_gif(original)
    sizes = np.array([f.lzw_end - f.lzw_offset for f in layout.frames], dtype=float)
    sizes[fixed_positions(T)] = -1
    top = np.argsort(-sizes, kind="stable")[: (14 - 3) // 3]
    assert set(top.tolist()) <= set(result.sample["positions"]["ssim"])
    assert result.sample["strategy"] == "keyframes" and result.sample["frames"] == 14


@pytest.mark.parametrize("use_cache", [True, False])
def test_adaptive_runs_a_uniform_pilot_then_the_rest(
    gifs: dict[str, Path], use_cache: bool, isolated_cache: Path
) -> None:
    original, compressed = gifs["original"], gifs["dropped"]
    spec = SampleSpec(20, "adaptive", tolerance=0.0)
    seen.clear()
    plan = plan_batch(
        _one_pair(original, compressed),
        metrics="abs_diff_spy",
        sample=spec,
        use_cache=use_cache,
    )
    assert plan.then is not None and plan.sample == spec.pilot()  # the pilot pass comes first
    outcome = plan.compute().outcomes[0]
    result = outcome.result
    assert result is not None
    assert sum(seen) == 20, "pilot frames are measured once"
    positions = result.sample["positions"]["abs_diff_spy"]
    assert len(positions) == 20
    assert result.summaries["abs_diff_spy_n_frames"] == 20
    with dask.config.set({"giflab.cache-dir": str(isolated_cache / "full")}):
        full = validate_pair(original, compressed, metrics="abs_diff_spy")
    pilot_values = result.per_frame["abs_diff_spy"] if use_cache else None
    if pilot_values is not None:  # (with the cache off, vectors are not kept at all)
        np.testing.assert_array_equal(
            pilot_values[positions], full.per_frame["abs_diff_spy"][positions]
        )
    if use_cache:
        pilot = validate_batch(
            _one_pair(original, compressed), metrics="abs_diff_spy", sample=spec.pilot()
        )
        assert pilot.stats["node_hits"] == 1  # the pilot is a uniform run of its own size
        pilot_positions = pilot.outcomes[0].result.sample["positions"]["abs_diff_spy"]  # type: ignore[union-attr]
        assert set(pilot_positions) <= set(positions)
    else:
        assert open_result_store().entries() == [], "no-cache stores nothing, pilot included"


def test_batch_rows_are_marked_and_verdicts_use_the_point_estimates(tmp_path: Path) -> None:
    write_demo_data(tmp_path / "demo", n_originals=1, n_frames=20, size=(48, 32))
    pairs = collect_pairs(tmp_path / "demo")
    batch = validate_batch(pairs, metrics="ssim,psnr,mse", sample=SampleSpec(9))
    table = batch_table(batch.outcomes)
    for column in ("sample_strategy", "sample_n", "sampled_frames", "ssim_mean_ci_low",
                   "ssim_mean_ci_high", "psnr_mean_ci_low", "mse_mean_ci_high"):  # fmt: skip
        assert column in table.columns, column
    assert set(table["sample_strategy"]) == {"uniform"} and set(table["sample_n"]) == {9}
    assert (table["ssim_mean_ci_low"] <= table["ssim_mean"]).all()
    assert (table["ssim_mean"] <= table["ssim_mean_ci_high"]).all()
    for outcome in batch.outcomes:
        result = outcome.result
        assert result is not None
        assert result.verdict == evaluate(result.summaries, None)
    row = table.iloc[0]
    frame = load_per_frame(row, metrics="ssim,psnr,mse")
    assert len(frame) == 20
    measured = frame["ssim"].notna()
    assert measured.sum() == 9
    assert frame["compressed_frame"].notna().all()
    full = validate_batch(pairs[:1], metrics="ssim,psnr,mse").outcomes[0].result
    assert full is not None
    np.testing.assert_array_equal(frame["ssim"][measured], full.per_frame["ssim"][measured])
    assert "sample_strategy" not in batch_table(validate_batch(pairs[:1], metrics="ssim").outcomes)


def test_restrict_is_lazy_and_checks_its_positions(gifs: dict[str, Path]) -> None:
    store = open_frame_store()
    pair = align(store.ensure(gifs["original"]), store.ensure(gifs["dropped"]))
    sub = pair.restrict([1, 5, 40])
    assert sub.n_frames == 3 and sub.positions.tolist() == [1, 5, 40]  # type: ignore[union-attr]
    np.testing.assert_array_equal(sub.mapping, pair.mapping[[1, 5, 40]])
    np.testing.assert_array_equal(sub.original.compute(), pair.original.compute()[[1, 5, 40]])
    np.testing.assert_array_equal(sub.compressed.compute(), pair.compressed.compute()[[1, 5, 40]])
    again = sub.restrict([0, 2])
    assert again.positions.tolist() == [1, 40]  # type: ignore[union-attr]
    for bad in ([5, 1], [1, 1], [], [T]):
        with pytest.raises(AlignmentError):
            pair.restrict(bad)
    with _Tasks() as tasks:  # unoptimized, as the pipeline computes (names stay readable)
        dask.compute(pair.restrict([2]).original, optimize_graph=False)
    assert tasks.prefixes["gif-frames"] == 1, tasks.prefixes  # one chunk read, not all


# -- the command line -------------------------------------------------------------------------


def test_cli_sample_flags(gifs: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    original, compressed = str(gifs["original"]), str(gifs["quantized"])
    out = runner.invoke(
        cli, ["validate", original, compressed, "--metrics", "ssim,psnr", "--sample", "10",
              "--strategy", "keyframes", "--json"],
    )  # fmt: skip
    assert out.exit_code in (0, 1), out.output
    data = json.loads(out.output)
    assert data["sample"]["strategy"] == "keyframes" and data["sample"]["frames"] == 10
    assert data["summaries"]["ssim_mean_ci_low"] <= data["summaries"]["ssim_mean"]
    out = runner.invoke(cli, ["validate", original, compressed, "--metrics", "ssim",
                              "--sample", "10"])  # fmt: skip
    assert "mean 95% CI" in out.output and "sampled: 10 of 48" in out.output, out.output
    out = runner.invoke(cli, ["validate", original, compressed, "--strategy", "adaptive"])
    assert out.exit_code == 2 and "--strategy needs --sample" in out.output
    out = runner.invoke(cli, ["validate", original, compressed, "--sample", "3"])
    assert out.exit_code == 2

    write_demo_data(tmp_path / "demo", n_originals=1, n_frames=12, size=(48, 32))
    table = tmp_path / "out.csv"
    out = runner.invoke(
        cli, ["batch", str(tmp_path / "demo"), "--metrics", "ssim", "--sample", "8",
              "--strategy", "adaptive", "--out", str(table), "--no-progress"],
    )  # fmt: skip
    assert out.exit_code in (0, 1), out.output
    assert "sampled:" in out.output
    frame = pd.read_csv(table)
    assert set(frame["sample_strategy"]) == {"adaptive"}
    assert {"ssim_mean_ci_low", "ssim_mean_ci_high", "sampled_frames"} <= set(frame.columns)
