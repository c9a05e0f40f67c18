"""Whole process, as a user runs it: ``giflab-dask validate A B`` beside ffmpeg's SSIM+PSNR.

    python benchmarks/bench_validate.py [--frames 600 --width 480 --height 270] [--gif PATH]

The pair: a synthetic animation (or ``--gif``) and its ``gifsicle --lossy=80`` copy (a
Pillow 32-colour requantisation when gifsicle is missing). Rows, each a fresh process, wall
time including interpreter start and imports, one run each in this order:

* ffmpeg: ``ssim`` and ``psnr`` filters on the same two files (what ffmpeg users measure);
* giflab cold: default metrics, an empty cache directory (decode, every metric, writes);
* giflab cold, numba compiling: the same with an empty numba cache (a first run after
  installing: every numba kernel is compiled);
* giflab hot: the same command again (every result is a lookup);
* giflab trio cold: ``--metrics ssim,psnr,mse`` with an empty cache.

Prints seconds, frames/s and each row's time over ffmpeg's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import synthetic_gif
from bench_metrics import compressed_variant


def lossy_copy(original: Path, out: Path) -> tuple[Path, str]:
    gifsicle = shutil.which("gifsicle")
    if gifsicle is None:
        return compressed_variant(original, out), "Pillow 32 colours (gifsicle not installed)"
    subprocess.run([gifsicle, "--lossy=80", "-o", str(out), str(original)], check=True)
    return out, "gifsicle --lossy=80"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode not in (0, 1):  # 1: the pair fails or warns a check, still measured
        raise RuntimeError(f"{cmd} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return seconds, out.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--gif", type=Path, help="a GIF of your own as the original")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "giflab_dask.cli"]
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        original = args.gif or synthetic_gif(
            tmp / "o.gif", args.frames, args.width, args.height, seed=3
        )
        compressed, how = lossy_copy(original, tmp / "c.gif")
        from PIL import Image

        with Image.open(original) as im:
            n_frames, size = im.n_frames, im.size
        rows: list[tuple[str, float]] = []
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is not None:
            graph = "[0:v]split[a][b];[1:v]split[c][d];[a][c]ssim;[b][d]psnr"
            cmd = [ffmpeg, "-v", "error", "-i", str(original), "-i", str(compressed)]
            rows.append(("ffmpeg ssim+psnr", timed([*cmd, "-lavfi", graph, "-f", "null", "-"])[0]))
        pair = [str(original), str(compressed)]
        env = dict(os.environ)
        validate = [*cli, "--cache-dir", str(tmp / "cache"), "validate", *pair]
        rows.append(("giflab cold, default metrics", timed(validate, env)[0]))
        fresh = [*cli, "--cache-dir", str(tmp / "cache2"), "validate", *pair]
        numba_env = {**env, "NUMBA_CACHE_DIR": str(tmp / "numba")}
        rows.append(("giflab cold, numba compiling", timed(fresh, numba_env)[0]))
        rows.append(("giflab hot (same command again)", timed(validate, env)[0]))
        trio = [*cli, "--cache-dir", str(tmp / "cache3"), "validate", *pair]
        rows.append(("giflab cold, ssim,psnr,mse", timed([*trio, "--metrics", "ssim,psnr,mse"])[0]))
    print(f"pair: {n_frames} frames {size[0]}x{size[1]}, compressed with {how}; "
          f"{os.cpu_count()} cores")  # fmt: skip
    base = rows[0][1] if ffmpeg is not None else None
    print(f"{'run':<36}{'seconds':>9}{'frames/s':>10}{'x ffmpeg':>10}")
    for name, seconds in rows:
        ratio = f"{seconds / base:>10.1f}" if base else ""
        print(f"{name:<36}{seconds:>9.2f}{n_frames / seconds:>10.1f}{ratio}")


if __name__ == "__main__":
    main()
