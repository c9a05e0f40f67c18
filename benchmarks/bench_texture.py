"""Texture, edge, chist, sharpness and temporal kernels: ms per frame on one thread.

    OMP_NUM_THREADS=1 python benchmarks/bench_texture.py [--frames 4] [--rounds 9]
        [--baseline-texture OLD_TEXTURE.py] [--baseline-temporal OLD_TEMPORAL.py]

scikit-image's bundled photos (astronaut, coffee, chelsea, rocket: one per frame) at 480x270
and at 1280x720 against their 16-colour palette copies. Each kernel runs with
``backend="numpy"`` and ``backend="numba"`` on the same block in interleaved rounds; the table
gives the per-frame CPU time of the fastest round (``time.process_time``: on a shared machine
the time the process was not scheduled is not counted), the ratio to the first row of the
metric and the largest difference from that row's values. The ``--baseline-*`` options add
the kernels of other copies of ``texture.py`` / ``temporal.py`` (e.g. ``git show
REV:giflab_dask/kernels/texture.py > /tmp/old_texture.py``), timed in the same rounds. The
last rows run the five kernels together inside one ``shared_conversions`` block, as
``metrics.measure_block`` does (luma once per frame).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time
from collections.abc import Callable
from types import ModuleType

import numpy as np
import skimage.data
from PIL import Image

from giflab_dask.kernels import temporal, texture
from giflab_dask.kernels._frames import shared_conversions

METRICS = ("texture_similarity", "edge_similarity", "chist", "sharpness_similarity")
PARAMS: dict[str, dict[str, int]] = {
    "edge_similarity": {"low_threshold": 50, "high_threshold": 150},
    "chist": {"bins": 32},
}


def _pair(width: int, height: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    photos.append(skimage.data.rocket())
    ref, dis = [], []
    for i in range(frames):
        photo = Image.fromarray(photos[i % len(photos)]).resize(
            (width, height), Image.Resampling.BOX
        )
        ref.append(np.asarray(photo))
        dis.append(np.asarray(photo.quantize(colors=16).convert("RGB")))
    return np.stack(ref), np.stack(dis)


def _load(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernels(old_texture: str | None, old_temporal: str | None) -> dict[str, Callable]:
    """Rows ``"<metric> <variant>"``; a temporal row gets the block with its previous frame."""
    old = _load(old_texture, "baseline_texture") if old_texture else None
    rows: dict[str, Callable] = {}
    for metric in METRICS:
        params = PARAMS.get(metric, {})
        if old is not None:
            rows[f"{metric} baseline"] = functools.partial(getattr(old, metric), **params)
        for backend in ("numpy", "numba"):
            kernel = getattr(texture, metric)
            rows[f"{metric} {backend}"] = functools.partial(kernel, backend=backend, **params)
    if old_temporal:
        rows["temporal_consistency baseline"] = _load(
            old_temporal, "baseline_temporal"
        ).temporal_consistency
    for backend in ("numpy", "numba"):
        rows[f"temporal_consistency {backend}"] = lambda a, b, k=backend: (
            temporal.temporal_consistency(a, b, backend=k)
        )
    return rows


def _together(rows: dict[str, Callable], variant: str) -> Callable:
    """The five kernels of one variant on one block, as measure_block runs them."""

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with shared_conversions():
            values = [rows[f"{metric} {variant}"](a[1:], b[1:]) for metric in METRICS]
            values.append(rows[f"temporal_consistency {variant}"](a, b).ravel())
        return np.concatenate(values)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--baseline-texture", help="another texture.py to time side by side")
    parser.add_argument("--baseline-temporal", help="another temporal.py to time side by side")
    args = parser.parse_args()
    rows = _kernels(args.baseline_texture, args.baseline_temporal)
    variants = ["baseline"] if args.baseline_texture and args.baseline_temporal else []
    for variant in [*variants, "numpy", "numba"]:
        rows[f"all five {variant}"] = _together(rows, variant)
    for width, height in ((480, 270), (1280, 720)):
        # one extra leading frame: the temporal kernel's previous frame
        a, b = _pair(width, height, args.frames + 1)
        inputs = {n: (a, b) if n.startswith(("temporal", "all")) else (a[1:], b[1:]) for n in rows}
        values = {n: np.asarray(k(*inputs[n]), dtype=np.float64) for n, k in rows.items()}
        best = dict.fromkeys(rows, float("inf"))
        for _ in range(args.rounds):
            for name, kernel in rows.items():
                start = time.process_time()
                kernel(*inputs[name])
                best[name] = min(best[name], (time.process_time() - start) / args.frames * 1e3)
        print(f"\n{width}x{height}, {args.frames} frame pairs, fastest of {args.rounds} rounds")
        print("| kernel | ms/frame | x first row | max abs diff from first row |")
        print("| --- | --- | --- | --- |")
        first: dict[str, str] = {}
        for name in rows:
            base = first.setdefault(name.rsplit(" ", 1)[0], name)
            diff = np.nanmax(np.abs(values[name] - values[base]))
            print(f"| {name} | {best[name]:.2f} | {best[base] / best[name]:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
