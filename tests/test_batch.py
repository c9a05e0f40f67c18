"""Batch validation: one graph, shared decodes, the result store as cache, error rows, outputs."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.demo import write_demo_data
from giflab_dask.errors import CacheIntegrityWarning
from giflab_dask.framestore import open_frame_store
from giflab_dask.inputs import PairInput, collect_pairs, read_manifest
from giflab_dask.metrics import get_metric
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.results import BASE_COLUMNS, batch_table, load_per_frame, load_results, write_table
from giflab_dask.resultstore import ResultStore, open_result_store

METRICS = "ssim,psnr,mse,chist"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    write_demo_data(tmp_path / "demo", n_originals=2, n_frames=8, size=(64, 48))
    return tmp_path / "demo"


def test_one_original_many_variants_decodes_the_original_once(demo: Path) -> None:
    pairs = collect_pairs(demo)
    assert len(pairs) == 6 and {p.extra["variant"] for p in pairs} == {
        "colors-32", "colors-8", "frames-50"
    }  # fmt: skip
    plan = plan_batch(pairs, metrics=METRICS)
    assert plan.n_decode_tasks == 2 + 6  # each distinct GIF once, not once per pair
    graph: dict = {}
    for obj in plan.dask_objects():
        graph.update(dict(obj.__dask_graph__()))
    decodes = [k for k in graph if isinstance(k, str) and k.startswith("gif-decode-")]
    assert len(decodes) == 8
    result = plan.compute()
    assert result.counts()["error"] == 0
    assert all(o.result is not None for o in result.outcomes)


def test_second_run_builds_no_tasks_and_gives_identical_results(demo: Path) -> None:
    pairs = collect_pairs(demo)
    first = validate_batch(pairs, metrics=METRICS)
    again = plan_batch(pairs, metrics=METRICS)
    assert again.n_decode_tasks == 0 and again.n_metric_tasks == 0
    second = again.compute()
    assert second.stats["node_hits"] == 6 * 4 and second.stats["node_misses"] == 0
    t1, t2 = batch_table(first.outcomes), batch_table(second.outcomes)
    pd.testing.assert_frame_equal(t1, t2)


def test_time_saved_is_the_recorded_cost_of_what_the_caches_spared(demo: Path) -> None:
    pairs = collect_pairs(demo)
    first = validate_batch(pairs, metrics=METRICS)
    assert first.stats["saved_seconds"] == 0.0  # empty caches: nothing was spared
    store = open_result_store()
    recorded = [
        store.get(key)["compute_seconds"] for o in first.outcomes for key in o.metric_keys.values()
    ]
    assert len(recorded) == 6 * 4 and all(s > 0 for s in recorded)
    # Every node a lookup: the run saves exactly the seconds its nodes cost when computed.
    hot = validate_batch(pairs, metrics=METRICS)
    assert hot.stats["saved_seconds"] == pytest.approx(sum(recorded))
    # One metric recomputed from stored frames: the other nodes and every decode are spared.
    chist = get_metric("chist").with_params(bins=16)
    warm = validate_batch(pairs, metrics=["ssim", "psnr", "mse", chist])
    assert warm.stats["node_misses"] == 6
    others = [
        store.get(o.metric_keys[name])["compute_seconds"]
        for o in first.outcomes
        for name in ("ssim", "psnr", "mse")
    ]
    keys = {k for o in first.outcomes for k in (o.original_key, o.compressed_key)}
    frames = open_frame_store()
    decoded = [frames.open(k).attrs["decode_seconds"] for k in keys]
    assert len(decoded) == 8 and all(s > 0 for s in decoded)
    assert warm.stats["saved_seconds"] == pytest.approx(sum(others) + sum(decoded))


def test_changing_one_metric_parameter_recomputes_only_that_metric(demo: Path) -> None:
    pairs = collect_pairs(demo)
    first = validate_batch(pairs, metrics=METRICS)
    gaussian_ssim = get_metric("ssim").with_params(gaussian=True)
    specs = [gaussian_ssim, "psnr", "mse", "chist"]
    plan = plan_batch(pairs, metrics=specs)
    assert plan.n_decode_tasks == 0  # frames come from the frame store
    assert plan.n_metric_tasks == len(pairs)  # one ssim node per pair, nothing else
    assert {metric for _, metric in plan.writes} == {"ssim"}
    second = plan.compute()
    for a, b in zip(first.outcomes, second.outcomes, strict=True):
        for key in ("psnr_mean", "mse_mean", "chist_mean"):
            assert a.result.summaries[key] == b.result.summaries[key]
        assert a.result.summaries["ssim_mean"] != b.result.summaries["ssim_mean"]


def _graph_prefixes(plan) -> set[str]:
    from dask.utils import key_split

    return {key_split(k) for d in plan.dask_objects() for k in d.__dask_graph__()}


def test_psnr_with_a_new_cap_is_derived_from_stored_mse_without_reading_frames(
    demo: Path,
) -> None:
    pairs = collect_pairs(demo)
    validate_batch(pairs, metrics="ssim,mse,psnr")
    specs = ["ssim", "mse", get_metric("psnr").with_params(cap_db=30.0), "rmse", "psnr_normalized"]
    plan = plan_batch(pairs, metrics=specs)
    assert plan.n_decode_tasks == 0
    assert {metric for _, metric in plan.writes} == {"psnr", "rmse", "psnr_normalized"}
    assert _graph_prefixes(plan) == {"result-write"}  # no pair-metrics task: no frame read
    derived = plan.compute()
    # the same nodes computed from the frames (use_cache=False derives nothing)
    direct = validate_batch(pairs, metrics=specs, use_cache=False)
    for a, b in zip(derived.outcomes, direct.outcomes, strict=True):
        assert a.result is not None and b.result is not None
        for name in ("psnr", "rmse", "psnr_normalized"):
            np.testing.assert_array_equal(a.result.per_frame[name], b.result.per_frame[name])
            assert a.result.summaries[f"{name}_mean"] == b.result.summaries[f"{name}_mean"]
        assert max(a.result.per_frame["psnr"]) <= 30.0
    # MSE need not be requested: its stored node (registered parameters) is found
    plan = plan_batch(pairs, metrics=[get_metric("psnr").with_params(cap_db=31.0)])
    assert _graph_prefixes(plan) == {"result-write"}
    # without a stored MSE node, PSNR is computed from the frames
    open_result_store().clear()
    plan = plan_batch(pairs, metrics=[get_metric("psnr").with_params(cap_db=31.0)])
    assert "pair-metrics" in _graph_prefixes(plan)


def test_adding_pairs_computes_only_the_new_ones(demo: Path) -> None:
    pairs = collect_pairs(demo)
    validate_batch(pairs[:3], metrics=METRICS)
    plan = plan_batch(pairs, metrics=METRICS)
    assert {i for i, _ in plan.writes} == {3, 4, 5}


def _bad_inputs(demo: Path, tmp_path: Path) -> list[PairInput]:
    original = demo / "originals" / "demo-01.gif"
    good = demo / "variants" / "colors-32" / "demo-01.gif"
    empty = tmp_path / "empty.gif"
    empty.write_bytes(b"")
    text = tmp_path / "text.gif"
    text.write_text("definitely not a gif")
    truncated = tmp_path / "truncated.gif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    manifest = tmp_path / "manifest.csv"
    rows = [
        ("original", "compressed", "label"),
        (original, good, "good"),
        (original, tmp_path / "missing.gif", "missing"),
        (original, empty, "empty"),
        (original, text, "text"),
        (original, truncated, "truncated"),
        (original, good, "duplicate"),
        (original, demo / "variants" / "colors-8" / "demo-01.gif", "good too"),
    ]
    manifest.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return read_manifest(manifest)


def test_bad_inputs_become_error_rows_and_good_pairs_finish(demo: Path, tmp_path: Path) -> None:
    pairs = _bad_inputs(demo, tmp_path)
    result = validate_batch(pairs, metrics=METRICS)
    table = batch_table(result.outcomes).set_index("label")
    assert table.loc["good", "verdict"] in ("pass", "warn", "fail")
    assert table.loc["good too", "verdict"] in ("pass", "warn", "fail")
    assert "missing.gif: file not found" in table.loc["missing", "error"]
    assert "empty.gif: file is empty" in table.loc["empty", "error"]
    assert "text.gif: not a GIF file" in table.loc["text", "error"]
    assert "truncated.gif" in table.loc["truncated", "error"]
    assert table.loc["duplicate", "error"] == "duplicate of row 1"
    # the good pairs were saved: a rerun reuses them
    again = plan_batch(pairs, metrics=METRICS)
    assert again.n_metric_tasks == 0


def test_an_unexpected_alignment_failure_is_that_pairs_error_row(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giflab_dask import pipeline
    from giflab_dask.keys import gif_key

    pairs = collect_pairs(demo)
    real = pipeline.frame_alignment
    broken = gif_key(pairs[1].compressed)

    def frame_alignment(original, compressed, options):  # type: ignore[no-untyped-def]
        if compressed.key == broken:
            raise ZeroDivisionError("a bug in alignment")
        return real(original, compressed, options)

    monkeypatch.setattr(pipeline, "frame_alignment", frame_alignment)
    table = batch_table(validate_batch(pairs, metrics="psnr").outcomes)
    errors = table["error"].fillna("").tolist()
    assert "ZeroDivisionError: a bug in alignment" in errors[1]
    assert pairs[1].compressed in errors[1]
    assert [e for i, e in enumerate(errors) if i != 1] == [""] * (len(pairs) - 1)
    # counts stay integers beside an error row (not 12.0 in a CSV)
    assert str(table["original_bytes"].dtype) == "Int64"
    assert str(table["original_frames"].dtype) == "Int64"


def test_a_gif_given_as_manifest_says_what_to_do(demo: Path) -> None:
    from giflab_dask.inputs import BatchInputError

    gif = next((demo / "originals").glob("*.gif"))
    with pytest.raises(BatchInputError, match=r"not a text manifest.*giflab-dask validate"):
        read_manifest(gif)
    out = CliRunner().invoke(cli, ["batch", str(gif), "--out", str(demo / "r.csv")])
    assert out.exit_code == 2 and "not a text manifest" in out.output


def test_cli_batch_exit_codes_and_outputs(demo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out" / "results.parquet"
    result = runner.invoke(cli, ["batch", str(demo), "--out", str(out), "--metrics", METRICS,
                                 "--no-progress", "--profile", "lenient"])  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert "6 pairs:" in result.output
    table = load_results(out)
    assert list(table.columns[: len(BASE_COLUMNS)]) == [
        c for c in BASE_COLUMNS if c in table.columns
    ]
    for column in ("variant", "ssim_mean", "psnr_p5", "chist_min", "verdict", "compression_ratio"):
        assert column in table.columns
    # bad inputs -> exit code 1 with error rows
    pairs_manifest = tmp_path / "bad.csv"
    pairs_manifest.write_text(
        f"original,compressed\n{demo}/originals/demo-01.gif,{tmp_path}/nope.gif\n"
    )
    bad = runner.invoke(cli, ["batch", str(pairs_manifest), "--no-progress", "--metrics", "psnr"])
    assert bad.exit_code == 1 and "nope.gif: file not found" in bad.output
    usage = runner.invoke(cli, ["batch", str(tmp_path / "nothing-here")])
    assert usage.exit_code == 2


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_outputs_round_trip(demo: Path, tmp_path: Path, suffix: str) -> None:
    result = validate_batch(collect_pairs(demo), metrics="psnr,mse")
    table = batch_table(result.outcomes)
    path = write_table(table, tmp_path / f"t{suffix}")
    back = load_results(path)
    assert list(back.columns) == list(table.columns)
    np.testing.assert_allclose(back["psnr_mean"], table["psnr_mean"])
    assert back["verdict"].tolist() == table["verdict"].tolist()
    assert back["variant"].tolist() == table["variant"].tolist()


def test_per_frame_vectors_come_back_from_the_store(demo: Path) -> None:
    result = validate_batch(collect_pairs(demo), metrics="psnr,ssim")
    row = batch_table(result.outcomes).iloc[0]
    frame = load_per_frame(row.to_dict(), metrics="psnr,ssim")
    assert list(frame.columns) == ["compressed_frame", "psnr", "ssim"]
    assert len(frame) == int(row["original_frames"])
    np.testing.assert_allclose(frame["psnr"].mean(), row["psnr_mean"])


def test_corrupted_result_is_detected_and_recomputed(demo: Path) -> None:
    pairs = collect_pairs(demo)[:1]
    first = validate_batch(pairs, metrics="psnr")
    store = open_result_store()
    node = store.path_for(first.outcomes[0].metric_keys["psnr"])
    text = node.read_text().replace('"per_frame": [', '"per_frame": [1e9, ', 1)
    node.write_text(text)
    with pytest.warns(CacheIntegrityWarning, match="checksum"):
        plan = plan_batch(pairs, metrics="psnr")
    assert plan.n_metric_tasks == 1
    again = plan.compute()
    assert (
        again.outcomes[0].result.summaries["psnr_mean"]
        == first.outcomes[0].result.summaries["psnr_mean"]
    )


def test_no_cache_and_refresh(demo: Path) -> None:
    pairs = collect_pairs(demo)[:2]
    uncached = validate_batch(pairs, metrics="psnr", use_cache=False)
    assert open_result_store().entries() == []
    # Per-frame vectors still come back (from the run's own scratch store) ...
    result = uncached.outcomes[0].result
    vector = result.per_frame["psnr"]
    assert len(vector) == result.summaries["original_frames"] and np.isfinite(vector).all()
    scratch = uncached.plan.results.root
    assert scratch.is_dir() and scratch != open_result_store().root
    # ... and the scratch store is gone once nothing refers to it.
    del uncached, result
    gc.collect()
    assert not scratch.exists()
    validate_batch(pairs, metrics="psnr")
    assert plan_batch(pairs, metrics="psnr").n_metric_tasks == 0
    assert plan_batch(pairs, metrics="psnr", refresh=True).n_metric_tasks == 2


_INTERRUPTED = """
import sys, time, dask, numpy as np
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.metrics import register_metric
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import validate_batch
def slow_psnr(a, b):
    time.sleep(1.0)
    from giflab_dask.kernels.fidelity import psnr
    return psnr(a, b)
