"""FSIM / GMSD kernel benchmark: ms per frame on one thread, beside SSIM and MS-SSIM.

    OMP_NUM_THREADS=1 python benchmarks/bench_perceptual.py [--frames 2] [--rounds 10]
        [--baseline OLD_PERCEPTUAL.py]

A natural photograph (scikit-image's ``coffee``) at 480x270 and at 1280x720 (FSIM downsamples
by 3 there) against its 16-colour palette copy. Every kernel runs on the same block in
interleaved rounds; the table gives the per-frame CPU time of the fastest round
(``time.process_time``: on a shared machine the time the process was not scheduled is not
counted; the kernels are single-threaded: scipy.fft ``workers=1``, numba without threads),
the ratio to the first row of its metric, and the largest difference from that row's values.
``--baseline`` adds the ``fsim`` and ``gmsd`` of another copy of ``perceptual.py`` (e.g.
``git show REV:giflab_dask/kernels/perceptual.py > /tmp/old.py``), timed in the same rounds.
The filter bank of a shape is built before the timed rounds, as it is once per process.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import numpy as np
import skimage.data
from PIL import Image

from giflab_dask.kernels.perceptual import fsim, gmsd
from giflab_dask.kernels.structural import ms_ssim, ssim


def _pair(width: int, height: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    photo = Image.fromarray(skimage.data.coffee()).resize((width, height), Image.Resampling.BOX)
    ref = np.asarray(photo)
    dis = np.asarray(photo.quantize(colors=16).convert("RGB"))
    return np.repeat(ref[None], frames, axis=0), np.repeat(dis[None], frames, axis=0)


def _kernels(baseline: str | None) -> dict[str, Callable[..., np.ndarray]]:
    rows: dict[str, Callable[..., np.ndarray]] = {}
    if baseline:
        spec = importlib.util.spec_from_file_location("baseline_perceptual", baseline)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        rows["fsim baseline"] = old.fsim
    rows["fsim numpy"] = lambda a, b: fsim(a, b, backend="numpy")
    rows["fsim numba"] = lambda a, b: fsim(a, b, backend="numba")
    rows["fsimc numba"] = lambda a, b: fsim(a, b, chroma=True, backend="numba")
    if baseline:
        rows["gmsd baseline"] = old.gmsd
    rows["gmsd numpy"] = lambda a, b: gmsd(a, b, backend="numpy")
    rows["gmsd numba"] = lambda a, b: gmsd(a, b, backend="numba")
    rows["ssim numba"] = lambda a, b: ssim(a, b, backend="numba")
    rows["ms_ssim"] = ms_ssim
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--baseline", help="another perceptual.py to time side by side")
    args = parser.parse_args()
    kernels = _kernels(args.baseline)
    for width, height in ((480, 270), (1280, 720)):
        a, b = _pair(width, height, args.frames)
        values = {name: kernel(a, b) for name, kernel in kernels.items()}  # banks, numba load
        best = dict.fromkeys(kernels, float("inf"))
        for _ in range(args.rounds):
            for name, kernel in kernels.items():
                start = time.process_time()
                kernel(a, b)
                best[name] = min(best[name], (time.process_time() - start) / args.frames * 1e3)
        print(f"\n{width}x{height}, {args.frames} frames, fastest of {args.rounds} rounds")
        print("| kernel | ms/frame | x first row | max abs diff from first row |")
        print("| --- | --- | --- | --- |")
        first: dict[str, str] = {}
        for name in kernels:
            base = first.setdefault(name.split()[0], name)
            diff = np.max(np.abs(values[name] - values[base]))
            ratio = best[base] / best[name]
            print(f"| {name} | {best[name]:.2f} | {ratio:.2f} | {diff:.1e} |")
        structural = best["ssim numba"] + best["ms_ssim"]
        print(f"FSIM (numba) / (SSIM + MS-SSIM): {best['fsim numba'] / structural:.2f}")


if __name__ == "__main__":
    main()
