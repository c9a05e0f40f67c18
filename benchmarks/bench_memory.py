"""Memory benchmark: a 2000-frame 1280x720 pair validated with flat memory.

    python benchmarks/bench_memory.py [--frames 2000] [--small 200] [--width 1280 --height 720]

Builds an original and a compressed variant (palette cut to 64 colours) as Pillow-encoded GIFs,
then, each in its own child process, validates the pair (SSIM+PSNR+MSE, default threaded
scheduler, decode included) at ``--small`` and at ``--frames`` frames and reports peak RSS
(VmHWM); and holds all frames of both GIFs in lists (the plain approach) at ``--small`` frames,
extrapolating that to ``--frames`` (it cannot fit at full size).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import run_child


def make_pair(root: Path, n: int, width: int, height: int) -> tuple[Path, Path]:
    """Index frames drawn in numpy, encoded by Pillow's C encoder (fast at any size)."""
    from PIL import Image

    original, compressed = root / f"o{n}.gif", root / f"c{n}.gif"
    if original.exists() and compressed.exists():
        return original, compressed
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx // 8 + yy // 8) % 256).astype(np.uint8)

    def frames(levels: int):
        for i in range(n):
            idx = np.roll(base, i * 3, axis=1).copy()
            y0 = (i * 5) % max(1, height - 64)
            idx[y0 : y0 + 64, (i * 7) % max(1, width - 96) :][:, :96] = (i * 11) % 256
            if levels < 256:
                idx = idx // (256 // levels) * (256 // levels)
            im = Image.fromarray(idx, mode="P")
            im.putpalette(palette.tobytes())
            yield im

    for path, levels in ((original, 256), (compressed, 64)):
        it = frames(levels)
        first = next(it)
        first.save(path, save_all=True, append_images=it, duration=40, loop=0)
    return original, compressed


GIFLAB = """
import time, dask
dask.config.set({"giflab.cache-dir": sys.argv[3]})
from giflab_dask.pipeline import validate_pair
base = _rss_mib()
t0 = time.perf_counter()
r = validate_pair(sys.argv[1], sys.argv[2], metrics="ssim,psnr,mse", use_cache=False)
result = {"seconds": time.perf_counter() - t0, "base_rss_mib": base,
          "frames": int(r.summaries["original_frames"]), "ssim_mean": r.summaries["ssim_mean"]}
"""

PLAIN = """
import time
import numpy as np
from PIL import Image, ImageSequence
base = _rss_mib()
t0 = time.perf_counter()
def frames(path):
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
a, b = frames(sys.argv[1]), frames(sys.argv[2])
result = {"seconds": time.perf_counter() - t0, "base_rss_mib": base, "frames": len(a)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="giflab-mem-") as tmp:
        root = Path(tmp)
        rows = []
        for n in (args.small, args.frames):
            o, c = make_pair(root, n, args.width, args.height)
            rows.append(
                (
                    f"giflab validate_pair, {n} frames",
                    run_child(GIFLAB, str(o), str(c), str(root / f"cache{n}")),
                )
            )
        o, c = make_pair(root, args.small, args.width, args.height)
        plain = run_child(PLAIN, str(o), str(c))
    frame_mib = args.width * args.height * 3 / 2**20
    both_gib = 2 * args.frames * frame_mib / 1024
    print(f"pair: {args.width}x{args.height}; one decoded frame {frame_mib:.2f} MiB; "
          f"{args.frames} frames of both GIFs = {both_gib:.1f} GiB")  # fmt: skip
    print(f"{'run':<40}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, r in rows:
        print(f"{name:<40}{r['seconds']:>9.1f}{r['peak_rss_mib']:>14.0f}")
    print(f"{'plain lists, ' + str(args.small) + ' frames':<40}{plain['seconds']:>9.1f}"
          f"{plain['peak_rss_mib']:>14.0f}")  # fmt: skip
    per_frame = (plain["peak_rss_mib"] - plain["base_rss_mib"]) / args.small
    print(
        f"plain lists extrapolated to {args.frames} frames: "
        f"{(plain['base_rss_mib'] + per_frame * args.frames) / 1024:.1f} GiB"
    )
    small, large = rows[0][1]["peak_rss_mib"], rows[1][1]["peak_rss_mib"]
    print(
        f"giflab peak RSS {args.frames} / {args.small} frames: {large / small:.2f} "
        f"(target <= 1.3); {args.frames} frames: {large / 1024:.2f} GiB (target < 1.5)"
    )


if __name__ == "__main__":
    main()
