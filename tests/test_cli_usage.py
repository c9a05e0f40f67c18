"""The command line as a new user meets it (issue 19): one-line errors with exit 2 before any
work, Ctrl-C, output formats that fit a terminal, ``python -m``, notes about batch inputs."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from giflab_dask.cli import WIDTH, cli
from giflab_dask.demo import write_demo_data
from giflab_dask.resultstore import ResultStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    write_demo_data(root, n_originals=2, n_frames=8, size=(48, 32))
    return root


def _pair(demo: Path) -> tuple[str, str]:
    return str(demo / "originals/demo-01.gif"), str(demo / "variants/colors-8/demo-01.gif")


# (name, arguments with {demo}/{tmp}/{o}/{c} placeholders, what the one line must contain)
ERRORS = [
    ("out-parent-missing", ["batch", "{demo}", "--out", "/proc/nope/o.parquet"],
     "/proc/nope/o.parquet: cannot write in /proc/nope"),
    ("out-unwritable", ["batch", "{demo}", "--out", "/sys/o.parquet"],
     "/sys/o.parquet: cannot write in /sys"),
    ("out-under-a-file", ["batch", "{demo}", "--out", "{o}/o.parquet"],
     "demo-01.gif is a file, not a folder"),
    ("out-extension", ["batch", "{demo}", "--out", "{tmp}/o.txt"],
     "o.txt: unknown table format '.txt' (end the name in .parquet"),
    ("out-is-a-folder", ["batch", "{demo}", "--out", "{demo}"], "--out: File"),
    ("cache-dir-impossible", ["--cache-dir", "/proc/nope", "validate", "{o}", "{c}"],
     "/proc/nope: cannot be the cache folder"),
    ("cache-dir-a-file", ["--cache-dir", "{o}", "validate", "{o}", "{c}"],
     "is a file"),
    ("metrics-empty", ["validate", "{o}", "{c}", "--metrics", ""], "--metrics: no metric names"),
    ("metrics-comma-json", ["validate", "{o}", "{c}", "--metrics", ",", "--json"],
     "--metrics: no metric names"),
    ("metrics-empty-batch", ["batch", "{demo}", "--metrics", " , "], "--metrics: no metric names"),
    ("metrics-unknown", ["validate", "{o}", "{c}", "--metrics", "ssim,nope"],
     "unknown metric 'nope'"),
    ("demo-frames-0", ["demo-data", "{tmp}/d", "--frames", "0"], "--frames: 0 is not in the range"),
    ("demo-originals-0", ["demo-data", "{tmp}/d", "--originals", "0"],
     "--originals: 0 is not in the range"),
    ("empty-manifest", ["batch", "{tmp}/empty.csv"], "empty.csv: the manifest has no rows"),
    ("workers-0", ["batch", "{demo}", "--workers", "0"], "--workers: 0 is not in the range x>=1"),
    ("sample-5", ["batch", "{demo}", "--sample", "5"], "--sample: 5 is not in the range x>=8"),
    ("strategy-without-sample", ["validate", "{o}", "{c}", "--strategy", "adaptive"],
     "--strategy needs --sample"),
    ("empty-variants-dir", ["batch", "{demo}/originals", "--variants", "{tmp}/empty"],
     "empty: no .gif files (put the compressed GIFs here"),
    ("no-variant-folders", ["batch", "{tmp}/novariants"], "variants: no variant folders"),
    ("no-such-source", ["batch", "{tmp}/nothing"], "nothing: no such manifest or directory"),
    ("missing-original", ["validate", "{tmp}/nope.gif", "{c}"], "nope.gif: file not found"),
    ("unknown-option", ["batch", "{demo}", "--no-such"], "No such option '--no-such'"),
    ("missing-argument", ["validate", "{o}"], "Missing argument 'COMPRESSED'"),
    ("bad-format", ["validate", "{o}", "{c}", "--format", "xml"], "--format: 'xml' is not one"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_input_errors_are_one_line_exit_2_before_any_work(
    tmp_path: Path, demo: Path, isolated_cache: Path, args: list[str], expected: str
) -> None:
    if sys.platform != "linux" and any(a.startswith(("/proc", "/sys")) for a in args):
        pytest.skip("needs Linux's /proc and /sys")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.csv").write_text("original,compressed\n")
    (tmp_path / "novariants/originals").mkdir(parents=True)
    (tmp_path / "novariants/variants").mkdir()
    o, c = _pair(demo)
    fill = {"demo": str(demo), "tmp": str(tmp_path), "o": o, "c": c}
    result = CliRunner().invoke(cli, [a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert re.search(r"\(.+\)$", lines[0]), f"no advice in parentheses: {lines[0]}"
    assert result.stdout == ""
    # checked before any computing: nothing decoded, no result stored
    assert ResultStore(isolated_cache / "results").entries() == []
    assert not (isolated_cache / "frames").exists() or not any(
        (isolated_cache / "frames").iterdir()
    )


def test_validate_table_fits_100_columns_and_all_nan_shows_no_numbers(demo: Path) -> None:
    # 48x32 frames: MS-SSIM (needs 161x161) and banding (no gradient regions) are all NaN
    result = CliRunner().invoke(cli, ["validate", *_pair(demo), "--no-progress"])
    assert result.exit_code == 1, result.output  # the 8-colour variant fails
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH, max(lines, key=len)
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:1].isalpha()}
    assert rows["ms_ssim"] == ["-", "-", "-", "-", "[1]"]
    assert rows["banding_score_mean"][:4] == ["-", "-", "-", "-"]
    assert re.fullmatch(r"\d+\.\d{4}", rows["ssim"][0])
    assert any(line.startswith("[1] ms_ssim: no frame could be measured") for line in lines)
    assert "verdict: FAIL" in result.stdout


def test_validate_csv_and_json_formats(demo: Path) -> None:
    runner = CliRunner()
    as_csv = runner.invoke(cli, ["validate", *_pair(demo), "--metrics", "psnr,ms_ssim",
                                 "--format", "csv", "-q"])  # fmt: skip
    assert as_csv.exit_code in (0, 1) and as_csv.stderr == "", as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["output"] for r in rows] == ["psnr", "ms_ssim"]
    assert float(rows[0]["min"]) <= float(rows[0]["mean"]) <= float(rows[0]["max"])
    assert rows[1]["mean"] == "" and "161x161" in rows[1]["missing"]
    as_json = runner.invoke(cli, ["validate", *_pair(demo), "--metrics", "psnr,ms_ssim",
                                  "--format", "json", "-q"])  # fmt: skip
    payload = json.loads(as_json.stdout)
    assert payload["summaries"]["psnr_mean"] == pytest.approx(float(rows[0]["mean"]))
    assert (payload["verdict"]["status"] == "fail") == (as_csv.exit_code == 1)


def test_batch_notes_originals_without_a_compressed_gif(demo: Path, tmp_path: Path) -> None:
    (demo / "variants/colors-8/demo-02.gif").unlink()
    result = CliRunner().invoke(cli, ["batch", str(demo), "--metrics", "psnr", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "note: " in result.stderr and "colors-8: no compressed GIF for 1 original(s): " \
        "demo-02.gif" in result.stderr  # fmt: skip
    assert result.stdout.startswith("5 pairs:")
    # the run summary is on stderr (the README says so), the counts on stdout
    assert "run: 5 pairs" in result.stderr and "run: " not in result.stdout
    quiet = CliRunner().invoke(cli, ["batch", str(demo), "--metrics", "psnr", "-q"])
    assert quiet.stderr == "" and quiet.stdout.startswith("5 pairs:")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_python_dash_m(demo: Path, isolated_cache: Path) -> None:
    env = _env()
    help_ = subprocess.run([sys.executable, "-m", "giflab_dask", "--help"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert help_.returncode == 0 and "validate" in help_.stdout, help_.stderr
    args = ["--cache-dir", str(isolated_cache), "validate", *_pair(demo), "--metrics", "psnr",
            "--json"]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "giflab_dask.cli", *args], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 1, out.stderr  # the 8-colour variant fails
    assert json.loads(out.stdout)["verdict"]["status"] == "fail"


#: A CLI whose "slow" metric sleeps per chunk. Once the result store holds
#: ``GIFLAB_TEST_HANG_AT`` entries, a call touches ``GIFLAB_TEST_HANG_MARK`` and hangs, so a test
#: can interrupt a batch at a known point however fast or loaded the machine is.
SLOW_CLI = """
import os, sys, time
from pathlib import Path
import giflab_dask as gd
from giflab_dask.cli import main
from giflab_dask.resultstore import ResultStore
def slow(a, b):
    hang_at = os.environ.get("GIFLAB_TEST_HANG_AT")
    if hang_at and len(ResultStore(os.environ["GIFLAB_TEST_RESULTS"]).entries()) >= int(hang_at):
        Path(os.environ["GIFLAB_TEST_HANG_MARK"]).touch()
        time.sleep(300)
    time.sleep(0.4)
    return abs(a.astype(int) - b).mean(axis=(1, 2, 3))
