"""Scaling benchmark: time and peak memory against frames per GIF and against pairs per batch.

    python benchmarks/bench_scaling.py [--quick]

* frames: one pair (original + a 64-colour variant, 320x240) at 100, 1000 and 4000 frames,
  validated cold (decode included, SSIM+PSNR+MSE) with ``validate_pair``;
* pairs: batches of 10, 100 and 400 pairs (one original per 5 variants, 24 frames of 160x120),
  validated cold with ``validate_batch``.

Every run is its own child process (peak RSS is its own) and first validates a tiny pair, so
imports and numba's compilation are not counted. Linear time shows as a constant
seconds-per-unit column; flat memory as a peak that does not grow with frames. ``--quick``
runs 50/200/800 frames and 5/20/80 pairs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import run_child, synthetic_gif

PAIR = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[3]})
from giflab_dask.pipeline import validate_pair
validate_pair(sys.argv[4], sys.argv[5], metrics="ssim,psnr,mse", use_cache=False)  # warm-up
base = _rss_mib()
t0 = time.perf_counter()
r = validate_pair(sys.argv[1], sys.argv[2], metrics="ssim,psnr,mse", use_cache=False)
result = {"seconds": time.perf_counter() - t0, "base_rss_mib": base,
          "frames": int(r.summaries["original_frames"])}
"""

BATCH = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.inputs import read_manifest
from giflab_dask.pipeline import validate_batch, validate_pair
validate_pair(sys.argv[3], sys.argv[4], metrics="ssim,psnr,mse", use_cache=False)  # warm-up
pairs = read_manifest(sys.argv[1])
base = _rss_mib()
t0 = time.perf_counter()
r = validate_batch(pairs, metrics="ssim,psnr,mse")
counts = r.counts()
result = {"seconds": time.perf_counter() - t0, "base_rss_mib": base,
          "pairs": len(pairs), "errors": counts["error"]}
"""


def quantized_variant(original: Path, out: Path, colors: int) -> Path:
    """The original's frames cut to ``colors`` colours, written by Pillow."""
    from PIL import Image, ImageSequence

    if out.exists():
        return out
    with Image.open(original) as im:
        frames = [
            f.convert("RGB").quantize(colors, method=Image.Quantize.FASTOCTREE)
            for f in ImageSequence.Iterator(im)
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out


def warm_up_pair(root: Path) -> list[str]:
    original = synthetic_gif(root / "warm" / "o.gif", 6, 64, 48)
    return [str(original), str(quantized_variant(original, root / "warm" / "c.gif", 16))]


def frames_rows(root: Path, counts: list[int]) -> list[tuple[int, dict]]:
    rows = []
    for n in counts:
        original = synthetic_gif(root / f"frames-{n}" / "o.gif", n, 320, 240, seed=n)
        compressed = quantized_variant(original, root / f"frames-{n}" / "c.gif", 64)
        rows.append(
            (
                n,
                run_child(
                    PAIR, str(original), str(compressed), str(root / f"c{n}"), *warm_up_pair(root)
                ),
            )
        )
    return rows


def batch_manifest(root: Path, n_pairs: int) -> Path:
    lines = ["original,compressed"]
    for p in range(n_pairs):
        k = p // 5
        original = synthetic_gif(root / "pairs" / f"o{k}.gif", 24, 160, 120, seed=k)
        variant = root / "pairs" / f"o{k}-v{p % 5}.gif"
        lines.append(f"{original},{quantized_variant(original, variant, 8 * (p % 5 + 2))}")
    manifest = root / f"manifest-{n_pairs}.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def pairs_rows(root: Path, counts: list[int]) -> list[tuple[int, dict]]:
    rows = []
    for n in counts:
        manifest = batch_manifest(root, n)
        rows.append((n, run_child(BATCH, str(manifest), str(root / f"b{n}"), *warm_up_pair(root))))
    return rows


def print_table(title: str, unit: str, rows: list[tuple[int, dict]]) -> None:
    """Seconds, the marginal seconds per 100 units between rows (constant = linear), peak RSS."""
    print(f"\n{title}")
    print(f"{unit:>8}{'seconds':>10}{'marginal s/100':>16}{'peak RSS MiB':>14}")
    marginal = []
    for i, (n, r) in enumerate(rows):
        step = ""
        if i:
            n0, r0 = rows[i - 1]
            marginal.append(100 * (r["seconds"] - r0["seconds"]) / (n - n0))
            step = f"{marginal[-1]:.3f}"
        print(f"{n:>8}{r['seconds']:>10.2f}{step:>16}{r['peak_rss_mib']:>14.0f}")
    (n0, first), (n1, last) = rows[0], rows[-1]
    print(
        f"marginal time per 100 {unit}, last step / first step: "
        f"{marginal[-1] / marginal[0]:.2f} (1.0 = linear); peak RSS {n1} / {n0} {unit}: "
        f"{last['peak_rss_mib'] / first['peak_rss_mib']:.2f} for {n1 / n0:.0f}x the work"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    frame_counts = [50, 200, 800] if args.quick else [100, 1000, 4000]
    pair_counts = [5, 20, 80] if args.quick else [10, 100, 400]
    with tempfile.TemporaryDirectory(prefix="giflab-scaling-") as tmp:
        root = Path(tmp)
        print_table("one pair, 320x240, decode + SSIM/PSNR/MSE", "frames",
                    frames_rows(root, frame_counts))  # fmt: skip
        print_table("batches, 24 frames 160x120 per GIF, 5 variants per original", "pairs",
                    pairs_rows(root, pair_counts))  # fmt: skip


if __name__ == "__main__":
    main()
