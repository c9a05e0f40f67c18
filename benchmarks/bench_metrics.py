"""Metric engine benchmark: per-metric cost beside references, and the engine beside GifLab's loop.

    python benchmarks/bench_metrics.py [--frames 300] [--width 480] [--height 270]
                                       [--skip-all] [--skip-kernels] [--skip-engine]
                                       [--baseline OLD_CHECKOUT [--baseline-env KEY=VALUE]]

Part 1, per metric (one child process per frame size, one thread: ``OMP_NUM_THREADS``,
``NUMBA_NUM_THREADS`` and scipy's FFT workers at 1): ms per frame of every default metric's
kernel at 480x270 and 1280x720, beside the fastest reference implementation available here
for the same definition (scikit-image, OpenCV, or the eager transcriptions of the authors'
code kept in the tests), then the default set's total (frames/s), its cost over the
SSIM+PSNR+MSE trio, and FSIM over SSIM+MS-SSIM.

Part 2, the engine (each row in its own child process, frames already decoded in both cases):
* plain loop: frames held in lists, scikit-image SSIM on OpenCV-style luma, PSNR and MSE per
  frame (the way GifLab computes them);
* giflab trio: ``validate_pair(metrics="ssim,psnr,mse")`` on the default threaded scheduler;
* giflab all: every default metric, on the threaded scheduler (all cores) and on one thread.
Prints frames/s, the ratio to the plain loop, and peak RSS.

``--baseline OLD_CHECKOUT`` (a clone or worktree of an earlier commit) times that code in the
same run: a "before" column per size in part 1 and "before" rows in part 2, each child with
the old checkout first on its path; ``--baseline-env`` sets variables for those children only
(e.g. ``DASK_GIFLAB__KERNELS__NUMBA=off``: what a default install without numba ran).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif

ONE_THREAD = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
OPT_IN = ["ssimulacra2"]  # opt-in metrics timed after the default set, not in its total

# Runs in a child: times each default kernel and a reference of the same definition on the
# same frames, after one warm-up call (numba's cache load, FFT plans, filter banks).
KERNELS = (
    f"OPT_IN = {OPT_IN!r}\n"
    + """
import os, time
import numpy as np
sys.path.insert(0, sys.argv[3])  # the repository root: tests/ holds the eager references
from PIL import Image, ImageSequence
from giflab_dask.metrics import BoundMetric, resolve_metrics

def frames(path, n):
    with Image.open(path) as im:
        out = [np.asarray(f.convert("RGB")) for _, f in zip(range(n), ImageSequence.Iterator(im))]
    return np.stack(out)

n = int(sys.argv[4])
a, b = frames(sys.argv[1], n), frames(sys.argv[2], n)

def best_of(func, rounds=3):
    func()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)

def per_frame(func, x, y):
    return [func(x[i], y[i]) for i in range(len(x))]

refs = {}
try:
    import cv2
    cv2.setNumThreads(1)
except ImportError:
    cv2 = None
from skimage.metrics import structural_similarity, mean_squared_error
from skimage import color as skcolor
from skimage.feature import local_binary_pattern

def luma(x):  # OpenCV's RGB2GRAY
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) if cv2 is not None else (
        (x[..., 0] * 4899 + x[..., 1] * 9617 + x[..., 2] * 1868 + 8192) >> 14).astype(np.uint8)

refs["mse"] = ("skimage mean_squared_error", lambda x, y: mean_squared_error(x, y))
refs["ssim"] = ("skimage structural_similarity",
                lambda x, y: structural_similarity(luma(x), luma(y), data_range=255))
refs["deltae"] = ("skimage rgb2lab + deltaE_ciede2000",
                  lambda x, y: skcolor.deltaE_ciede2000(skcolor.rgb2lab(x), skcolor.rgb2lab(y)))
refs["texture_similarity"] = ("skimage local_binary_pattern x2",
                              lambda x, y: [local_binary_pattern(luma(f), 8, 1, "uniform")
                                            for f in (x, y)])
