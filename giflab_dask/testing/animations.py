"""Deterministic test animations: distinct random palettes and a gradient with a bouncing box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from giflab_dask.testing.gifwriter import GifFrame, encode_gif

__all__ = ["make_animation", "make_animation_frames", "solid_palette"]


def solid_palette(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct random RGB colours, (n, 3) uint8, deterministic from ``seed``."""
    if not 1 <= n <= 256:
        raise ValueError("n must be within 1..256")
    rng = np.random.default_rng(seed)
    seen: set[int] = set()
    colours: list[int] = []
    while len(colours) < n:
        for c in rng.integers(0, 1 << 24, size=n).tolist():
            if c not in seen:
                seen.add(c)
                colours.append(c)
                if len(colours) == n:
                    break
    packed = np.array(colours, dtype=np.uint32)
    return np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=1).astype(
        np.uint8
    )


_RAMP = 224  # gradient colours in make_animation's palette; the rest are box colours


def _bounce(pos: int, span: int) -> int:
    if span <= 0:
        return 0
    pos %= 2 * span
    return pos if pos <= span else 2 * span - pos


def make_animation_frames(
    n_frames: int,
    width: int,
    height: int,
    *,
    seed: int = 0,
    delay_cs: int | Sequence[int] = 10,
    moving_box: bool = True,
) -> tuple[list[GifFrame], np.ndarray]:
    """Frames and global palette of :func:`make_animation`.

    The 256-colour palette holds 224 distinct gradient colours (background) and 32 distinct box
    colours, so every RGB value maps back to one index. Each frame is full-screen and opaque.
    """
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    delays = [delay_cs] * n_frames if isinstance(delay_cs, int) else [int(d) for d in delay_cs]
    if len(delays) != n_frames:
        raise ValueError(f"{len(delays)} delays given for {n_frames} frames")
    rng = np.random.default_rng(seed)

    ends = rng.integers(0, 256, size=(2, 2))
    t = np.linspace(0.0, 1.0, _RAMP)
    ramp = np.empty((_RAMP, 3), np.uint8)
    ramp[:, 0] = 16 + np.arange(_RAMP)  # red alone makes ramp colours distinct
    ramp[:, 1] = np.round(ends[0, 0] + (ends[1, 0] - ends[0, 0]) * t)
    ramp[:, 2] = np.round(ends[0, 1] + (ends[1, 1] - ends[0, 1]) * t)
    ramp_set = {tuple(c) for c in ramp.tolist()}
    boxes: list[list[int]] = []
    for c in solid_palette(64, seed + 1).tolist():
        if tuple(c) not in ramp_set:
            boxes.append(c)
        if len(boxes) == 256 - _RAMP:
            break
    palette = np.concatenate([ramp, np.array(boxes, np.uint8)])

    yy, xx = np.mgrid[0:height, 0:width]
    fx = xx / max(width - 1, 1)
    fy = yy / max(height - 1, 1)
    background = np.round((0.7 * fx + 0.3 * fy) * (_RAMP - 1)).astype(np.uint8)

    side = max(1, min(width, height) // 4)
    x0, y0 = (int(v) for v in rng.integers(0, 1 << 16, size=2))
    vx, vy = (int(v) for v in rng.integers(1, max(2, side), size=2))
    colour0 = int(rng.integers(0, 256 - _RAMP))

    frames = []
    for k in range(n_frames):
        step = k if moving_box else 0
        img = background.copy()
        bx = _bounce(x0 + vx * step, width - side)
        by = _bounce(y0 + vy * step, height - side)
        img[by : by + side, bx : bx + side] = _RAMP + (colour0 + step) % (256 - _RAMP)
        frames.append(GifFrame(img, delay_cs=delays[k], disposal=1))
    return frames, palette


def make_animation(
    n_frames: int,
    width: int,
    height: int,
    *,
    seed: int = 0,
    delay_cs: int | Sequence[int] = 10,
    moving_box: bool = True,
    loop: int | None = 0,
) -> bytes:
    """A full-frame, global-palette animation: gradient background plus a bouncing square.

    Deterministic from ``seed``. ``delay_cs`` may be one value or one per frame. With
    ``moving_box=False`` the square stays put, so every frame is identical.
    """
    frames, palette = make_animation_frames(
        n_frames, width, height, seed=seed, delay_cs=delay_cs, moving_box=moving_box
    )
    return encode_gif(frames, width, height, global_palette=palette, loop=loop)