register_metric("slow_psnr", slow_psnr)
pairs = collect_pairs(sys.argv[1])
r = validate_batch(pairs, metrics="slow_psnr", scheduler="threads", num_workers=2)
print("done", r.stats["node_misses"])
"""


def _kind(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError):
        return None  # renamed or replaced meanwhile


def test_interrupted_batch_keeps_finished_pairs(demo: Path, isolated_cache: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED, str(demo), str(isolated_cache)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results = isolated_cache / "results"

    def finished(kind: str = "metric") -> list[Path]:  # complete nodes, not writes in flight
        done = [p for p in results.glob("*/*.json") if not p.name.startswith(".tmp-")]
        return [p for p in done if _kind(p) == kind]

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(finished()) >= 2:
            break  # at least 2 metric nodes written
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(finished())
    assert 0 < stored < 6, "kill the batch between its first and last result"
    # alignment nodes are stored by the graph as the pair's decodes finish (decision 62)
    aligned = {p: p.stat().st_mtime_ns for p in finished("alignment")}
    assert aligned
    # The rerun reuses the finished pairs and completes the others.
    out = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, str(demo), str(isolated_cache)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["done", str(6 - stored)]
    assert len(finished("alignment")) == 6  # the rerun stored the rest, kept the finished
    assert {p: p.stat().st_mtime_ns for p in aligned} == aligned
    # a write killed in flight leaves a marked temporary file, never read; prune removes it
    ResultStore(results).prune_temporaries(min_age_s=0)
    assert not [p for p in results.glob("*/.tmp-*")]


@pytest.mark.parametrize("fsync", [False, True])
def test_fsync_setting_decides_which_writes_are_flushed(
    demo: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    """Off (the default), entries and nodes are published by their rename alone; the batch's
    one index segment is still flushed. On, every entry (manifest and root) and node too."""
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    pairs = collect_pairs(demo)[:2]
    with dask.config.set({"giflab.fsync": fsync}):
        result = validate_batch(pairs, metrics=["ssim", "mse"], scheduler="sync")
    decodes = result.stats["decode_tasks"]
    nodes = 3 * len(pairs)  # alignment, ssim and mse of each pair
    assert decodes >= 3 and result.counts()["error"] == 0
    assert len(synced) == 1 + (2 * decodes + nodes if fsync else 0)


def test_what_a_power_loss_tears_is_refused_and_recomputed(demo: Path) -> None:
    """Without fsync, a power loss may leave renamed files empty or zero-filled: every such
    file fails verification on the next run (warned), which recomputes the same values."""
    pairs = collect_pairs(demo)[:2]
    first = validate_batch(pairs, metrics=["ssim", "mse"])
    cache = open_frame_store().root.parent
    for index in (cache / "results" / "index").iterdir():
        index.unlink()  # its nodes are then read from their documents
    torn = sorted((cache / "results").glob("??/*.json")) + [
        p for p in (cache / "frames").glob("*/**/*") if p.is_file()
    ]
    for i, path in enumerate(torn):
        path.write_bytes(b"" if i % 2 else bytes(path.stat().st_size))
    with pytest.warns(CacheIntegrityWarning):
        again = validate_batch(pairs, metrics=["ssim", "mse"])
    assert again.stats["decode_tasks"] == first.stats["decode_tasks"]
    assert [o.result.summaries for o in again.outcomes] == [
        o.result.summaries for o in first.outcomes
    ]
