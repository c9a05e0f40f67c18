"""A cold batch leaves per-pair I/O to the graph (decision 62): alignment nodes are stored by
``alignment-write`` tasks, never by the client while it plans."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.demo import write_demo_data
from giflab_dask.diagnostics import PHASES, format_summary, run_summary
from giflab_dask.errors import CacheWriteError
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.resultstore import ResultStore, alignment_node_key, open_result_store

METRICS = "psnr,mse"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    write_demo_data(tmp_path / "demo", n_originals=2, n_frames=8, size=(64, 48))
    return tmp_path / "demo"


class PutCounter:
    """Counts ``ResultStore.put`` per kind, and which of them ran on the client's own thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        real = ResultStore.put

        def put(store: ResultStore, key: str, kind: str, data: dict[str, Any]) -> None:
            self.calls.append((kind, threading.current_thread() is threading.main_thread()))
            if kind == fail:
                raise CacheWriteError("result store", store.root, "No space left on device")
            real(store, key, kind, data)

        monkeypatch.setattr(ResultStore, "put", put)

    def on_client(self) -> list[str]:
        return [kind for kind, main in self.calls if main]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def _alignment_nodes(pairs: Any, results: ResultStore) -> list[dict[str, Any] | None]:
    from giflab_dask.align import AlignOptions
    from giflab_dask.keys import gif_key

    options = AlignOptions.from_config()
    return [
        results.get(alignment_node_key(gif_key(p.original), gif_key(p.compressed), options),
                    "alignment")
        for p in pairs
    ]  # fmt: skip


def _task_functions(plan: Any, index: int) -> list[str]:
    """The names of the functions of pair ``index``'s result-write tasks."""
    names = []
    for (i, _), write in plan.writes.items():
        if i == index:
            task = dict(write.__dask_graph__())[write.key]
            names.append(getattr(task, "func", task[0] if isinstance(task, tuple) else None))
    return [getattr(f, "__name__", str(f)) for f in names]


