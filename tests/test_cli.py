from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.framestore import open_frame_store


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("decode", "cache", "config", "demo-data"):
        assert command in result.output


def test_decode_prints_key_frames_size_and_chunking(anim_gif: Path) -> None:
    result = run("decode", str(anim_gif))
    assert result.exit_code == 0, result.output
    stored = open_frame_store().entries()[0]
    assert stored.key in result.output
    assert "48x32" in result.output and "6 frames" in result.output


def test_decode_json(anim_gif: Path) -> None:
    result = run("decode", "--json", str(anim_gif))
    row = json.loads(result.output.strip())
    assert row["frames"] == 6 and row["size"] == "48x32" and row["alpha"] == "no"


def test_decode_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "not-a.gif"
    bad.write_text("hello")
    result = CliRunner().invoke(cli, ["decode", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not a GIF" in lines[0]
    assert "Traceback" not in result.output


def test_decode_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["decode", str(tmp_path / "nope.gif")])
    assert result.exit_code == 2
    assert "nope.gif: file not found" in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["decode"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_cache_info_prune_clear(tmp_path: Path, anim_gif: Path) -> None:
    from .conftest import write_pillow_gif

    other = write_pillow_gif(tmp_path / "other.gif", seed=3, noise=True)
    run("decode", str(anim_gif))
    time.sleep(0.02)
    run("decode", str(other))
    info = json.loads(run("cache", "info", "--json").output)
    assert info["entries"] == 2 and info["bytes"] > 0
    assert "entries      2" in run("cache", "info").output
    result = run("cache", "prune", "--max-bytes", str(info["bytes"] - 1))
    assert result.exit_code == 0 and "evicted 1 entries" in result.output
    assert json.loads(run("cache", "info", "--json").output)["entries"] == 1
    assert CliRunner().invoke(cli, ["cache", "prune", "--max-bytes", "lots"]).exit_code == 2
    result = run("cache", "clear", "--yes")
    assert "removed 1 entries" in result.output
    assert json.loads(run("cache", "info", "--json").output)["entries"] == 0


def test_cache_dir_option(tmp_path: Path, anim_gif: Path) -> None:
    root = tmp_path / "elsewhere"
    run("--cache-dir", str(root), "decode", str(anim_gif))
    assert (root / "frames").is_dir()


def test_config_show() -> None:
    result = run("config", "show")
    assert result.exit_code == 0
    assert "framestore:" in result.output and "chunk-mib" in result.output


def test_demo_data_then_decode(tmp_path: Path) -> None:
    result = run("demo-data", str(tmp_path / "demo"), "--originals", "1", "--frames", "6")
    assert result.exit_code == 0
    gifs = sorted((tmp_path / "demo").rglob("*.gif"))
    assert len(gifs) == 4
    assert run("decode", *map(str, gifs)).exit_code == 0
    halved = open_frame_store().ensure(tmp_path / "demo" / "variants" / "frames-50" / "demo-01.gif")
    assert halved.n_frames == 3


def test_console_script_help_is_fast() -> None:
    # Heavy libraries are imported inside commands, so --help does not load dask.array or zarr.
    code = (
        "import sys; from giflab_dask.cli import main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('zarr', 'PIL', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
