"""Decode benchmark: a 1000-frame 640x360 GIF into the frame store, beside Pillow's bare decode.

    python benchmarks/bench_decode.py [--frames 1000] [--width 640] [--height 360] [--repeat 5]

Each measurement runs in its own child process, so peak RSS is that step's alone. Prints
frames/s of both, their ratio, and peak RSS against the size of the decoded frames. With
``--repeat N`` the two run alternately N times (a fresh store each time) and the medians are
printed, with the ratio of every round: on a shared machine single runs vary by 20%. "CPU s"
is the process's CPU time (all threads), which varies less with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif

PILLOW = """
import time
from PIL import Image, ImageSequence
import numpy as np
base = _rss_mib()
t0, c0 = time.perf_counter(), time.process_time()
n = 0
with Image.open(sys.argv[1]) as im:
    for frame in ImageSequence.Iterator(im):
        rgb = np.asarray(frame.convert("RGB"))
        n += 1
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
result = {"frames": n, "seconds": elapsed, "cpu_seconds": cpu, "base_rss_mib": base}
"""

GIFLAB = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.framestore import open_frame_store
from giflab_dask.keys import GifSource
from giflab_dask.kernels import _numba
store = open_frame_store()
# numba's palette kernel loads once per process (imports like the others above; a batch
# pays it once): timed apart
l0 = time.perf_counter()
_numba.load()
numba_load = time.perf_counter() - l0
base = _rss_mib()
t0, c0 = time.perf_counter(), time.process_time()
stored = store.ensure(GifSource.from_path(sys.argv[1], use_index=False))
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
nbytes = store.entries()[0].nbytes
result = {"frames": stored.n_frames, "seconds": elapsed, "cpu_seconds": cpu, "base_rss_mib": base,
          "store_mib": nbytes / 2**20, "chunk_frames": stored.chunk_frames,
          "numba_load_seconds": numba_load}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=1, help="alternating rounds (medians)")
    args = parser.parse_args()
    pillows, ours_runs = [], []
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp:
        gif = synthetic_gif(Path(tmp) / "bench.gif", args.frames, args.width, args.height)
        for i in range(max(1, args.repeat)):
            pillows.append(run_child(PILLOW, str(gif)))
            ours_runs.append(run_child(GIFLAB, str(gif), str(Path(tmp) / f"cache-{i}")))
    decoded_mib = args.frames * args.width * args.height * 3 / 2**20
    p_rates = [r["frames"] / r["seconds"] for r in pillows]
    o_rates = [r["frames"] / r["seconds"] for r in ours_runs]
    p_fps, o_fps = statistics.median(p_rates), statistics.median(o_rates)
    pillow = max(pillows, key=lambda r: r["peak_rss_mib"])
    ours = max(ours_runs, key=lambda r: r["peak_rss_mib"])
    size = f"{args.width}x{args.height}"
    print(f"GIF: {args.frames} frames {size}; decoded RGB {decoded_mib:.0f} MiB")
    p_cpu = statistics.median(r["cpu_seconds"] for r in pillows)
    o_cpu = statistics.median(r["cpu_seconds"] for r in ours_runs)
    print(f"{'step':<28}{'frames/s':>10}{'CPU s':>8}{'peak RSS MiB':>14}{'RSS over imports':>18}")
    print(
        f"{'Pillow bare decode (RGB)':<28}{p_fps:>10.1f}{p_cpu:>8.2f}"
        f"{pillow['peak_rss_mib']:>14.0f}{pillow['peak_rss_mib'] - pillow['base_rss_mib']:>18.0f}"
    )
    print(
        f"{'giflab decode -> frame store':<28}{o_fps:>10.1f}{o_cpu:>8.2f}"
        f"{ours['peak_rss_mib']:>14.0f}{ours['peak_rss_mib'] - ours['base_rss_mib']:>18.0f}"
    )
    print(f"ratio giflab/Pillow frames/s: {o_fps / p_fps:.2f}")
    if len(p_rates) > 1:
        rounds = " ".join(f"{o / p:.2f}" for o, p in zip(o_rates, p_rates, strict=True))
        print(f"  ratio per round: {rounds} (medians of {len(p_rates)} alternating rounds)")
    print(f"peak RSS / decoded size: {ours['peak_rss_mib'] / decoded_mib:.3f}")
    print(f"store size: {ours['store_mib']:.1f} MiB in chunks of {ours['chunk_frames']} frames")
    load = statistics.median(r["numba_load_seconds"] for r in ours_runs)
    print(f"numba kernels' load (once per process, not in the decode time): {load:.2f} s")


if __name__ == "__main__":
    main()
