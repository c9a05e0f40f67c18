"""MS-SSIM, Gaussian SSIM, ΔE2000 and banding per frame: the numpy path against the numba path,
one thread, in one run.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_colour_kernels.py \
        [--frames 10] [--sizes 480x270,1280x720] [--repeats 5]

The pair: ``_common.synthetic_gif`` (gradient background, moving boxes) and its 32-colour
requantised copy (``bench_metrics.compressed_variant``), decoded with Pillow. Each kernel runs
over the whole block of frames (as a dask chunk arrives), both backends interleaved and
repeated; the table shows the median (and fastest) CPU time per frame, the ratio, and the
largest difference between the two backends' values (0 means bit for bit). numba's compile or
cache load happens before the timed region.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import synthetic_gif
from bench_metrics import compressed_variant


def _frames(path: Path) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--sizes", default="480x270,1280x720")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from giflab_dask.kernels import colour, structural

    kernels = {
        "ms_ssim": structural.ms_ssim,
        "ssim-gaussian": lambda a, b, backend: structural.ssim(
            a, b, gaussian=True, backend=backend
        ),
        "deltae": colour.deltae,
        "banding": colour.banding,
    }
    print(
        f"{'size':>9} {'kernel':14} {'numpy ms/frame':>18} {'numba ms/frame':>18} ratio  max diff"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            original = synthetic_gif(Path(tmp, f"o{size}.gif"), args.frames, w, h)
            a = _frames(original)
            b = _frames(compressed_variant(original, Path(tmp, f"c{size}.gif")))
            for name, kernel in kernels.items():
                values = {k: kernel(a[:1], b[:1], backend=k) for k in ("numpy", "numba")}
                times: dict[str, list[float]] = {"numpy": [], "numba": []}
                for _ in range(args.repeats):
                    for k in times:
                        t0 = time.process_time()
                        values[k] = kernel(a, b, backend=k)
                        times[k].append((time.process_time() - t0) / len(a) * 1e3)
                med = {k: statistics.median(v) for k, v in times.items()}
                diff = np.nanmax(np.abs(values["numba"] - values["numpy"]), initial=0.0)
                cells = [f"{med[k]:8.2f} ({min(times[k]):6.2f})" for k in ("numpy", "numba")]
                ratio = med["numpy"] / med["numba"]
                print(f"{size:>9} {name:14} {cells[0]:>18} {cells[1]:>18} {ratio:5.1f}x {diff:.1e}")


if __name__ == "__main__":
    main()
