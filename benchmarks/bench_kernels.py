"""Kernel benchmark: SSIM per frame (scikit-image, our numpy kernel, our numba kernel) on 1 and
2 threads, and the SSIM+PSNR+MSE trio through ``validate_pair`` vs the plain loop, in one run.

    python benchmarks/bench_kernels.py [--frames 300] [--width 480] [--height 270]
                                       [--repeats 5] [--block 10] [--quick]

Parts (each child is a fresh interpreter; frames already decoded in every row):
1. SSIM per frame, luma included (OpenCV-style luma + 7x7 uniform SSIM, GifLab's ``ssim``):
   ``skimage.metrics.structural_similarity`` per frame, ``structural.ssim(backend="numpy")``
   and ``structural.ssim(backend="numba")``, each over all frames in blocks of ``--block``
   frames (as dask chunks arrive), on a pool of 1 and of 2 threads (as dask's threaded
   scheduler runs blocks). Runs are interleaved and repeated; the table shows the median wall
   time per frame (and the fastest run), the ratio to scikit-image and to the fastest kernel,
   and the speed-up of 2 threads over 1. The largest difference between the kernels' values is
   printed too.
2. The trio (``metrics="ssim,psnr,mse"``) through ``validate_pair(..., use_cache=False)`` on
   the default threaded scheduler vs the plain scikit-image loop (as ``bench_metrics.py``),
   once with numba and once with numba blocked (the numpy fallback); median over processes.
   Each giflab process validates the pair twice: the 1st run is what ``bench_metrics.py``
   measures (it includes lazy imports such as dask.array), the 2nd is the steady state.
   numba's import and cache load happen before the timed region (part 3 shows that cost).
3. numba's one-off cost per process: a cold compile (empty ``NUMBA_CACHE_DIR``) and a later
   process loading the compiled kernel from that cache.

The machine may be shared with other work: compare ratios within one run, and read medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif
from bench_metrics import PLAIN, compressed_variant

SSIM_PER_FRAME = """
import os, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from PIL import Image, ImageSequence
from skimage.metrics import structural_similarity
from giflab_dask.kernels import _numba
from giflab_dask.kernels._luma import luma
from giflab_dask.kernels.structural import ssim
def frames(path):
    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
a, b = frames(sys.argv[1]), frames(sys.argv[2])
block, repeats = int(sys.argv[3]), int(sys.argv[4])
n = len(a)
def skimage_ssim(x, y):
    return np.array([structural_similarity(luma(p), luma(q), data_range=255)
                     for p, q in zip(x, y)])
impls = {
    "skimage": skimage_ssim,
    "numpy": lambda x, y: ssim(x, y, backend="numpy"),
}
t0 = time.perf_counter()
if _numba.load() is not None:
    impls["numba"] = lambda x, y: ssim(x, y, backend="numba")
numba_load_s = time.perf_counter() - t0
blocks = [(a[i:i + block], b[i:i + block]) for i in range(0, n, block)]
pools = {1: ThreadPoolExecutor(1), 2: ThreadPoolExecutor(2)}
for f in impls.values():  # warm-up: first-call costs stay out of the timings
    f(*blocks[0])
times = {f"{name}/{k}": [] for name in impls for k in pools}
cpu = {key: [] for key in times}
values = {}
for _ in range(repeats):
    for name, f in impls.items():
        for k, pool in pools.items():
            t0, c0 = time.perf_counter(), time.process_time()
            parts = list(pool.map(lambda ab, f=f: f(*ab), blocks))
            times[f"{name}/{k}"].append(time.perf_counter() - t0)
            cpu[f"{name}/{k}"].append(time.process_time() - c0)
            values[name] = np.concatenate(parts)
diffs = {f"{x} vs {y}": float(np.abs(values[x] - values[y]).max())
         for x, y in (("numba", "numpy"), ("numpy", "skimage"), ("numba", "skimage"))
         if x in values and y in values}
result = {"frames": n, "times": times, "cpu": cpu, "diffs": diffs, "numba_load_s": numba_load_s,
          "numba": "numba" in impls, "loadavg": os.getloadavg()}
"""

TRIO = """
import time, dask
if sys.argv[4] == "numpy":
    sys.modules["numba"] = None  # as if numba were not installed: the numpy fallback
dask.config.set({"giflab.cache-dir": sys.argv[3]})
from giflab_dask.framestore import decode_gif
from giflab_dask.kernels import _numba
from giflab_dask.pipeline import validate_pair
a, b = decode_gif(sys.argv[1]), decode_gif(sys.argv[2])  # frames in the store, like the lists
uses_numba = _numba.load() is not None  # import + cache load, outside the timed region
base = _rss_mib()
seconds = []
for _ in range(2):  # the 1st run in a process also pays one-off lazy imports (dask.array, ...)
    t0 = time.perf_counter()
    r = validate_pair(sys.argv[1], sys.argv[2], metrics="ssim,psnr,mse", use_cache=False)
    seconds.append(time.perf_counter() - t0)
result = {"frames": a.n_frames, "seconds": seconds[0], "seconds_2nd": seconds[1],
          "base_rss_mib": base, "missing": r.missing, "ssim_mean": r.summaries.get("ssim_mean"),
          "uses_numba": uses_numba}
