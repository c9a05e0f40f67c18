"""Frame-count checks count frames a viewer can tell apart, and identical is identical
(decision 47): an optimiser that merges identical consecutive frames changes nothing on screen,
a real frame drop still warns, and a pair identical on screen passes even where a metric cannot
be measured."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from giflab_dask.decode import scan_gif
from giflab_dask.framestore import FrameStore, decode_gif
from giflab_dask.pipeline import validate_pair
from giflab_dask.results import PairResult
from giflab_dask.testing import GifFrame, encode_gif, make_animation_frames

# How often each of 12 distinct frames is repeated: 26 frame records, 12 distinct frames (a
# count of records would see 54% of the frames gone after a merge: past the default 50% warn).
_REPEATS = [1, 3, 3, 1, 2, 4, 2, 1, 3, 2, 1, 3]


def _with_repeats(path: Path, keep: list[int] | None = None) -> Path:
    """Full opaque frames, each distinct frame written ``_REPEATS[i]`` times (4 cs each), the
    way a screen recorder writes a still screen. ``keep``: only these distinct frames, once
    each, shown until the next kept one (a real frame drop on the same timeline)."""
    frames, palette = make_animation_frames(len(_REPEATS), 40, 30, seed=2, delay_cs=4)
    if keep is None:
        written = [f for f, times in zip(frames, _REPEATS, strict=True) for _ in range(times)]
    else:
        ends = [*keep[1:], len(_REPEATS)]
        written = [
            GifFrame(frames[i].indices, delay_cs=4 * sum(_REPEATS[i:end]), disposal=1)
            for i, end in zip(keep, ends, strict=True)
        ]
    path.write_bytes(encode_gif(written, 40, 30, global_palette=palette))
    return path


def _check(result: PairResult, name: str) -> str:
    return {c.name: c.status for c in result.verdict.checks}[name]


def test_the_decoder_records_the_frames_a_viewer_can_tell_apart(tmp_path: Path) -> None:
    stored = decode_gif(_with_repeats(tmp_path / "a.gif"), store=FrameStore(tmp_path / "s"))
    assert (stored.n_frames, stored.distinct_frames) == (sum(_REPEATS), len(_REPEATS))
    frames = stored.frames().compute()
    changes = 1 + int(np.count_nonzero((frames[1:] != frames[:-1]).any(axis=(1, 2, 3))))
    assert stored.distinct_frames == changes  # the plain count over the stored frames


@pytest.mark.parametrize("level", ["-O1", "-O2", "-O3"])
def test_a_lossless_gifsicle_reencode_passes_without_a_warning(
    level: str, tmp_path: Path, gifsicle: str
) -> None:
    original = _with_repeats(tmp_path / "original.gif")
    optimized = tmp_path / "optimized.gif"
    subprocess.run([gifsicle, level, str(original), "-o", str(optimized)], check=True)
    if level != "-O1":  # -O2/-O3 merge identical frames: fewer records, the same timeline
        assert scan_gif(optimized).n_frames == len(_REPEATS)
    for _ in range(2):  # computed, then from the cache: the same verdict
        result = validate_pair(original, optimized, metrics="mse,psnr,ssim")
        s = result.summaries
        assert s["frame_count_change"] == 0.0 and s["timing_drift"] == 0.0
        assert s["original_distinct_frames"] == s["compressed_distinct_frames"] == len(_REPEATS)
        assert s["mse_max"] == 0.0 and s["ssim_min"] == 1.0
        assert _check(result, "frame_count_change") == "pass"
        assert result.status == "pass" and not result.verdict.reasons, result.verdict.reasons


def test_a_real_frame_drop_still_warns(tmp_path: Path) -> None:
    original = _with_repeats(tmp_path / "original.gif")
    dropped = _with_repeats(tmp_path / "dropped.gif", keep=[0, 3, 6, 9])  # 4 of 12 distinct
    assert scan_gif(dropped).durations_ms.sum() == scan_gif(original).durations_ms.sum()
    result = validate_pair(original, dropped, metrics="mse")
    assert result.summaries["frame_count_change"] == pytest.approx(8 / 12)
    assert _check(result, "frame_count_change") == "warn"
    one = _with_repeats(tmp_path / "one-dropped.gif", keep=[i for i in range(12) if i != 5])
    strict = validate_pair(original, one, metrics="mse", profile="strict")
    assert strict.summaries["frame_count_change"] == pytest.approx(1 / 12)
    assert _check(strict, "frame_count_change") == "warn"


# The tests/test_realworld.py batch's metrics: without SSIM the composite has too little weight.
_METRICS = "mse,psnr,ssim,deltae"


def _tiny(path: Path, change: bool = False) -> Path:
    frames, palette = make_animation_frames(4, 6, 5, seed=1, delay_cs=5)
    if change:
        indices = frames[2].indices.copy()
        indices[0, 0] = (int(indices[0, 0]) + 1) % 224
        frames[2] = GifFrame(indices, delay_cs=5, disposal=1)
    path.write_bytes(encode_gif(frames, 6, 5, global_palette=palette, loop=0))
    return path


def test_identical_frames_pass_even_where_a_metric_cannot_be_measured(
    tmp_path: Path, gifsicle: str
) -> None:
    original = _tiny(tmp_path / "tiny.gif")
    reencoded = tmp_path / "tiny-O3.gif"
    subprocess.run([gifsicle, "-O3", str(original), "-o", str(reencoded)], check=True)
    assert reencoded.read_bytes() != original.read_bytes()
    result = validate_pair(original, reencoded, metrics=_METRICS)  # SSIM needs 7x7 frames
    assert "ssim" in result.missing and "7x7" in result.missing["ssim"]  # still reported
    assert np.isnan(result.summaries["ssim_mean"])
    assert result.status == "pass", result.verdict.reasons
    ssim = {c.name: c for c in result.verdict.checks}["ssim_mean"]
    assert "could not be measured" in ssim.message and "identical" in ssim.message

    # One pixel of one frame differs: the same unmeasurable checks warn again.
    changed = validate_pair(
        original, _tiny(tmp_path / "changed.gif", change=True), metrics=_METRICS
    )
    assert changed.summaries["mse_max"] > 0 and "ssim" in changed.missing
    assert _check(changed, "ssim_mean") == "warn"


def test_a_small_drift_on_a_long_gif_warns(tmp_path: Path) -> None:
    """Time alignment keeps the last compressed frame past its end (no wrap, decision 47);
    the drift is the verdict's: 1.7% of 24 s passes the relative check, 400 ms does not."""
    frames, palette = make_animation_frames(600, 16, 12, seed=4, delay_cs=4)
    original, shorter = tmp_path / "long.gif", tmp_path / "shorter.gif"
    original.write_bytes(encode_gif(frames, 16, 12, global_palette=palette))
    shorter.write_bytes(encode_gif(frames[:590], 16, 12, global_palette=palette))
    result = validate_pair(original, shorter, metrics="mse")
    s = result.summaries
    assert s["timing_drift"] == pytest.approx(10 / 600) and s["timing_drift_ms"] == 400.0
    assert _check(result, "timing_drift") == "pass"
    assert _check(result, "timing_drift_ms") == "warn"
    assert result.mapping[-10:].tolist() == [589] * 10  # the last frame stays on screen
