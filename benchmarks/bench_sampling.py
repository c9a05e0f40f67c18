"""Sampling benchmark: full-frame vs sampled runs of the batch benchmark's batch, side by side.

    python benchmarks/bench_sampling.py [--quick] [--sample 30] [--metrics ssim,psnr,...]

The batch of ``bench_batch.py`` (8 originals x 5 Pillow-made variants; ``--quick``: smaller
GIFs and N=15). Every GIF is decoded into the frame store first (its own child process), so the
runs compare the work sampling changes: reading, aligning and measuring frames. Then, each in
its own child process with its own result store: the full-frame run, and one sampled run per
strategy (uniform, keyframes, adaptive). For every pair and metric output the sampled run's
95% interval for the mean is checked against the full-frame mean: the share of intervals that
cover it is printed with the time ratio sampled / full and the frames measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import run_child
from bench_batch import make_batch

DECODE = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.framestore import open_frame_store
from giflab_dask.inputs import read_manifest
store = open_frame_store()
t0 = time.perf_counter()
paths = sorted({p for pair in read_manifest(sys.argv[1]) for p in (pair.original, pair.compressed)})
for path in paths:
    store.ensure(path)
result = {"seconds": time.perf_counter() - t0, "gifs": len(paths)}
"""

RUN = """
import json, math, time, dask
dask.config.set({"giflab.cache-dir": sys.argv[2], "giflab.results.root": sys.argv[3]})
from giflab_dask.inputs import read_manifest
from giflab_dask.metrics import resolve_metrics
from giflab_dask.pipeline import validate_batch
from giflab_dask.sampling import SampleSpec
pairs = read_manifest(sys.argv[1])
metrics = sys.argv[4]
sample = None if sys.argv[5] == "full" else SampleSpec(int(sys.argv[6]), sys.argv[5])
t0 = time.perf_counter()
r = validate_batch(pairs, metrics=metrics, sample=sample)
elapsed = time.perf_counter() - t0
outputs = [o for s in resolve_metrics(metrics) for o in s.outputs]
rows, measured, total = [], 0, 0
for o in r.outcomes:
    s = o.result.summaries
    total += int(s["original_frames"])
    measured += int(s.get("sampled_frames", s["original_frames"]))
    rows.append({k: s.get(k) for out in outputs
                 for k in (f"{out}_mean", f"{out}_mean_ci_low", f"{out}_mean_ci_high")})
result = {"seconds": elapsed, "rows": rows, "measured": measured, "frames": total,
          "errors": r.counts()["error"], "outputs": outputs}
"""


def coverage(full: dict, sampled: dict) -> tuple[int, int, float, list[str]]:  # type: ignore[type-arg]
    """(covered, intervals, median half-width / |full mean|, the misses)."""
    covered, n, widths, misses = 0, 0, [], []
    for k, (f, s) in enumerate(zip(full["rows"], sampled["rows"], strict=True)):
        for out in full["outputs"]:
            truth, low, high = f[f"{out}_mean"], s[f"{out}_mean_ci_low"], s[f"{out}_mean_ci_high"]
            if truth is None or low is None or high is None:
                continue
            if truth != truth or low != low or high != high:  # NaN: nothing measured
                continue
            n += 1
            if low - 1e-12 <= truth <= high + 1e-12:
                covered += 1
            else:
                misses.append(f"pair {k} {out}: {truth:.5g} not in [{low:.5g}, {high:.5g}]")
            if truth:
                widths.append((high - low) / 2 / abs(truth))
    widths.sort()
    return covered, n, widths[len(widths) // 2] if widths else float("nan"), misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller GIFs, N=15")
    parser.add_argument("--sample", type=int, help="frames per pair (default 30; quick: 15)")
    parser.add_argument(
        "--metrics",
        default="ssim,psnr,mse,gmsd,temporal_consistency",
        help="metrics of every run (default: %(default)s)",
    )
    args = parser.parse_args()
    n = args.sample or (15 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="giflab-sampling-") as tmp:
        manifest = make_batch(Path(tmp) / "data", args.quick)
        cache = str(Path(tmp) / "cache")
        decode = run_child(DECODE, str(manifest), cache)
        runs = {}
        for name in ("full", "uniform", "keyframes", "adaptive"):
            root = str(Path(tmp) / f"results-{name}")
            runs[name] = run_child(RUN, str(manifest), cache, root, args.metrics, name, str(n))
    full = runs["full"]
    print(
        f"batch: {len(full['rows'])} pairs, {full['frames']} original frames, metrics "
        f"{args.metrics}; frames decoded beforehand ({decode['gifs']} GIFs, "
        f"{decode['seconds']:.1f} s)"
    )
    print(
        f"{'run':<22}{'seconds':>9}{'x full':>8}{'frames':>8}{'CI covers full':>18}"
        f"{'half-width':>12}{'peak MiB':>10}"
    )
    summary = {}
    for name, r in runs.items():
        if name == "full":
            cells = f"{'':>18}{'':>12}"
        else:
            covered, total, width, misses = coverage(full, r)
            summary[name] = {"covered": covered, "intervals": total, "misses": misses}
            cells = f"{f'{covered}/{total} ({covered / total:.1%})':>18}{width:>12.2%}"
        label = name if name == "full" else f"{name} N={n}"
        print(
            f"{label:<22}{r['seconds']:>9.2f}{r['seconds'] / full['seconds']:>8.3f}"
            f"{r['measured']:>8}{cells}{r['peak_rss_mib']:>10.0f}"
        )
    print(
        "(half-width: median over pairs and outputs of the 95% interval's half-width / "
        "|full-frame mean|)"
    )
    for name, s in summary.items():
        for miss in s["misses"][:5]:
            print(f"  {name} miss: {miss}")
    end_to_end = {
        name: (decode["seconds"] + r["seconds"]) / (decode["seconds"] + full["seconds"])
        for name, r in runs.items()
        if name != "full"
    }
    print("with decoding included, sampled / full: " + json.dumps(
        {k: round(v, 3) for k, v in end_to_end.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