def test_alignment_nodes_are_written_by_the_graph(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    puts = PutCounter(monkeypatch)
    plan = plan_batch(pairs, metrics=METRICS)
    assert puts.calls == []  # planning stores nothing
    # each pair's first result-write stores its alignment node: no task of its own
    assert not plan.alignment_writes
    firsts = [_task_functions(plan, index) for index in range(len(pairs))]
    assert all(names.count("write_with_alignment") == 1 for names in firsts), firsts
    result = plan.compute(scheduler="threads", num_workers=2)
    assert result.counts()["error"] == 0
    assert puts.on_client() == []  # every node was stored by a task on a worker thread
    assert sorted(puts.kinds()) == sorted(["alignment"] * 6 + ["metric"] * 12)
    nodes = _alignment_nodes(pairs, open_result_store())
    for node, outcome in zip(nodes, result.outcomes, strict=True):
        # the facts the decodes counted are in the stored node and in the pair's summaries
        assert node is not None and outcome.result is not None
        assert "frame_count_change" in node["facts"]
        for fact, value in node["facts"].items():
            assert outcome.result.summaries[fact] == pytest.approx(value, nan_ok=True)
        assert node["mapping"] == outcome.result.mapping.tolist()
    again = plan_batch(pairs, metrics=METRICS)
    assert not again.alignment_writes and not again.writes


def test_an_alignment_node_that_cannot_be_stored_fails_its_pair_and_is_retried(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    with monkeypatch.context() as patch:
        PutCounter(patch, fail="alignment")
        result = plan_batch(pairs, metrics=METRICS).compute(scheduler="threads")
    for outcome in result.outcomes:
        assert outcome.result is None  # no verdict
        assert outcome.error is not None and "alignment: result store" in outcome.error
        assert "the next run computes it again" in outcome.error
    assert _alignment_nodes(pairs, open_result_store()) == [None] * len(pairs)
    rerun = plan_batch(pairs, metrics=METRICS)
    assert not rerun.writes  # the metric nodes were stored
    assert sorted(rerun.alignment_writes) == list(range(len(pairs)))
    second = rerun.compute(scheduler="sync")
    assert second.counts()["error"] == 0
    assert None not in _alignment_nodes(pairs, open_result_store())


def test_facts_complete_at_planning_still_store_their_node_in_the_graph(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    plan_batch(pairs, metrics="mse").compute(scheduler="sync")  # decodes every GIF
    store = open_result_store()
    for path in store.entries():
        if json.loads(path.read_text())["kind"] == "alignment":
            path.unlink()  # only the alignment nodes are missing now
    puts = PutCounter(monkeypatch)
    plan = plan_batch(pairs, metrics="mse")
    assert plan.n_decode_tasks == 0 and not plan.writes and puts.calls == []
    assert sorted(plan.alignment_writes) == list(range(len(pairs)))
    result = plan.compute(scheduler="sync")
    assert result.counts()["error"] == 0 and puts.kinds() == ["alignment"] * len(pairs)
    assert None not in _alignment_nodes(pairs, store)


def _slow_planning(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Planning takes at least ``seconds`` (its frame lookups phase sleeps first)."""
    from giflab_dask import pipeline

    real = pipeline._find_frames

    def find_frames(st: Any) -> None:
        time.sleep(seconds)
        real(st)

    monkeypatch.setattr(pipeline, "_find_frames", find_frames)


def test_the_run_clock_covers_planning_and_its_phases_add_up(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    _slow_planning(monkeypatch, 0.4)
    started = time.perf_counter()
    result = validate_batch(pairs, metrics="psnr", scheduler="sync")
    took = time.perf_counter() - started
    stats = result.stats
    phases = [stats[f"{p}_seconds"] for p in PHASES]
    assert stats["plan_seconds"] >= 0.4 and all(t >= 0 for t in phases)
    assert sum(phases) == pytest.approx(stats["seconds"], abs=1e-6)
    assert 0.4 <= stats["seconds"] <= took
    assert stats["pairs_per_s"] == pytest.approx(len(pairs) / stats["seconds"])
    # the summary says the same, and the scheduler's own time is inside compute
    summary = run_summary(result)
    assert summary["graph_seconds"] <= summary["compute_seconds"]
    text = format_summary(summary)
    assert re.search(r"\nclient: plan \d+\.\d s, compute \d+\.\d s, write \d+\.\d s\n", text)


def test_cli_summary_clock_starts_before_planning(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_planning(monkeypatch, 0.5)
    args = ["batch", str(demo), "--metrics", "psnr", "--no-progress", "--scheduler", "sync"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    total = float(re.search(r"\(([\d.]+) s;", result.stdout)[1])  # type: ignore[index]
    found = re.search(
        r"run: 6 pairs in ([\d.]+) s.*?\nclient: plan ([\d.]+) s, compute ([\d.]+) s, "
        r"write ([\d.]+) s\n",
        result.stderr,
        re.DOTALL,
    )
    assert found, result.stderr
    run, plan, compute, write = (float(x) for x in found.groups())
    assert total == run and plan >= 0.5 and run >= 0.5
    assert plan + compute + write == pytest.approx(run, abs=0.151)  # each rounded to 0.1 s


def test_graph_construction_tokenizes_per_batch_not_per_pair(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import dask.base

    from giflab_dask.graph import build

    build._root_token.cache_clear()
    callers: list[str] = []
    real = dask.base.tokenize

    def tokenize(*args: Any, **kwargs: Any) -> str:
        callers.append(sys._getframe(1).f_code.co_filename)
        return real(*args, **kwargs)

    monkeypatch.setattr(dask.base, "tokenize", tokenize)
    plan = plan_batch(collect_pairs(demo), metrics=METRICS)
    assert len(plan.writes) == 12 and plan.n_decode_tasks == 8
    # the frame store's root, and it with the result store's: once each, for every task key
    assert sum(f.endswith(str(Path("graph", "build.py"))) for f in callers) == 2


_IMPORTS = """
import sys, dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch
plan = plan_batch(collect_pairs(sys.argv[1]), metrics="ssim,psnr,mse")
assert plan.n_decode_tasks == 8, plan.n_decode_tasks
print(sorted(m for m in sys.modules if m.split(".")[0] == "scipy"))
"""


def test_planning_ssim_imports_no_scipy(demo: Path, isolated_cache: Path) -> None:
    """The client imports a kernel to bind its options, not what only its computation needs:
    scipy.ndimage (~0.4 s) is for SSIM's Gaussian window, which the default SSIM never uses."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS, str(demo), str(isolated_cache)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"]
