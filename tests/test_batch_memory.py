"""What a finished batch keeps per pair: its result, not the planner's working state, and no
key of a graph that has run (a huge batch keeps every outcome in memory, docs/design.md 70)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from dask.utils import key_split

from giflab_dask.demo import write_demo_data
from giflab_dask.inputs import collect_pairs
from giflab_dask.outcomes import BatchResult
from giflab_dask.pipeline import validate_batch
from giflab_dask.results import batch_table

METRICS = "ssim,psnr,mse"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    write_demo_data(tmp_path / "demo", n_originals=2, n_frames=8, size=(48, 32))
    return tmp_path / "demo"


def _run(demo: Path, **kwargs: object) -> BatchResult:
    return validate_batch(collect_pairs(demo), metrics=METRICS, scheduler="threads", **kwargs)


@pytest.mark.parametrize("run", ["cold", "hot"])
def test_a_finished_outcome_keeps_its_result_alone(demo: Path, run: str) -> None:
    first = _run(demo)
    batch = _run(demo) if run == "hot" else first
    assert batch.counts()["error"] == 0
    for outcome in batch.outcomes:
        assert outcome.result is not None
        assert outcome.alignment is None and outcome.summaries == {} and outcome.extra == {}
        assert {"ssim_mean", "frame_count_change", "composite_quality"} <= set(
            outcome.result.summaries
        )
        assert outcome.result.alignment["size"] and len(outcome.result.mapping) == 8
    assert batch_table(batch.outcomes).equals(batch_table(first.outcomes))


def test_every_result_shares_one_copy_of_each_summary_name(demo: Path) -> None:
    """Stored documents give each pair new key strings; the results hold one copy of each."""
    first = _run(demo)
    hot = _run(demo)
    for a, b in itertools.pairwise([*first.outcomes, *hot.outcomes]):
        assert a.result is not None and b.result is not None
        names = {name: name for name in b.result.summaries}
        assert a.result.summaries.keys() == names.keys()
        assert all(names[name] is name for name in a.result.summaries)


@pytest.mark.parametrize("progress", [False, True])
def test_no_task_key_outlives_its_graph(demo: Path, progress: bool) -> None:
    """dask's ``key_split`` caches 100,000 keys: the run's bookkeeping must not fill it."""
    key_split.cache_clear()
    _run(demo, progress=progress)
    assert key_split.cache_info().currsize == 0
