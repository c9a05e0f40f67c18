"""Decode benchmark: a 1000-frame 640x360 GIF into the frame store, beside Pillow's bare decode.

    python benchmarks/bench_decode.py [--frames 1000] [--width 640] [--height 360]

Each measurement runs in its own child process, so peak RSS is that step's alone. Prints
frames/s of both, their ratio, and peak RSS against the size of the decoded frames.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif

PILLOW = """
import time
from PIL import Image, ImageSequence
import numpy as np
base = _rss_mib()
t0 = time.perf_counter()
n = 0
with Image.open(sys.argv[1]) as im:
    for frame in ImageSequence.Iterator(im):
        rgb = np.asarray(frame.convert("RGB"))
        n += 1
elapsed = time.perf_counter() - t0
result = {"frames": n, "seconds": elapsed, "base_rss_mib": base}
"""

GIFLAB = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.framestore import FrameStore
from giflab_dask.keys import GifSource
store = FrameStore()
base = _rss_mib()
t0 = time.perf_counter()
stored = store.ensure(GifSource.from_path(sys.argv[1], use_index=False))
elapsed = time.perf_counter() - t0
nbytes = store.entries()[0].nbytes
result = {"frames": stored.n_frames, "seconds": elapsed, "base_rss_mib": base,
          "store_mib": nbytes / 2**20, "chunk_frames": stored.chunk_frames}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp:
        gif = synthetic_gif(Path(tmp) / "bench.gif", args.frames, args.width, args.height)
        pillow = run_child(PILLOW, str(gif))
        ours = run_child(GIFLAB, str(gif), str(Path(tmp) / "cache"))
    decoded_mib = args.frames * args.width * args.height * 3 / 2**20
    p_fps = pillow["frames"] / pillow["seconds"]
    o_fps = ours["frames"] / ours["seconds"]
    size = f"{args.width}x{args.height}"
    print(f"GIF: {args.frames} frames {size}; decoded RGB {decoded_mib:.0f} MiB")
    print(f"{'step':<28}{'frames/s':>10}{'peak RSS MiB':>14}{'RSS over imports':>18}")
    print(
        f"{'Pillow bare decode (RGB)':<28}{p_fps:>10.1f}{pillow['peak_rss_mib']:>14.0f}"
        f"{pillow['peak_rss_mib'] - pillow['base_rss_mib']:>18.0f}"
    )
    print(
        f"{'giflab decode -> frame store':<28}{o_fps:>10.1f}{ours['peak_rss_mib']:>14.0f}"
        f"{ours['peak_rss_mib'] - ours['base_rss_mib']:>18.0f}"
    )
    print(f"ratio giflab/Pillow frames/s: {o_fps / p_fps:.2f}")
    print(f"peak RSS / decoded size: {ours['peak_rss_mib'] / decoded_mib:.3f}")
    print(f"store size: {ours['store_mib']:.1f} MiB in chunks of {ours['chunk_frames']} frames")


if __name__ == "__main__":
    main()
