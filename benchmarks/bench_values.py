"""Per-frame values of every default metric on the benchmark pairs: kept, and compared.

    python benchmarks/bench_values.py --save before.npz        # the values of this checkout
    python benchmarks/bench_values.py --against before.npz     # max deviation per metric

Speed work must not move a value: run ``--save`` on the code before a change and
``--against`` after it (or the other way round, from two checkouts). The pairs (made once in
``--dir``): a synthetic 480x270 animation and its 32-colour requantisation, ffmpeg's
``testsrc2`` at 480x270 and its ``gifsicle --lossy=80`` copy (when both tools are installed),
and a photo panning at 1280x720 with a 16-colour copy. Each metric runs on its kernel with
numba (``backend`` auto) and, where the kernel has one, with its numpy path: the two are
compared too.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
from _common import synthetic_gif
from bench_metrics import compressed_variant
from PIL import Image, ImageSequence


def _frames(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def _photo_pan(path: Path, n: int = 6) -> Path:
    import skimage.data

    if path.exists():
        return path
    photo = Image.fromarray(skimage.data.coffee()).resize((1440, 800), Image.Resampling.LANCZOS)
    frames = [photo.crop((20 * i, 10 * i, 20 * i + 1280, 10 * i + 720)) for i in range(n)]
    quantized = [f.quantize(255, method=Image.Quantize.MEDIANCUT) for f in frames]
    quantized[0].save(path, save_all=True, append_images=quantized[1:], duration=50, loop=0)
    return path


def _requantised(path: Path, out: Path, colours: int) -> Path:
    if out.exists():
        return out
    frames = [f.convert("RGB").quantize(colours) for f in ImageSequence.Iterator(Image.open(path))]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return out


def pairs(where: Path) -> dict[str, tuple[Path, Path]]:
    where.mkdir(parents=True, exist_ok=True)
    made = {}
    o = synthetic_gif(where / "synthetic.gif", 40, 480, 270, seed=5)
    made["synthetic-480x270"] = (o, compressed_variant(o, where / "synthetic-32.gif"))
    ffmpeg, gifsicle = shutil.which("ffmpeg"), shutil.which("gifsicle")
    if ffmpeg and gifsicle:
        src = where / "testsrc2.gif"
        if not src.exists():
            subprocess.run(
                [ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=480x270:rate=10:duration=3", "-y", str(src)],
                check=True,
            )  # fmt: skip
        lossy = where / "testsrc2-lossy80.gif"
        if not lossy.exists():
            subprocess.run([gifsicle, "--lossy=80", "-o", str(lossy), str(src)], check=True)
        made["testsrc2-480x270"] = (src, lossy)
    p = _photo_pan(where / "photo.gif")
    made["photo-1280x720"] = (p, _requantised(p, where / "photo-16.gif", 16))
    return made


def values(made: dict[str, tuple[Path, Path]]) -> dict[str, np.ndarray]:
    """``{"<pair>/<metric>/<backend>": (T, k) values}``."""
    import inspect

    from giflab_dask.metrics import _temporal_values, resolve_metrics

    out = {}
    for name, (o, c) in made.items():
        a, b = _frames(o), _frames(c)
        for spec in resolve_metrics(None):
            kernel = spec.resolve_kernel()
            backends = ["auto"]
            if "backend" in inspect.signature(kernel).parameters:
                backends.append("numpy")
            for backend in backends:
                runtime = {"backend": backend} if backend != "auto" or len(backends) > 1 else {}
                if spec.temporal:
                    v = _temporal_values(a, b, spec, kernel, runtime, first=True)
                else:
                    v = kernel(a, b, **spec.params, **runtime)
                out[f"{name}/{spec.name}/{backend}"] = np.asarray(v, np.float64).reshape(len(a), -1)
    return out


def deviation(x: np.ndarray, y: np.ndarray) -> float:
    if x.shape != y.shape:
        return float("inf")
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        return float("inf")
    both = ~np.isnan(x)
    return float(np.max(np.abs(x[both] - y[both]), initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/giflab-bench-values"))
    parser.add_argument("--save", type=Path)
    parser.add_argument("--against", type=Path)
    args = parser.parse_args()
    now = values(pairs(args.dir))
    if args.save:
        np.savez_compressed(args.save, **now)
        print(f"saved {len(now)} vectors to {args.save}")
    metrics = sorted({k.split("/")[1] for k in now})
    print(f"{'metric':<22}{'numba vs numpy':>16}" + (f"{'vs saved':>12}" if args.against else ""))
    saved = dict(np.load(args.against)) if args.against else {}
    for metric in metrics:
        keys = [k for k in now if k.split("/")[1] == metric]
        within = [
            deviation(now[k], now[k.replace("/auto", "/numpy")])
            for k in keys
            if k.endswith("/auto") and k.replace("/auto", "/numpy") in now
        ]
        line = f"{metric:<22}{(f'{max(within):.2e}' if within else '-'):>16}"
        if args.against:
            against = [
                deviation(now[k], saved[k]) for k in keys if k.endswith("/auto") and k in saved
            ]
            line += f"{(f'{max(against):.2e}' if against else 'not saved'):>12}"
        print(line)


if __name__ == "__main__":
    main()