if cv2 is not None:
    refs["psnr"] = ("cv2.PSNR", lambda x, y: cv2.PSNR(x, y))
    refs["edge_similarity"] = ("cv2.Canny x2", lambda x, y: [cv2.Canny(luma(f), 50, 150)
                                                              for f in (x, y)])
    refs["sharpness_similarity"] = ("cv2.Laplacian var x2",
                                    lambda x, y: [cv2.Laplacian(luma(f), cv2.CV_64F).var()
                                                  for f in (x, y)])
    refs["chist"] = ("cv2.calcHist + compareHist",
                     lambda x, y: [cv2.compareHist(cv2.calcHist([x], [c], None, [32], [0, 256]),
                                                   cv2.calcHist([y], [c], None, [32], [0, 256]),
                                                   cv2.HISTCMP_CORREL) for c in range(3)])
    refs["temporal_consistency"] = ("cv2.absdiff mean x2",
                                    lambda x, y: [cv2.absdiff(x, y).mean() for _ in range(2)])
try:
    from tests.test_kernels_structural import _ref_ms_ssim
    refs["ms_ssim"] = ("eager MS-SSIM (tests)", lambda x, y: _ref_ms_ssim(luma(x), luma(y)))
    from tests.test_kernels_perceptual import reference_feature_sim, reference_gmsd
    refs["fsim"] = ("FeatureSIM.m transcription (tests)", reference_feature_sim)
    refs["gmsd"] = ("GMSD.m transcription (tests)", reference_gmsd)
except ImportError:  # pytest missing: the test extra is not installed
    pass
try:  # the PyPI port (float64, scipy's Gaussian): reads PNGs, written here outside the timing
    import tempfile
    from ssimulacra2 import compute_ssimulacra2
    pngs = tempfile.mkdtemp()
    def _png(x):
        path = os.path.join(pngs, f"{id(x)}.png")
        if not os.path.exists(path):
            Image.fromarray(x).save(path)
        return path
    refs["ssimulacra2"] = ("ssimulacra2 (PyPI port)",
                           lambda x, y: compute_ssimulacra2(_png(x), _png(y)))
except ImportError:
    pass

rows = []
from giflab_dask.metrics import available_metrics
# (an older checkout, timed for a before/after table, may not have the opt-in metrics)
opt_in = [m for m in OPT_IN if m in available_metrics()]
if sys.argv[5] == "baseline":
    refs = {}  # the references are timed in the current checkout's run
for spec in [*resolve_metrics(None), *resolve_metrics(opt_in)]:
    metric = BoundMetric.of(spec)
    kwargs = {**spec.params, **metric.runtime}
    seconds = best_of(lambda: metric.kernel(a, b, **kwargs))
    t = len(a) - 1 if spec.temporal else len(a)
    ref_name, ref_ms = "", None
    if spec.name in refs:
        ref_name, ref = refs[spec.name]
        m = min(len(a), 2) if spec.name in ("fsim", "gmsd", "ms_ssim", "ssimulacra2") else len(a)
        ref_ms = best_of(lambda: per_frame(ref, a[:m], b[:m]), rounds=1) / m * 1e3
    rows.append({"metric": spec.name, "ms": seconds / t * 1e3, "ref": ref_name, "ref_ms": ref_ms,
                 "opt_in": spec.name in OPT_IN})
backend = BoundMetric.of(resolve_metrics("ssim")[0]).runtime.get("backend")
result = {"rows": rows, "backend": backend}
"""
)

PLAIN = """
import time
import numpy as np
from PIL import Image, ImageSequence
from skimage.metrics import structural_similarity, peak_signal_noise_ratio, mean_squared_error
def frames(path):
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
a, b = frames(sys.argv[1]), frames(sys.argv[2])
base = _rss_mib()
def luma(x):  # OpenCV's fixed-point BT.601 (cv2.cvtColor RGB2GRAY)
    x = x.astype(np.int32)
    return ((x[..., 0] * 4899 + x[..., 1] * 9617 + x[..., 2] * 1868 + 8192) >> 14).astype(np.uint8)
