"""Butteraugli per frame through Debian's ``butteraugli`` tool (an external, opt-in metric).

The kernel contract of :mod:`giflab_dask.kernels` holds (``(t, H, W, 3)`` uint8 blocks in,
float64 ``(t,)`` out), but the work is done by the ``butteraugli`` executable (Debian package
``butteraugli``, Google's 2017 release, ``0~20170116``): each frame pair is written as two PNG
files in a temporary directory of the task and the tool runs once per pair (it compares one
pair per process). No native kernel: there is no reference here to test one against.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from giflab_dask.errors import ExternalToolError
from giflab_dask.kernels._luma import check_pair

__all__ = ["butteraugli", "butteraugli_tool"]

# The tool aborts below 8 pixels a side and prints 0.000000 for any pair (even a frame and
# its negative) when neither side exceeds 10 (measured with Debian's 0~20170116).
_MIN_SIDE = 8
_MIN_LONG_SIDE = 11
_TIMEOUT_S = 600


def butteraugli_tool() -> str | None:
    """The path of the ``butteraugli`` executable on PATH, or None."""
    return shutil.which("butteraugli")


def _run(tool: str, first: Path, second: Path) -> float:
    try:
        done = subprocess.run(
            [tool, str(first), str(second)], capture_output=True, text=True,
            timeout=_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise ExternalToolError(f"butteraugli: {tool} took over {_TIMEOUT_S} s on a frame") from exc
    try:
        value = float(done.stdout.split()[0]) if done.returncode == 0 else math.nan
    except (IndexError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ExternalToolError(
            f"butteraugli: {tool} exited with {done.returncode} and printed "
            f"{(done.stdout or done.stderr).strip()[:200]!r} instead of a score"
        )
    return value


def butteraugli(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    """Butteraugli distance per frame (Debian's ``butteraugli`` tool): 0 for identical frames,
    higher is worse (the butteraugli README: below about 1 the frames look the same).

    Parameters
    ----------
    original, compressed : ndarray, shape (t, H, W, 3), uint8
        Aligned blocks of sRGB frames.

    Returns
    -------
    ndarray, shape (t,), float64
        The tool's score per frame; NaN for frames smaller than 8 pixels on a side or with
        neither side over 10 (the tool crashes, or prints 0 whatever the frames, there).

    Raises
    ------
    ExternalToolError
        When ``butteraugli`` is not on PATH (install it with ``apt-get install butteraugli``)
        or fails on a frame. The pair then reports this metric's error with the reason, never
        a stored value, so a run after installing the tool computes it.
    """
    original, compressed = check_pair(original, compressed, "butteraugli")
    t, h, w = original.shape[:3]
    out = np.full(t, np.nan)
    if t == 0 or min(h, w) < _MIN_SIDE or max(h, w) < _MIN_LONG_SIDE:
        return out
    tool = butteraugli_tool()
    if tool is None:
        raise ExternalToolError(
            "butteraugli: the `butteraugli` tool is not on PATH; install it (Debian/Ubuntu: "
            "apt-get install butteraugli) or leave the opt-in metric out of --metrics"
        )
    with tempfile.TemporaryDirectory(prefix="giflab-butteraugli-") as tmp:
        first, second = Path(tmp) / "original.png", Path(tmp) / "compressed.png"
        for i in range(t):
            Image.fromarray(np.ascontiguousarray(original[i])).save(first, compress_level=1)
            Image.fromarray(np.ascontiguousarray(compressed[i])).save(second, compress_level=1)
            out[i] = _run(tool, first, second)
    return out
