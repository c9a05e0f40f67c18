"""Held frames: a screencast-like pair measured with and without skipping repeated frame pairs.

    python benchmarks/bench_held.py [--distinct 200 --hold 3 --width 480 --height 270]

The original holds each of ``--distinct`` synthetic frames for ``--hold`` frame records (as
screen recorders write them); the compressed copy is ``gifsicle -O2 --lossy=80``, which merges
the held frames into one record each, so time alignment shows each compressed frame beside
``--hold`` original frames. Every default metric, one worker thread, frames already decoded;
rows: repeated pairs measured once (the engine), then every frame measured (the same engine
with the repeat detection switched off), in one process. Prints seconds, frames/s, the ratio,
and whether every summary is equal.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import synthetic_gif
from PIL import Image, ImageSequence


def held_pair(tmp: Path, distinct: int, hold: int, width: int, height: int) -> tuple[str, str]:
    from giflab_dask.testing import GifFrame, encode_gif

    src = synthetic_gif(tmp / "distinct.gif", distinct, width, height, seed=7)
    with Image.open(src) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    first = frames[0].quantize(255)
    palette = np.array(first.getpalette()[:765], np.uint8).reshape(-1, 3)
    records = [
        GifFrame(np.asarray(f.quantize(palette=first, dither=Image.Dither.NONE)), delay_cs=4)
        for f in frames
        for _ in range(hold)
    ]
    original, compressed = tmp / "held.gif", tmp / "held-O2-lossy80.gif"
    original.write_bytes(encode_gif(records, width, height, global_palette=palette))
    subprocess.run(
        ["gifsicle", "-O2", "--lossy=80", "-o", str(compressed), str(original)], check=True
    )
    return str(original), str(compressed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument("--hold", type=int, default=3)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    args = parser.parse_args()
    if shutil.which("gifsicle") is None:
        raise SystemExit("bench_held.py needs gifsicle (apt-get install gifsicle)")
    import dask

    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        o, c = held_pair(tmp, args.distinct, args.hold, args.width, args.height)
        dask.config.set({"giflab.cache-dir": str(tmp / "cache")})
        from giflab_dask import metrics
        from giflab_dask.framestore import decode_gif
        from giflab_dask.pipeline import validate_pair

        n = decode_gif(o).n_frames
        records = decode_gif(c).n_frames
        validate_pair(o, c, metrics="ssim", use_cache=False)  # imports, numba load
        detect = metrics._distinct_pairs
        rows = []
        for label, find in (("repeated pairs measured once", detect),
                            ("every frame measured", lambda a, b: None)):  # fmt: skip
            metrics._distinct_pairs = find
            started = time.perf_counter()
            result = validate_pair(o, c, use_cache=False, num_workers=1)
            rows.append((label, time.perf_counter() - started, result.summaries))
        metrics._distinct_pairs = detect
    print(f"pair: {n} frames {args.width}x{args.height} ({args.distinct} distinct, each held "
          f"{args.hold}x); compressed: gifsicle -O2 --lossy=80, {records} records")  # fmt: skip
    print(f"{'run (default metrics, 1 thread)':<36}{'seconds':>9}{'frames/s':>10}")
    for label, seconds, _ in rows:
        print(f"{label:<36}{seconds:>9.2f}{n / seconds:>10.1f}")
    same = all(np.array_equal(rows[0][2][k], rows[1][2][k], equal_nan=True) for k in rows[0][2])
    print(f"every frame / once: {rows[1][1] / rows[0][1]:.2f}x; summaries equal: {same}")


if __name__ == "__main__":
    main()
