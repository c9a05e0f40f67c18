"""Helpers shared by the benchmark scripts: synthetic GIFs and child-process measurement."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_gif(path: Path, n_frames: int, width: int, height: int, *, seed: int = 0) -> Path:
    """A Pillow-written animation: gradient background, moving boxes, one global palette.

    Pillow's writer stores later frames as partial (changed-area) frames, as real encoders do.
    """
    from PIL import Image

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1
    ).astype(np.uint8)
    palette_img = Image.fromarray(base).quantize(colors=255, method=Image.Quantize.MEDIANCUT)

    def frames():
        for i in range(n_frames):
            arr = base.copy()
            for k in range(3):
                x0 = (i * (3 + k) + 40 * k) % max(width - 40, 1)
                y0 = (i * (2 + k) + 30 * k) % max(height - 30, 1)
                arr[y0 : y0 + 30, x0 : x0 + 40] = rng.integers(0, 256, 3, dtype=np.uint8)
            yield Image.fromarray(arr).quantize(palette=palette_img, dither=Image.Dither.NONE)

    it = frames()
    first = next(it)
    path.parent.mkdir(parents=True, exist_ok=True)
    first.save(path, save_all=True, append_images=it, duration=40, loop=0)
    return path


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line.

    ``peak_rss_mib`` (the child's VmHWM) and ``base_rss_mib`` (after imports) are added by
    the wrapper, so every figure comes from its own process.
    """
    wrapper = (
        textwrap.dedent(
            """
        import json, sys
        def _rss_mib():
            # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over exec)
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
            raise RuntimeError("no VmHWM in /proc/self/status")
        """
        )
        + textwrap.dedent(code)
        + textwrap.dedent(
            """
        result["peak_rss_mib"] = _rss_mib()
        print(json.dumps(result))
        """
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
