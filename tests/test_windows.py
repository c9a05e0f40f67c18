"""A huge batch in windows (giflab.batch.window-pairs): the same table as one graph, graphs
bounded by the window, a GIF shared across windows decoded once, statistics that add up."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import pytest
from dask.callbacks import Callback
from dask.utils import key_split

from giflab_dask import pipeline, windows
from giflab_dask.demo import write_demo_data
from giflab_dask.diagnostics import PHASES
from giflab_dask.errors import ConfigError
from giflab_dask.inputs import PairInput, collect_pairs
from giflab_dask.pipeline import validate_batch
from giflab_dask.results import batch_table
from giflab_dask.resultstore import index
from giflab_dask.sampling import SampleSpec

METRICS = "ssim,psnr,mse"
#: the table's columns that are the run's own clock, not the pair's values
CLOCK = ("seconds",)


@pytest.fixture
def pairs(tmp_path: Path) -> list[PairInput]:
    """Two originals with three variants each, and two error rows in between: a missing file
    and a file that is not a GIF."""
    write_demo_data(tmp_path / "demo", n_originals=2, n_frames=16, size=(64, 48))
    good = collect_pairs(tmp_path / "demo")
    not_gif = tmp_path / "not.gif"
    not_gif.write_bytes(b"GIF89a but not really")
    first = good[0].original
    return [
        *good[:2],
        PairInput(90, first, str(tmp_path / "missing.gif")),
        *good[2:4],
        PairInput(91, first, str(not_gif)),
        *good[4:],
    ]


class Graphs(Callback):
    """Per graph the local scheduler runs: its tasks by stage; and every task run."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs: list[Counter[str]] = []
        self.ran: Counter[str] = Counter()

    def _start_state(self, dsk: Any, state: Any) -> None:
        keys = [*state["ready"], *state["waiting"], *state["cache"]]
        self.graphs.append(Counter(key_split(k) for k in keys))

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.ran[key_split(key)] += 1


def _run(pairs: list[PairInput], window: int | None, cache: Path, **kwargs: Any) -> Any:
    settings = {"giflab.cache-dir": str(cache), "giflab.batch.window-pairs": window}
    with dask.config.set(settings), Graphs() as graphs:
        result = validate_batch(pairs, metrics=METRICS, **kwargs)
    return result, graphs


def _table(result: Any) -> pd.DataFrame:
    table = batch_table(result.outcomes)
    return table.drop(columns=[c for c in CLOCK if c in table])


def test_windows_give_the_same_table_and_statistics(pairs: list[PairInput], tmp_path: Path):
    whole, whole_graphs = _run(pairs, None, tmp_path / "whole")
    windowed, graphs = _run(pairs, 3, tmp_path / "windowed")
    assert [o.input.row for o in windowed.outcomes] == [p.row for p in pairs]
    pd.testing.assert_frame_equal(_table(windowed), _table(whole))
    assert windowed.counts() == whole.counts() and whole.counts()["error"] == 2
    # three graphs of at most three pairs' writes each (8 pairs: 3, 3, 2), one for the whole
    assert len(whole_graphs.graphs) == 1 and len(graphs.graphs) == 3
    assert [g["result-write"] for g in graphs.graphs] == [6, 6, 6]  # error rows write nothing
    assert whole_graphs.graphs[0]["result-write"] == 18
    # the first original's pairs are in windows 1 and 2: it is decoded once, in window 1
    assert graphs.ran["gif-decode"] == whole_graphs.ran["gif-decode"] == 8
    assert graphs.graphs[1]["gif-decode"] < 3
    same = ("pairs", "errors", "node_hits", "node_misses", "decode_tasks", "metric_tasks")
    assert {k: windowed.stats[k] for k in same} == {k: whole.stats[k] for k in same}
    assert windowed.stats["saved_seconds"] == whole.stats["saved_seconds"] == 0.0
    for result in (whole, windowed):
        assert sum(result.phases[p] for p in PHASES) == pytest.approx(result.seconds, abs=1e-6)
        assert all(result.phases[p] > 0 for p in PHASES)
    assert windowed.report.prefixes["result-write"][0] == 18
    assert windowed.report.prefixes["gif-decode"][0] == 8
    # no window's graph is held once it has run
    assert windowed.plan.writes == {} and windowed.plan.dask_objects() == []


def test_a_windowed_rerun_reads_every_node(pairs: list[PairInput], tmp_path: Path) -> None:
    first, _ = _run(pairs, 3, tmp_path / "cache")
    again, graphs = _run(pairs, 3, tmp_path / "cache")
    assert graphs.graphs == [] and again.stats["node_misses"] == 0
    assert again.stats["node_hits"] == 6 * 3 and again.report.scheduler == "nothing to compute"
    pd.testing.assert_frame_equal(_table(again), _table(first))


