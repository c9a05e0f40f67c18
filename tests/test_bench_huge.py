"""benchmarks/bench_huge.py still runs against the public API: a 5-pair batch, cold and hot.

Figures are not checked (they are measured, never asserted); the rows and the target lines
the lead compares before and after the huge-batch work must come out.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_huge.py"
# the S3 runs need the s3 extra (moto's server); the local ones always run
HAS_MOTO = all(importlib.util.find_spec(m) for m in ("moto", "s3fs", "boto3"))


def test_bench_huge_runs_a_tiny_batch(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    stores = ["local", "s3"] if HAS_MOTO else ["local"]
    command = [sys.executable, str(BENCH), "--sizes", "5", "--stores", ",".join(stores),
               "--data", str(tmp_path / "data"), "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [(r["n"], r["store"], r["run"]) for r in rows] == [
        (5, store, run) for store in stores for run in ("cold", "hot")
    ]
    for row in rows:
        assert row["pairs"] == 5 and row["errors"] == 0, row["first_error"]
        assert row["wall"] > 0 and row["peak_rss_mib"] > 0
        assert row["objects"]["results"] > 0 and row["objects"]["frames"] > 0
    assert rows[0]["first_task"] is not None  # the cold run computed something
    assert 0 < rows[0]["first_task_cpu"] <= rows[0]["main_thread_cpu"]
    assert rows[1]["cli"]["exit"] in (0, 1)  # the CLI ran (1: a pair fails its verdict)
    for row in rows[2:]:  # S3: the server counted this run's requests (a hot run: the index)
        assert sum(row["requests"].values()) >= (5 if row["run"] == "cold" else 1), row["requests"]
    assert "client ms per pair before the first task, cold, 5 local threads" in done.stdout
    assert len(list((tmp_path / "data").rglob("*.gif"))) == 10  # generated once, 5 pairs
