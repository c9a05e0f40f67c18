"""The README's Python examples run as written, against demo data, so the README cannot drift."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from giflab_dask import metrics
from giflab_dask.demo import write_demo_data

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
#: Blocks that need a real cluster deployment, skipped by name (and counted, so no other
#: block is skipped silently).
CLUSTER_ONLY = {"from dask_jobqueue import SLURMCluster": "needs dask-jobqueue and a SLURM cluster"}


def test_readme_has_the_examples() -> None:
    assert len(BLOCKS) >= 2
    skipped = [b for b in BLOCKS if any(marker in b for marker in CLUSTER_ONLY)]
    assert len(skipped) == len(CLUSTER_ONLY)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for marker, why in CLUSTER_ONLY.items():
        if marker in block:
            pytest.skip(f"cluster-only README example: {why}")
    demo = tmp_path / "demo"
    write_demo_data(demo, n_originals=2, n_frames=12)
    shutil.copyfile(demo / "originals/demo-01.gif", tmp_path / "original.gif")
    shutil.copyfile(demo / "variants/colors-32/demo-01.gif", tmp_path / "compressed.gif")
    monkeypatch.chdir(tmp_path)
    # the examples register metrics: keep them out of the registry other tests see
    monkeypatch.setattr(metrics, "_REGISTRY", dict(metrics._REGISTRY))
    for name in ("mean_abs",):
        metrics._REGISTRY.pop(name, None)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(block, f"{README}:python block", "exec"), namespace)
