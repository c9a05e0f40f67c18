from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giflab_dask.align import AlignmentError, AlignOptions, align, display_times, time_mapping
from giflab_dask.framestore import decode_gif
from giflab_dask.testing import GifFrame, encode_gif, make_animation_frames

OPTS = AlignOptions()


def write(path: Path, frames: list[np.ndarray], palette: np.ndarray, delays: list[int]) -> Path:
    gif_frames = [GifFrame(f, delay_cs=d) for f, d in zip(frames, delays, strict=True)]
    h, w = frames[0].shape
    path.write_bytes(encode_gif(gif_frames, w, h, global_palette=palette))
    return path


@pytest.fixture
def scene() -> tuple[list[np.ndarray], np.ndarray]:
    frames, palette = make_animation_frames(12, 24, 16, seed=4)
    return [f.indices for f in frames], palette


def test_dropped_frames_map_to_the_frame_on_screen(tmp_path: Path, scene) -> None:
    frames, palette = scene
    original = decode_gif(write(tmp_path / "o.gif", frames, palette, [5] * 12))
    halved = decode_gif(write(tmp_path / "c.gif", frames[::2], palette, [10] * 6))
    pair = align(original, halved)
    assert pair.mode == "time"
    np.testing.assert_array_equal(pair.mapping, np.arange(12) // 2)
    o, c = dask.compute(pair.original, pair.compressed)
    # Every even original frame is identical to the compressed frame shown with it.
    np.testing.assert_array_equal(o[::2], c[::2])
    assert pair.original.chunks == pair.compressed.chunks


def test_index_mode_when_counts_and_timings_agree(tmp_path: Path, scene) -> None:
    frames, palette = scene
    a = decode_gif(write(tmp_path / "a.gif", frames, palette, [4] * 12))
    b = decode_gif(write(tmp_path / "b.gif", frames, palette, [4] * 12))
    pair = align(a, b)
    assert pair.mode == "index"
    np.testing.assert_array_equal(pair.mapping, np.arange(12))


def test_index_mode_refuses_different_counts(tmp_path: Path, scene) -> None:
    frames, palette = scene
    a = decode_gif(write(tmp_path / "a.gif", frames, palette, [4] * 12))
    b = decode_gif(write(tmp_path / "b.gif", frames[:6], palette, [8] * 6))
    with pytest.raises(AlignmentError, match=r"equal frame counts.*use mode 'time'"):
        align(a, b, AlignOptions(mode="index"))


def test_content_mode_finds_a_shifted_frame_within_the_window(tmp_path: Path, scene) -> None:
    frames, palette = scene
    a = decode_gif(write(tmp_path / "a.gif", frames, palette, [4] * 12))
    shifted = frames[1:] + frames[-1:]  # compressed runs one frame ahead
    b = decode_gif(write(tmp_path / "b.gif", shifted, palette, [4] * 12))
    pair = align(a, b, AlignOptions(mode="content", content_window=2))
    # Original frame i (i >= 1) is compressed frame i - 1; the last two compressed frames are
    # equal, and a tie keeps the time-aligned one.
    np.testing.assert_array_equal(pair.mapping[1:11], np.arange(10))
    assert pair.mapping[11] == 11


def test_size_mismatch_resizes_both_to_the_smaller_size(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.gif")
    Image.fromarray(big).resize((24, 16), Image.Resampling.BOX).save(tmp_path / "small.gif")
    pair = align(decode_gif(tmp_path / "big.gif"), decode_gif(tmp_path / "small.gif"))
    assert pair.size == (16, 24)
    assert pair.original.shape == pair.compressed.shape == (1, 16, 24, 3)
    assert pair.notes and "resized to 24x16" in pair.notes[0]


def test_transparent_pixels_are_composited_on_the_background(tmp_path: Path) -> None:
    idx = np.zeros((4, 4), dtype=np.uint8)
    idx[0, 0] = 1
    palette = np.array([[10, 20, 30], [200, 0, 0]], dtype=np.uint8)
    path = tmp_path / "t.gif"
    path.write_bytes(encode_gif([GifFrame(idx, transparency=0)], 4, 4, global_palette=palette))
    stored = decode_gif(path)
    pair = align(stored, stored, AlignOptions(background=(1, 2, 3)))
    frame = pair.original.compute()[0]
    np.testing.assert_array_equal(frame[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(frame[1, 1], [1, 2, 3])


def test_tiny_delays_are_clamped_like_browsers() -> None:
    np.testing.assert_array_equal(
        display_times(np.array([0, 10, 20, 50]), OPTS), [100, 100, 20, 50]
    )
    no_clamp = AlignOptions(min_delay_ms=0)
    np.testing.assert_array_equal(display_times(np.array([0, 10]), no_clamp), [0, 10])


def test_bad_options_say_what_to_do() -> None:
    with pytest.raises(AlignmentError, match="one of auto, time, index, content"):
        AlignOptions(mode="greedy")
    with pytest.raises(AlignmentError, match="resize must be one of"):
        AlignOptions(resize="lanczos")


def test_options_come_from_config() -> None:
    with dask.config.set({"giflab.align.mode": "index", "giflab.align.background": [0, 0, 0]}):
        opts = AlignOptions.from_config()
    assert opts.mode == "index" and opts.background == (0, 0, 0)


def _reference_mapping(original: list[int], compressed: list[int]) -> list[int]:
    """Plain loop: for each original frame's midpoint, walk the compressed timeline."""
    o = [100 if d < 20 else d for d in original]
    c = [100 if d < 20 else d for d in compressed]
    result, t = [], 0.0
    for d in o:
        mid = t + d / 2
        start, j = 0.0, 0
        while j + 1 < len(c) and start + c[j] <= mid:
            start += c[j]
            j += 1
        result.append(j)
        t += d
    return result


durations = st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(original=durations, compressed=durations)
def test_time_mapping_matches_a_plain_timeline_walk(original, compressed) -> None:
    mapping = time_mapping(np.array(original), np.array(compressed), OPTS)
    assert mapping.tolist() == _reference_mapping(original, compressed)
    assert (np.diff(mapping) >= 0).all()  # never goes back in time
    assert mapping.min() >= 0 and mapping.max() < len(compressed)


@settings(max_examples=100, deadline=None)
@given(original=durations, keep=st.integers(min_value=2, max_value=4))
def test_dropping_frames_and_merging_durations_maps_to_the_kept_frame(original, keep) -> None:
    kept = list(range(0, len(original), keep))
    shown = display_times(np.array(original), OPTS)
    merged = [int(shown[i : i + keep].sum()) for i in kept]
    mapping = time_mapping(np.array(original), np.array(merged), OPTS)
    np.testing.assert_array_equal(mapping, np.arange(len(original)) // keep)