t0 = time.perf_counter()
for fa, fb in zip(a, b):
    structural_similarity(luma(fa), luma(fb), data_range=255)
    peak_signal_noise_ratio(fa, fb, data_range=255) if not np.array_equal(fa, fb) else 100.0
    mean_squared_error(fa, fb)
elapsed = time.perf_counter() - t0
result = {"frames": len(a), "seconds": elapsed, "base_rss_mib": base}
"""

GIFLAB = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[3]})
from giflab_dask.framestore import decode_gif
from giflab_dask.pipeline import validate_pair
a, b = decode_gif(sys.argv[1]), decode_gif(sys.argv[2])  # frames in the store, like the lists
metrics = sys.argv[4] if sys.argv[4] != "all" else None
workers = int(sys.argv[5]) or None
validate_pair(sys.argv[1], sys.argv[2], metrics="ssim", use_cache=False)  # imports, numba load
base = _rss_mib()
t0 = time.perf_counter()
r = validate_pair(sys.argv[1], sys.argv[2], metrics=metrics, use_cache=False,
                  num_workers=workers)
elapsed = time.perf_counter() - t0
result = {"frames": a.n_frames, "seconds": elapsed, "base_rss_mib": base,
          "missing": r.missing, "ssim_mean": r.summaries.get("ssim_mean")}
"""


def compressed_variant(original: Path, out: Path) -> Path:
    """A lossy variant: each frame requantised to 32 colours (as a palette cut would)."""
    from PIL import Image, ImageSequence

    if out.exists():
        return out
    with Image.open(original) as im:
        frames = [
            f.convert("RGB").quantize(32, method=Image.Quantize.FASTOCTREE)
            for f in ImageSequence.Iterator(im)
        ]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out


def baseline_env(args: argparse.Namespace) -> dict[str, str] | None:
    """The environment of the ``--baseline`` children (None without a baseline)."""
    if args.baseline is None:
        return None
    extra = dict(item.split("=", 1) for item in args.baseline_env)
    return {**os.environ, "PYTHONPATH": str(args.baseline), **extra}


def kernel_table(args: argparse.Namespace, tmp: Path) -> None:
    """Part 1: ms per frame per metric at two sizes, one thread, beside references (and the
    baseline checkout's kernels)."""
    env = {**os.environ, **ONE_THREAD}
    root = str(Path(__file__).resolve().parents[1])
    old_env = baseline_env(args)
    sizes = [(480, 270, 8), (1280, 720, 3)]
    results, before = {}, {}
    for w, h, n in sizes:
        original = synthetic_gif(tmp / f"k{w}.gif", n, w, h, seed=1)
        compressed = compressed_variant(original, tmp / f"k{w}c.gif")
        o, c = str(original), str(compressed)
        results[(w, h)] = run_child(KERNELS, o, c, root, str(n), "current", env=env)
        if old_env is not None:
            old = run_child(KERNELS, o, c, str(args.baseline), str(n), "baseline",
                            env={**old_env, **ONE_THREAD})  # fmt: skip
            before[(w, h)] = {r["metric"]: r["ms"] for r in old["rows"]}
    backend = results[(480, 270)]["backend"]
    print(f"per metric, ms per frame, one thread (kernel backend: {backend})")
    head = f"{'metric':<22}"
    for w, h, _ in sizes:
        head += f"{'before':>8}" if before else ""
        head += f"{f'{w}x{h}':>10}{'ref':>10}{'x ref':>8}"
    print(head + "  reference")
    by_size = {size: {r["metric"]: r for r in res["rows"]} for size, res in results.items()}
    names = [r["metric"] for r in results[(480, 270)]["rows"]]
    totals = {size: 0.0 for size in by_size}
    old_totals = {size: 0.0 for size in by_size}
    for name in names:
        line = f"{name:<22}"
        for size, rows in by_size.items():
            r = rows[name]
            totals[size] += 0.0 if r["opt_in"] else r["ms"]
            if before:
                was = before[size].get(name)
                old_totals[size] += 0.0 if was is None or r["opt_in"] else was
                line += f"{was:>8.2f}" if was is not None else f"{'-':>8}"
            ref = f"{r['ref_ms']:>10.2f}{r['ref_ms'] / r['ms']:>8.1f}" if r["ref_ms"] else " " * 18
            line += f"{r['ms']:>10.2f}{ref}"
        opt_in = " (opt-in, not in the total)" if by_size[(480, 270)][name]["opt_in"] else ""
        print(line + f"  {by_size[(480, 270)][name]['ref']}{opt_in}")
    for size, rows in by_size.items():
        trio = sum(rows[m]["ms"] for m in ("ssim", "psnr", "mse"))
        pair = rows["ssim"]["ms"] + rows["ms_ssim"]["ms"]
        was = ""
        if before:
            was = f" (before: {old_totals[size]:.1f} ms = {1e3 / old_totals[size]:.1f} frames/s)"
        print(
            f"{size[0]}x{size[1]}: default set {totals[size]:.1f} ms/frame = "
            f"{1e3 / totals[size]:.1f} frames/s{was}; x trio "
            f"{totals[size] / trio:.1f} (trio {trio:.2f} ms); FSIM / (SSIM+MS-SSIM) "
            f"{rows['fsim']['ms'] / pair:.2f}"
        )