def test_a_windowed_rerun_reads_its_own_part_of_the_index(
    pairs: list[PairInput], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each window decodes the segments holding its nodes, not the whole index the earlier
    # windows wrote; the earlier windows' outcomes are out of the collector's sight, so a full
    # collection does not go over them again (docs/design.md, 68)
    _run(pairs, 3, tmp_path / "cache")
    decoded: list[int] = []
    frozen: list[int] = []
    decode, plan = index.decode_segment, pipeline._plan

    def counting(raw: bytes) -> Any:
        entries, problem = decode(raw)
        decoded.append(len(entries))
        return entries, problem

    def planning(*args: Any, **kwargs: Any) -> Any:
        frozen.append(gc.get_freeze_count())
        return plan(*args, **kwargs)

    monkeypatch.setattr(index, "decode_segment", counting)
    monkeypatch.setattr(pipeline, "_plan", planning)
    again, _ = _run(pairs, 3, tmp_path / "cache")
    assert again.stats["node_hits"] == 6 * 3 and again.stats["node_misses"] == 0
    # 6 pairs' alignment and metric nodes, each decoded once (before: 3 windows x all 24)
    assert sum(decoded) == 6 * 4 and len(decoded) == 3
    assert frozen[0] == gc.get_freeze_count() == 0 < frozen[1] < frozen[2]


def test_without_the_cache_a_shared_gif_is_still_decoded_once(
    pairs: list[PairInput], tmp_path: Path
) -> None:
    # use_cache=False: each window's nodes go to a scratch store of its own, but the frame
    # store is the decode cache whatever use_cache says
    result, graphs = _run(pairs, 3, tmp_path / "cache", use_cache=False)
    assert graphs.ran["gif-decode"] == 8 and result.stats["decode_tasks"] == 8
    first = result.outcomes[0].result
    assert len(first.per_frame["ssim"]) == first.summaries["original_frames"]


def test_sampled_and_adaptive_batches_run_in_windows(pairs: list[PairInput], tmp_path: Path):
    for sample in (SampleSpec(8, "uniform"), SampleSpec(8, "adaptive")):
        whole, _ = _run(pairs, None, tmp_path / f"whole-{sample.strategy}", sample=sample)
        windowed, graphs = _run(pairs, 3, tmp_path / f"win-{sample.strategy}", sample=sample)
        pd.testing.assert_frame_equal(_table(windowed), _table(whole))
        assert windowed.stats["node_misses"] == whole.stats["node_misses"]
        assert len(graphs.graphs) >= 3


def test_one_progress_bar_covers_every_window(
    pairs: list[PairInput], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars: list[Any] = []

    class Recorded(windows.BatchProgress):
        def __enter__(self) -> Any:
            bars.append(self)
            return super().__enter__()

    monkeypatch.setattr(windows, "BatchProgress", Recorded)
    whole, _ = _run(pairs, None, tmp_path / "whole")
    _run(pairs, 3, tmp_path / "windowed", progress=True)
    (bar,) = bars
    assert bar.frames_total == whole.plan.frame_measurements > 0
    assert bar.line().startswith("window 3/3 · decode 8/8 · metric ")
    assert "write 18/18" in bar.line()


def test_windows_split_evenly() -> None:
    split = windows.split(list(range(10_001)), 5_000)
    assert [len(w) for w in split] == [3_333, 3_334, 3_334]
    assert [x for w in split for x in w] == list(range(10_001))
    assert [len(w) for w in windows.split(list(range(4)), 5_000)] == [4]


@pytest.mark.parametrize("value", [0, -1, "many", 2.5])
def test_a_bad_window_setting_is_a_config_error(value: Any) -> None:
    with dask.config.set({"giflab.batch.window-pairs": value}), pytest.raises(ConfigError):
        windows.window_size()


def test_the_cli_takes_the_window_from_the_environment(
    pairs: list[PairInput], tmp_path: Path
) -> None:
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(
        "original,compressed\n" + "".join(f"{p.original},{p.compressed}\n" for p in pairs)
    )

    def run(window: str, cache: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DASK_GIFLAB__CACHE_DIR": str(tmp_path / cache),
            "DASK_GIFLAB__STAT_INDEX": str(tmp_path / cache / "stat-index.sqlite"),
            "DASK_GIFLAB__BATCH__WINDOW_PAIRS": window,
            "DASK_GIFLAB__PROGRESS_INTERVAL": "0.01",
        }
        command = [
            sys.executable,
            "-m",
            "giflab_dask",
            "batch",
            str(manifest),
            "--metrics",
            METRICS,
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    windowed, whole = run("3", "windowed"), run("null", "whole")
    assert windowed.returncode == whole.returncode == 1  # the error rows
    assert "window 3/3" in windowed.stderr and "window" not in whole.stderr
    counts = [r.stdout.splitlines()[0].split("(")[0] for r in (windowed, whole)]
    assert counts[0] == counts[1] == "8 pairs: " + counts[1].split(": ", 1)[1]
    assert "18 computed, 8 GIFs decoded" in windowed.stdout
    assert windowed.stdout.split("errors:")[1] == whole.stdout.split("errors:")[1]