"""

FIRST_CALL = """
import time
import numpy as np
t0 = time.perf_counter()
import numba
import_s = time.perf_counter() - t0
from giflab_dask.kernels import _numba
from giflab_dask.kernels.structural import ssim
t0 = time.perf_counter()
_numba.load()
load_s = time.perf_counter() - t0
x = np.zeros((1, 16, 16, 3), np.uint8)
t0 = time.perf_counter()
ssim(x, x, backend="numba")
call_s = time.perf_counter() - t0
result = {"import_s": import_s, "load_s": load_s, "first_call_s": call_s}
"""


def _median(values: list[float]) -> float:
    return statistics.median(values)


def ssim_table(res: dict, frames: int) -> None:
    times = res["times"]
    names = [n for n in ("skimage", "numpy", "numba") if f"{n}/1" in times]
    per_frame = {key: 1e3 * _median(v) / frames for key, v in times.items()}
    fastest = min(per_frame.values())
    label = {
        "skimage": "skimage structural_similarity",
        "numpy": "giflab ssim, numpy kernel",
        "numba": "giflab ssim, numba kernel",
    }
    print(
        f"SSIM per frame (luma included), {frames} frames, median of {len(times[names[0] + '/1'])}"
    )
    print(
        f"{'implementation':<32}{'threads':>8}{'ms/frame':>10}{'best':>8}{'cpu ms':>8}"
        f"{'frames/s':>10}{'x skimage':>11}{'/ fastest':>11}{'2T speed-up':>13}"
    )
    for name in names:
        for k in (1, 2):
            key = f"{name}/{k}"
            ms = per_frame[key]
            best = 1e3 * min(times[key]) / frames
            cpu_ms = 1e3 * _median(res["cpu"][key]) / frames
            speedup = per_frame[f"{name}/1"] / ms if k == 2 else float("nan")
            print(
                f"{label[name]:<32}{k:>8}{ms:>10.3f}{best:>8.3f}{cpu_ms:>8.3f}{1e3 / ms:>10.0f}"
                f"{per_frame[f'skimage/{k}'] / ms:>11.2f}{ms / fastest:>11.2f}"
                + (f"{speedup:>13.2f}" if k == 2 else f"{'':>13}")
            )
    if not res["numba"]:
        print("    numba not installed: pip install 'giflab-dask[numba]' for the numba row")
    for pair, diff in res["diffs"].items():
        print(f"    max |difference| {pair}: {diff:.2e}")
    print("    ms/frame: wall time, median; best: fastest run; cpu ms: CPU time of all threads")
    load = ", ".join(f"{x:.1f}" for x in res["loadavg"])
    print(f"    load average at start: {load} (on {os.cpu_count()} CPUs)")


def trio_table(rows: list[tuple[str, list[dict]]]) -> None:
    def fps(runs: list[dict], key: str) -> float:
        return _median([r["frames"] / r[key] for r in runs if key in r])

    base = fps(rows[0][1], "seconds")
    print(f"\nSSIM+PSNR+MSE trio, median of {len(rows[0][1])} processes each")
    print(
        f"{'run':<44}{'frames/s':>10}{'x plain':>9}{'2nd run f/s':>13}{'x plain':>9}"
        f"{'peak RSS MiB':>14}"
    )
    for name, runs in rows:
        first = fps(runs, "seconds")
        rss = max(r["peak_rss_mib"] for r in runs)
        if "seconds_2nd" in runs[0]:
            second = fps(runs, "seconds_2nd")
            again = f"{second:>13.1f}{second / base:>9.2f}"
        else:
            again = f"{'-':>13}{'-':>9}"
        print(f"{name:<44}{first:>10.1f}{first / base:>9.2f}{again}{rss:>14.0f}")
        missing = runs[-1].get("missing")
        if missing:
            print(f"    missing: {missing}")
    print("    2nd run: the same pair again in the same process (steady state, no lazy imports)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--repeats", type=int, default=5, help="runs per row (medians)")
    parser.add_argument("--block", type=int, default=10, help="frames per block (dask chunk)")
    parser.add_argument("--quick", action="store_true", help="60 frames, fewer repeats")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.repeats = min(args.frames, 60), min(args.repeats, 3)
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp:
        original = synthetic_gif(Path(tmp) / "o.gif", args.frames, args.width, args.height)
        compressed = compressed_variant(original, Path(tmp) / "c.gif")
        o, c = str(original), str(compressed)
        print(f"pair: {args.frames} frames {args.width}x{args.height}, blocks of {args.block}\n")

        res = run_child(SSIM_PER_FRAME, o, c, str(args.block), str(args.repeats))
        ssim_table(res, res["frames"])

        trio_repeats = 1 if args.quick else max(1, min(args.repeats, 3))
        cache = str(Path(tmp) / "cache")
        plain, fast, fallback = [], [], []
        for _ in range(trio_repeats):  # interleaved, so background load hits every row alike
            plain.append(run_child(PLAIN, o, c))
            fast.append(run_child(TRIO, o, c, cache, "auto"))
            fallback.append(run_child(TRIO, o, c, cache, "numpy"))
        rows = [("plain loop (skimage SSIM+PSNR+MSE)", plain)]
        label = "giflab trio, numba kernel" if fast[0]["uses_numba"] else "giflab trio (no numba)"
        rows.append((label, fast))
        rows.append(("giflab trio, numpy kernel (numba blocked)", fallback))
        trio_table(rows)

        if res["numba"]:
            env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba-cache")}
            cold = run_child(FIRST_CALL, env=env)
            warm = run_child(FIRST_CALL, env=env)
            print("\nnumba one-off cost per process (s): import numba / compile or load / 1st call")
            for name, r in (("cold (compile, empty cache)", cold), ("later process (cache)", warm)):
                print(
                    f"{name:<30}{r['import_s']:>8.2f}{r['load_s']:>8.2f}{r['first_call_s']:>8.3f}"
                )


if __name__ == "__main__":
    main()
