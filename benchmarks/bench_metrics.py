"""Metric engine benchmark: a 300-frame 480x270 pair, side by side with GifLab's plain loop.

    python benchmarks/bench_metrics.py [--frames 300] [--width 480] [--height 270]

Rows (each in its own child process, frames already decoded in both cases):
* plain loop: frames held in lists, scikit-image SSIM on OpenCV-style luma, PSNR and MSE per
  frame (the way GifLab computes them);
* giflab trio: ``validate_pair(metrics="ssim,psnr,mse")`` on the default threaded scheduler;
* giflab all: every default metric.
Prints frames/s, the ratio to the plain loop, and peak RSS.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif

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
base = _rss_mib()
t0 = time.perf_counter()
metrics = sys.argv[4] if sys.argv[4] != "all" else None
r = validate_pair(sys.argv[1], sys.argv[2], metrics=metrics, use_cache=False)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--skip-all", action="store_true", help="only the trio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="giflab-bench-") as tmp:
        original = synthetic_gif(Path(tmp) / "o.gif", args.frames, args.width, args.height)
        compressed = compressed_variant(original, Path(tmp) / "c.gif")
        cache = str(Path(tmp) / "cache")
        rows = [
            ("plain loop (skimage SSIM+PSNR+MSE)", run_child(PLAIN, str(original), str(compressed)))
        ]
        rows.append(
            (
                "giflab trio (ssim,psnr,mse)",
                run_child(GIFLAB, str(original), str(compressed), cache, "ssim,psnr,mse"),
            )
        )
        if not args.skip_all:
            rows.append(
                (
                    "giflab all default metrics",
                    run_child(GIFLAB, str(original), str(compressed), cache, "all"),
                )
            )
    base_fps = rows[0][1]["frames"] / rows[0][1]["seconds"]
    print(f"pair: {args.frames} frames {args.width}x{args.height}")
    print(f"{'run':<38}{'frames/s':>10}{'x plain':>9}{'peak RSS MiB':>14}")
    for name, r in rows:
        fps = r["frames"] / r["seconds"]
        print(f"{name:<38}{fps:>10.1f}{fps / base_fps:>9.2f}{r['peak_rss_mib']:>14.0f}")
        if r.get("missing"):
            print(f"    missing: {r['missing']}")


if __name__ == "__main__":
    main()
