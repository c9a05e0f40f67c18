"""Shared fixtures: an isolated cache per test, deterministic tokenize, reference tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import dask
import numpy as np
import pytest
from PIL import Image, ImageSequence

import giflab_dask  # noqa: F401  (registers the giflab config defaults before any fixture sets config)
from giflab_dask.testing.s3 import CountingS3

# CI sets this so a test that needs ImageMagick or gifsicle fails instead of skipping.
REQUIRE_TOOLS = os.environ.get("GIFLAB_REQUIRE_TOOLS") == "1"


def missing(message: str) -> NoReturn:
    """Skip a test whose tool or extra is not installed, or fail it under CI's
    GIFLAB_REQUIRE_TOOLS=1."""
    if REQUIRE_TOOLS:
        pytest.fail(message + "; GIFLAB_REQUIRE_TOOLS=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture(autouse=True, scope="session")
def subprocess_stat_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Python subprocesses the tests start keep their stat index out of the user's cache too
    (under a URL cache-dir it would go to the user cache directory)."""
    path = tmp_path_factory.mktemp("stat-index") / "stat-index.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASK_GIFLAB__STAT_INDEX", str(path))
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path) -> Iterator[Path]:
    """Every test gets its own cache root and deterministic tokenization (DESIGN decision 1)."""
    root = tmp_path / "cache"
    settings = {
        "giflab.cache-dir": str(root),
        # also under a URL cache-dir (which keeps it in the user's cache directory otherwise)
        "giflab.stat-index": str(root / "stat-index.sqlite"),
        "tokenize.ensure-deterministic": True,
    }
    with dask.config.set(settings):
        yield root


def _find_tool(candidates: list[str], probe: list[str], expect: str) -> str | None:
    for name in candidates:
        exe = shutil.which(name)
        if exe is None:
            continue
        try:
            out = subprocess.run([exe, *probe], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if expect in out.stdout + out.stderr:
            return exe
    return None


def _need(tool: str | None, what: str) -> str:
    if tool is None:
        missing(f"{what} is not installed (Debian: apt-get install {what.lower()})")
    return tool


@pytest.fixture(scope="session")
def imagemagick() -> str:
    """Path of ImageMagick's convert (the real binary, not a wrapper), or skip."""
    exe = _find_tool(
        ["magick", "convert-im6.q16", "convert-im7", "convert"], ["-version"], "ImageMagick"
    )
    return _need(exe, "ImageMagick")


@pytest.fixture(scope="session")
def gifsicle() -> str:
    return _need(_find_tool(["gifsicle"], ["--version"], "Gifsicle"), "Gifsicle")


def write_lossy_variants(
    root: Path, n_frames: int, width: int, height: int, *, seed: int
) -> dict[str, Path]:
    """An original animation and two Pillow-made variants: ``quantized`` (16 colours, same
    frames) and ``dropped`` (16 colours, every 3rd frame dropped, the next one shown twice as
    long)."""
    from giflab_dask.testing import make_animation

    original = root / "original.gif"
    original.write_bytes(make_animation(n_frames, width, height, seed=seed, delay_cs=4))
    with Image.open(original) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    quantized = [f.quantize(16, method=Image.Quantize.FASTOCTREE) for f in frames]
    variant = root / "quantized.gif"
    quantized[0].save(variant, save_all=True, append_images=quantized[1:], duration=40, loop=0)
    kept = [f for i, f in enumerate(quantized) if i % 3]
    durations = [80 if i % 3 == 2 else 40 for i in range(n_frames) if i % 3]
    dropped = root / "dropped.gif"
    kept[0].save(dropped, save_all=True, append_images=kept[1:], duration=durations, loop=0)
    return {"original": original, "quantized": variant, "dropped": dropped}


def write_pillow_gif(
    path: Path,
    n_frames: int = 6,
    size: tuple[int, int] = (48, 32),
    *,
    seed: int = 0,
    durations: list[int] | int = 50,
    noise: bool = False,
) -> Path:
    """An opaque animation written by Pillow (a moving box over a gradient, or noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames = []
    for i in range(n_frames):
        if noise:
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), 0 * xx + 80], -1)
            arr = arr.astype(np.uint8)
            x0 = (i * 5 + seed * 3) % max(w - 8, 1)
            arr[4:12, x0 : x0 + 8] = (255, 255 - 20 * i % 256, 0)
        frames.append(Image.fromarray(arr))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


@pytest.fixture
def anim_gif(tmp_path: Path) -> Path:
    return write_pillow_gif(tmp_path / "anim.gif")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Chromium's own GIF decoder (:class:`giflab_dask.chromium.ChromiumGifDecoder`), started
    once per session, or skip."""
    from giflab_dask.chromium import ChromiumGifDecoder, find_chromium

    exe = _need(find_chromium(), "Chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing("Playwright is not installed (pip install -e '.[test]' brings it)")
    with ChromiumGifDecoder(exe) as decoder:
        yield decoder


# -- S3 on 127.0.0.1 (moto's server), every request counted ------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[CountingS3]:
    try:
        import s3fs  # noqa: F401
        from moto.server import DomainDispatcherApplication  # noqa: F401
    except ImportError as exc:
        missing(f"the s3 extra is not installed ({exc}): pip install 'giflab-dask[s3]'")
    server = CountingS3("giflab")
    try:
        yield server
    finally:
        server.stop()
