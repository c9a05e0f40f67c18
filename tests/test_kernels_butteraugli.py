"""Butteraugli through Debian's ``butteraugli`` tool (giflab_dask.kernels.butteraugli).

The reference is the tool itself: the kernel must give exactly what the command line prints
for the same frames; the tests that run it are skipped when it is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from giflab_dask.errors import ExternalToolError, MeasurementError
from giflab_dask.kernels import butteraugli as kernel_module
from giflab_dask.kernels.butteraugli import butteraugli
from giflab_dask.pipeline import validate_pair

from .conftest import REQUIRE_TOOLS, write_pillow_gif

# CI installs the tool (GIFLAB_REQUIRE_TOOLS=1): there a missing tool fails these tests.
needs_tool = pytest.mark.skipif(
    shutil.which("butteraugli") is None and not REQUIRE_TOOLS,
    reason="butteraugli is not installed (Debian: apt-get install butteraugli)",
)


def _frames(seed: int, shape: tuple[int, int] = (40, 56)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.stack([x * 4, y * 5, (x + y) * 2], -1) % 256
    return np.clip(base + rng.integers(-10, 11, (*shape, 3)), 0, 255).astype(np.uint8)


@needs_tool
def test_equals_the_command_line_and_grows_with_the_distortion(tmp_path: Path) -> None:
    ref = _frames(0)
    rng = np.random.default_rng(1)
    noise = rng.integers(-1, 2, ref.shape)
    dis = np.stack([np.clip(ref + k * noise, 0, 255).astype(np.uint8) for k in (0, 2, 6, 20)])
    got = butteraugli(np.repeat(ref[None], 4, 0), dis)
    for i, frame in enumerate(dis):
        paths = [tmp_path / f"{i}a.png", tmp_path / f"{i}b.png"]
        Image.fromarray(ref).save(paths[0])
        Image.fromarray(frame).save(paths[1])
        printed = subprocess.run(["butteraugli", *map(str, paths)], capture_output=True, text=True)
        assert got[i] == float(printed.stdout.split()[0])
    assert got[0] == 0.0 and np.all(np.diff(got) > 0), got


def test_frames_the_tool_cannot_measure_are_nan_without_running_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kernel_module, "butteraugli_tool", lambda: pytest.fail("ran the tool"))
    for shape in ((7, 64), (64, 7), (10, 10), (8, 8)):
        a = _frames(2, shape)[None]
        assert np.isnan(butteraugli(a, 255 - a)).all()
    assert butteraugli(
        np.zeros((0, 16, 16, 3), np.uint8), np.zeros((0, 16, 16, 3), np.uint8)
    ).shape == (0,)


def test_a_missing_tool_is_an_error_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    a = _frames(3)[None]
    with pytest.raises(ExternalToolError, match="apt-get install butteraugli"):
        butteraugli(a, a)
    gif = write_pillow_gif(tmp_path / "a.gif", 2, size=(48, 32))
    with pytest.raises(MeasurementError, match="butteraugli"):
        validate_pair(gif, gif, metrics="ssim,butteraugli")