def engine_table(args: argparse.Namespace, tmp: Path) -> None:
    """Part 2: the whole engine on a pair whose frames are already decoded."""
    original = synthetic_gif(tmp / "o.gif", args.frames, args.width, args.height)
    compressed = compressed_variant(original, tmp / "c.gif")
    cache = str(tmp / "cache")
    o, c = str(original), str(compressed)
    rows = [("plain loop (skimage SSIM+PSNR+MSE)", run_child(PLAIN, o, c))]
    trio = run_child(GIFLAB, o, c, cache, "ssim,psnr,mse", "0")
    rows.append(("giflab trio (ssim,psnr,mse)", trio))
    if not args.skip_all:
        rows.append(("giflab all default metrics", run_child(GIFLAB, o, c, cache, "all", "0")))
        rows.append(("giflab all, one thread", run_child(GIFLAB, o, c, cache, "all", "1")))
        old_env = baseline_env(args)
        if old_env is not None:
            old_cache = str(tmp / "old-cache")
            for name, workers in (
                ("before: all default metrics", "0"),
                ("before: all, one thread", "1"),
            ):
                rows.append((name, run_child(GIFLAB, o, c, old_cache, "all", workers, env=old_env)))
    base_fps = rows[0][1]["frames"] / rows[0][1]["seconds"]
    print(f"pair: {args.frames} frames {args.width}x{args.height} (cores: {os.cpu_count()})")
    print(f"{'run':<38}{'frames/s':>10}{'x plain':>9}{'peak RSS MiB':>14}")
    for name, r in rows:
        fps = r["frames"] / r["seconds"]
        print(f"{name:<38}{fps:>10.1f}{fps / base_fps:>9.2f}{r['peak_rss_mib']:>14.0f}")
        if r.get("missing"):
            print(f"    missing: {r['missing']}")
    if not args.skip_all:
        trio, every = rows[1][1], rows[2][1]
        print(f"all / trio time: {every['seconds'] / trio['seconds']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--skip-all", action="store_true", help="engine: only the trio")
    parser.add_argument("--skip-kernels", action="store_true", help="no per-metric table")
    parser.add_argument("--skip-engine", action="store_true", help="only the per-metric table")
    parser.add_argument("--baseline", type=Path, help="an older checkout timed in the same run")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp:
        if not args.skip_kernels:
            kernel_table(args, Path(tmp))
        if not args.skip_engine:
            engine_table(args, Path(tmp))


if __name__ == "__main__":
    main()