gd.register_metric("slow", slow, higher_is_better=False)
main(sys.argv[1:], prog_name="giflab-dask")
"""


def _interrupt_when_hung(args: list[str], env: dict[str, str], mark: Path) -> str:
    """Run SLOW_CLI with ``args`` until its metric hangs, send SIGINT; return its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a test runner may start us with SIGINT ignored: give the child the default handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not mark.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert mark.exists(), "the slow metric never hung"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    return err


def _hang_env(cache: Path, at: int, **extra: str) -> tuple[dict[str, str], Path]:
    mark = cache.parent / "hung"
    env = {**_env(), "GIFLAB_TEST_HANG_AT": str(at), "GIFLAB_TEST_HANG_MARK": str(mark),
           "GIFLAB_TEST_RESULTS": str(cache / "results"), **extra}  # fmt: skip
    return env, mark


def test_ctrl_c_says_what_was_kept_and_exits_130(demo: Path, isolated_cache: Path) -> None:
    args = ["--cache-dir", str(isolated_cache), "batch", str(demo), "--metrics", "slow,psnr",
            "--scheduler", "sync", "--no-progress"]  # fmt: skip
    env, mark = _hang_env(isolated_cache, at=1)
    err = _interrupt_when_hung(args, env, mark)
    match = re.search(r"interrupted: (\d+) of (\d+) results computed and stored; rerun to "
                      r"resume", err)  # fmt: skip
    assert match, err
    kept, total = map(int, match.groups())
    assert 1 <= kept < total == 12  # 6 pairs x 2 metrics
    assert "Traceback" not in err and "Aborted" not in err
    rerun = subprocess.run([sys.executable, "-c", SLOW_CLI, *args], env=_env(), text=True,
                           capture_output=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 1, rerun.stderr
    assert f"{kept} stored results reused, {total - kept} computed" in rerun.stdout


def test_ctrl_c_in_a_later_window_counts_the_earlier_windows(
    demo: Path, isolated_cache: Path
) -> None:
    """Windows of 2 pairs (3 windows): interrupted in the second window, the message counts
    the first window's results too, and the rerun computes exactly the rest."""
    args = ["--cache-dir", str(isolated_cache), "batch", str(demo), "--metrics", "slow,psnr",
            "--scheduler", "sync", "--no-progress"]  # fmt: skip
    windows = {"DASK_GIFLAB__BATCH__WINDOW_PAIRS": "2"}
    # the first window stores 4 metric nodes and 2 alignment nodes; the second one's slow
    # metric hangs
    env, mark = _hang_env(isolated_cache, at=6, **windows)
    err = _interrupt_when_hung(args, env, mark)
    match = re.search(r"interrupted: (\d+) of (\d+) results computed and stored", err)
    assert match, err
    kept, total = map(int, match.groups())
    assert 4 <= kept < total == 8, err  # the windows so far: 2 x 2 pairs x 2 metrics
    rerun = subprocess.run([sys.executable, "-c", SLOW_CLI, *args], env={**_env(), **windows},
                           text=True, capture_output=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 1, rerun.stderr
    assert f"{kept} stored results reused, {12 - kept} computed" in rerun.stdout


def test_ctrl_c_while_planning_exits_130(
    demo: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any compute there is nothing to count: one line and 130, not click's "Aborted!"
    with exit 1 (which would read as a failed pair)."""
    import giflab_dask.pipeline

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(giflab_dask.pipeline, "plan_batch", interrupted)
    out = CliRunner().invoke(cli, ["--cache-dir", str(isolated_cache), "batch", str(demo)])
    assert out.exit_code == 130, out.output
    assert out.stderr.strip() == "interrupted" and "Aborted" not in out.output


def test_ctrl_c_while_planning_a_later_window_counts_the_earlier_windows(
    demo: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.config

    import giflab_dask.pipeline

    real, calls = giflab_dask.pipeline.plan_batch, []

    def second_interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(giflab_dask.pipeline, "plan_batch", second_interrupted)
    args = ["--cache-dir", str(isolated_cache), "batch", str(demo), "--metrics", "psnr,mse",
            "--scheduler", "sync", "--no-progress"]  # fmt: skip
    with dask.config.set({"giflab.batch.window-pairs": 2}):
        out = CliRunner().invoke(cli, args)
    assert out.exit_code == 130, out.output
    # the first window: 2 pairs x 2 metrics, all stored
    assert "interrupted: 4 of 4 results computed and stored; rerun to resume" in out.stderr


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
        else:
            out.append((*path, name))
    return out


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "giflab-dask")
def test_help_has_no_markup(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "`" not in result.stdout, result.stdout  # RST/markdown backticks print as they are
