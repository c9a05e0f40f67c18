"""Demo data the tool can make for itself: originals plus compressed variants, made with Pillow.

Layout (the usual GifLab layout: one directory of originals, one directory per variant)::

    DIR/originals/<name>.gif
    DIR/variants/colors-32/<name>.gif      palette cut to 32 colours
    DIR/variants/colors-8/<name>.gif       palette cut to 8 colours, dithered
    DIR/variants/frames-50/<name>.gif      every second frame, durations doubled
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["write_demo_data"]

VARIANTS = ("colors-32", "colors-8", "frames-50")


def _scene(n_frames: int, width: int, height: int, seed: int) -> Iterator[np.ndarray]:
    """Frames of a moving-shapes scene over a smooth gradient (deterministic from ``seed``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    colours = rng.integers(40, 256, (3, 3))
    for i in range(n_frames):
        t = i / max(n_frames, 1)
        base = np.stack(
            [
                127 + 120 * np.sin(xx / width * 3 + phase[0] + 2 * np.pi * t),
                127 + 120 * np.sin(yy / height * 2 + phase[1]),
                127 + 120 * np.cos((xx + yy) / (width + height) * 4 + phase[2]),
            ],
            axis=-1,
        )
        frame = base.astype(np.uint8)
        for k in range(3):
            cx = int((0.2 + 0.6 * ((t * (k + 1) + k / 3) % 1)) * width)
            cy = int((0.3 + 0.2 * k) * height)
            r = max(3, min(width, height) // (6 + 2 * k))
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            frame[mask] = colours[k]
        yield frame


def _save(path: Path, frames: list, durations: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False
    )


def write_demo_data(
    directory: str | os.PathLike[str],
    *,
    n_originals: int = 3,
    n_frames: int = 24,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
) -> list[Path]:
    """Write ``n_originals`` animations and their variants under ``directory``; return all paths."""
    from PIL import Image

    root = Path(directory)
    written = []
    width, height = size
    for k in range(n_originals):
        name = f"demo-{k + 1:02d}.gif"
        rgb = list(_scene(n_frames, width, height, seed + k))
        durations = [40 + 20 * ((i // 6) % 2) for i in range(n_frames)]
        originals = [
            Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE) for f in rgb
        ]
        _save(root / "originals" / name, originals, durations)
        written.append(root / "originals" / name)
        cut32 = [
            Image.fromarray(f).quantize(
                32, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
            )
            for f in rgb
        ]
        _save(root / "variants" / "colors-32" / name, cut32, durations)
        cut8 = [
            Image.fromarray(f).quantize(
                8, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG
            )
            for f in rgb
        ]
        _save(root / "variants" / "colors-8" / name, cut8, durations)
        halved = [originals[i] for i in range(0, n_frames, 2)]
        doubled = [durations[i] + durations[i + 1] if i + 1 < n_frames else durations[i]
                   for i in range(0, n_frames, 2)]  # fmt: skip
        _save(root / "variants" / "frames-50" / name, halved, doubled)
        written += [root / "variants" / v / name for v in VARIANTS]
    return written
