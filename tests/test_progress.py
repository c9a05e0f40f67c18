"""Progress on stderr: redrawn on a terminal, a line every giflab.progress-interval otherwise;
frames counted against the plan's total."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from giflab_dask.cluster import execute
from giflab_dask.demo import write_demo_data
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch
from giflab_dask.progress import BatchProgress, progress_line

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    write_demo_data(root, n_originals=2, n_frames=16, size=(48, 32))
    return root


def test_progress_line_frames_rate_eta() -> None:
    line = progress_line({"decode": (4, 4), "metric": (3, 12), "write": (0, 0)}, (250, 1000), 5.0)
    assert line == (
        "decode 4/4 · metric 3/12 · frames×metrics 250/1000 (25%) · 50/s · ETA 15 s · 5 s"
    )
    # without a frame count (processes scheduler): tasks, no percentage of frames
    line = progress_line({"decode": (2, 2), "metric": (1, 3)}, (0, 0), 90.0)
    assert line == "decode 2/2 · metric 1/3 · 2.0/min · ETA 1 min 00 s · 1 min 30 s"
    # finished: no ETA
    assert "ETA" not in progress_line({"write": (5, 5)}, (100, 100), 2.0)


def _plan(demo: Path, metrics: str = "psnr,ssim,deltae"):
    return plan_batch(collect_pairs(demo), metrics=metrics)


def test_terminal_redraws_one_line_and_counts_every_frame(demo: Path) -> None:
    plan = _plan(demo)
    total = plan.frame_measurements
    assert total == 6 * 16 * 3  # pairs x frames x metrics (the frames-50 variants too)
    out = io.StringIO()
    with BatchProgress(total, stream=out, tty=True, interval=0.01):
        values, _ = execute(plan.dask_objects(), scheduler="threads")
    assert not any(isinstance(v, BaseException) for v in values)
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    final = text.rstrip("\n").rsplit("\r", 1)[-1].strip()
    assert f"frames×metrics {total}/{total} (100%)" in final, final
    n_writes = len(plan.writes)  # alignment nodes are stored by the pairs' first writes
    assert f"write {n_writes}/{n_writes}" in final and "decode 8/8" in final


def test_log_lines_are_periodic_not_redraws(demo: Path) -> None:
    plan = _plan(demo)
    out = io.StringIO()
    with BatchProgress(plan.frame_measurements, stream=out, tty=False, interval=3600):
        execute(plan.dask_objects(), scheduler="threads")
    assert out.getvalue() == ""  # shorter than one interval: nothing
    plan = plan_batch(collect_pairs(demo), metrics="psnr,ssim,deltae", refresh=True)
    started = time.perf_counter()
    with BatchProgress(plan.frame_measurements, stream=out, tty=False, interval=0.05):
        execute(plan.dask_objects(), scheduler="sync")
    elapsed = time.perf_counter() - started
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert elapsed < 0.2 or lines
    assert len(lines) <= elapsed / 0.05 + 1
    assert all(re.match(r"progress: metric \d+/\d+ · write ", line) for line in lines), lines


def test_cli_progress_in_a_log_is_a_line_per_interval(demo: Path, isolated_cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "DASK_GIFLAB__PROGRESS_INTERVAL": "0.5"}  # fmt: skip
    args = ["--cache-dir", str(isolated_cache), "batch", str(demo), "--metrics", "ssim,fsim",
            "--scheduler", "sync"]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "giflab_dask", *args], env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    assert "\r" not in out.stderr and "progress:" not in out.stdout
    progress = [line for line in out.stderr.splitlines() if line.startswith("progress: ")]
    seconds = float(re.search(r"run: \d+ pairs in ([\d.]+) s", out.stderr).group(1))
    assert len(progress) <= seconds / 0.5 + 1, out.stderr
    assert seconds < 1.5 or progress, out.stderr
    quiet = subprocess.run([sys.executable, "-m", "giflab_dask", *args, "--refresh", "-q"],
                           env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert quiet.stderr == "" and quiet.stdout.startswith("6 pairs:"), quiet.stderr
