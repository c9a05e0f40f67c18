"""A batch is one graph of a few named layers, whatever its size (decision 63): the writes
share it, and running it is one schedule over it, not a merge and a repack per write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dask.callbacks import Callback
from dask.utils import key_split

from giflab_dask.cluster import execute
from giflab_dask.demo import write_demo_data
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch

METRICS = "psnr,mse,ssim"


def _plan(root: Path, originals: int) -> Any:
    write_demo_data(root, n_originals=originals, n_frames=6, size=(32, 24))
    return plan_batch(collect_pairs(root), metrics=METRICS)


@pytest.mark.parametrize("originals", [1, 3])
def test_the_writes_share_one_graph_of_a_layer_per_stage(tmp_path: Path, originals: int) -> None:
    plan = _plan(tmp_path / "demo", originals)
    writes = plan.dask_objects()
    assert len(writes) == 3 * 3 * originals  # 3 variants per original, a write per metric
    graphs = {id(w.__dask_graph__()) for w in writes}
    assert len(graphs) == 1  # not a graph per write
    graph = writes[0].__dask_graph__()
    stages = {name.rsplit("-", 1)[0] for name in graph.layers}
    assert stages == {"gif-decode", "pair-metrics", "result-write", "alignment-write"}
    for name, layer in graph.layers.items():  # task prefixes stay the stages' names
        assert {key_split(k) for k in layer} <= {name.rsplit("-", 1)[0]}


def test_some_writes_run_only_their_tasks(tmp_path: Path) -> None:
    plan = _plan(tmp_path / "demo", 2)
    first = [w for (i, _), w in plan.writes.items() if i == 0]
    ran: list[str] = []
    with Callback(posttask=lambda key, *_: ran.append(key_split(key))):
        values, _ = execute(first, scheduler="sync")
    assert all(v["ok"] for v in values)
    # one pair: its two decodes, its pair-metrics tasks (a group of metrics each in a batch
    # this small), a write per metric; none of the other five pairs' tasks
    assert ran.count("gif-decode") == 2 and ran.count("result-write") == 3
    assert set(ran) == {"gif-decode", "pair-metrics", "result-write"}
    assert ran.count("pair-metrics") <= 3
