"""Decoding and compositing, checked against ImageMagick, gifsicle and Pillow."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.errors import GifDecodeError
from giflab_dask.testing import (
    GifFrame,
    disposal_case_specs,
    disposal_cases,
    encode_gif,
    make_animation,
    solid_palette,
)

CASES = disposal_cases()


def decode_all(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(rgb.copy(), a.copy()) for rgb, a in iter_frames(path)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def coalesce(imagemagick: str, path: Path, height: int, width: int) -> np.ndarray:
    """ImageMagick's ``-coalesce`` frames as (T, H, W, 4) RGBA."""
    out = subprocess.run(
        [imagemagick, str(path), "-coalesce", "rgba:-"], capture_output=True, check=False
    )
    raw = np.frombuffer(out.stdout, dtype=np.uint8)
    assert raw.size % (height * width * 4) == 0, out.stderr
    return raw.reshape(-1, height, width, 4)


def assert_same_visible_frames(
    rgb_a: np.ndarray, alpha_a: np.ndarray, rgb_b: np.ndarray, alpha_b: np.ndarray
) -> None:
    """Equal alpha everywhere; equal RGB wherever the pixel is visible."""
    assert rgb_a.shape == rgb_b.shape
    np.testing.assert_array_equal(alpha_a, alpha_b)
    visible = alpha_a > 0
    np.testing.assert_array_equal(rgb_a[visible], rgb_b[visible])


# Where ImageMagick 6.9 shows something else than Chromium (the decoder follows Chromium,
# tests/test_chromium.py; decision 46): it paints the screen a partial first frame leaves
# uncovered with the background colour, opaque, and reads disposal 4 as "leave in place".
_IM_OPAQUE_BACKGROUND = {"dispose3_first_frame", "partial_first_frame",
                         "partial_first_frame_bg_index5"}  # fmt: skip
_IM_DISPOSAL4_IS_1 = {"dispose4_out_of_range_partial": "dispose1_partial"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_frames_equal_imagemagick_coalesce(name: str, tmp_path: Path, imagemagick: str) -> None:
    path = tmp_path / f"{name}.gif"
    path.write_bytes(CASES[name])
    rgb, alpha = decode_all(path)
    reference = coalesce(imagemagick, path, *rgb.shape[1:3])
    assert len(reference) == len(rgb)
    if name in _IM_OPAQUE_BACKGROUND:
        spec = disposal_case_specs()[name]
        background = spec.global_palette[spec.options.get("background_index", 0)]
        uncovered = (alpha == 0) & (reference[..., 3] == 255)
        assert uncovered[0].any()  # the difference exists, and is only this:
        np.testing.assert_array_equal(reference[..., :3][uncovered].min(0), background)
        np.testing.assert_array_equal(reference[..., :3][uncovered].max(0), background)
        rgb[uncovered], alpha[uncovered] = background, 255
    if name in _IM_DISPOSAL4_IS_1:
        as_1 = tmp_path / "as_1.gif"
        as_1.write_bytes(CASES[_IM_DISPOSAL4_IS_1[name]])
        assert not np.array_equal(rgb, decode_all(as_1)[0])
        rgb, alpha = decode_all(as_1)
    assert_same_visible_frames(rgb, alpha, reference[..., :3], reference[..., 3])


# gifsicle grows the logical screen to fit a frame that reaches past it (browsers clip), and
# rewrites the undefined disposal 4 as 1 (Chromium reads 4 as 3).
_GIFSICLE_CHANGES_MEANING = {"frame_beyond_screen", "dispose4_out_of_range_partial"}


@pytest.mark.parametrize("name", [*sorted(set(CASES) - _GIFSICLE_CHANGES_MEANING), "animation"])
@pytest.mark.parametrize("level", ["-O1", "-O2", "-O3"])
def test_lossless_gifsicle_reencode_decodes_to_the_same_frames(
    name: str, level: str, tmp_path: Path, gifsicle: str
) -> None:
    original = tmp_path / "original.gif"
    original.write_bytes(make_animation(24, 48, 36, seed=5) if name == "animation" else CASES[name])
    optimized = tmp_path / "optimized.gif"
    subprocess.run([gifsicle, level, str(original), "-o", str(optimized)], check=True)
    assert_same_visible_frames(*decode_all(original), *decode_all(optimized))


def test_gifsicle_optimizes_into_partial_transparent_frames(tmp_path: Path, gifsicle: str) -> None:
    # Guard that the re-encode test above exercises real partial frames and transparency.
    original = tmp_path / "a.gif"
    original.write_bytes(make_animation(24, 48, 36, seed=5))
    optimized = tmp_path / "b.gif"
    subprocess.run([gifsicle, "-O3", str(original), "-o", str(optimized)], check=True)
    frames = scan_gif(optimized).frames
    assert any(f.width < 48 or f.height < 36 for f in frames[1:])


def _pillow_frames(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(im)]


def test_pillow_diverges_where_we_composite_ourselves(tmp_path: Path) -> None:
    """The reason decode.py composites: Pillow disposes a 'disposal 0' frame after a 2."""
    path = tmp_path / "d.gif"
    path.write_bytes(CASES["dispose2_then_0"])
    rgb, alpha = decode_all(path)
    pillow = _pillow_frames(path)
    assert any(
        not np.array_equal(p[..., 3] > 0, a > 0) or not np.array_equal(p[..., :3][a > 0], r[a > 0])
        for p, r, a in zip(pillow, rgb, alpha, strict=True)
    )


def _real_gifs() -> list[Path]:
    """GIFs that ship with Python itself (IDLE's icons, test data) and Debian packages here."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path("/usr/share"), Path(sys.prefix) / "share"]
    found: set[Path] = set()
    for root in roots:
        if root.is_dir():
            found.update(p.resolve() for p in root.rglob("*.gif") if p.is_file())
    return sorted(found)[:60]


def test_real_gifs_agree_with_a_reference_decoder(imagemagick: str) -> None:
    gifs = _real_gifs()
    if not gifs:
        pytest.skip("no GIF files ship with this Python or under /usr/share")
    for path in gifs:
        rgb, alpha = decode_all(path)
        im = coalesce(imagemagick, path, *rgb.shape[1:3])
        pillow = None
        for t in range(len(rgb)):
            visible = alpha[t] > 0
            if np.array_equal(im[t, ..., 3], alpha[t]) and np.array_equal(
                im[t, ..., :3][visible], rgb[t][visible]
            ):
                continue
            # ImageMagick misdraws some long animations; Pillow must then agree with us.
            pillow = pillow if pillow is not None else _pillow_frames(path)
            np.testing.assert_array_equal(
                pillow[t][..., :3][visible], rgb[t][visible], err_msg=f"{path} frame {t}"
            )


@pytest.mark.skipif(
    not importlib.util.find_spec("numba"), reason="numba not installed (optional extra)"
)
def test_numba_drawing_gives_the_numpy_frames(tmp_path: Path) -> None:
    """The numba palette kernel and the numpy gather draw identical canvases (all pixels)."""
    import dask

    paths = []
    for name in sorted(CASES):
        paths.append(tmp_path / f"{name}.gif")
        paths[-1].write_bytes(CASES[name])
    paths.append(tmp_path / "animation.gif")
    paths[-1].write_bytes(make_animation(6, 41, 23, delay_cs=[3] * 6, loop=0))
    paths.extend(_real_gifs()[:20])
    for path in paths:
        with dask.config.set({"giflab.kernels.numba": "auto"}):
            fast = decode_all(path)
        with dask.config.set({"giflab.kernels.numba": "off"}):
            plain = decode_all(path)
        np.testing.assert_array_equal(fast[0], plain[0], err_msg=str(path))
        np.testing.assert_array_equal(fast[1], plain[1], err_msg=str(path))


def test_layout_reports_durations_loop_and_size(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    path.write_bytes(make_animation(5, 30, 20, delay_cs=[2, 4, 6, 8, 10], loop=3))
    layout = scan_gif(path)
    assert (layout.width, layout.height, layout.n_frames, layout.loop) == (30, 20, 5, 3)
    np.testing.assert_array_equal(layout.durations_ms, [20, 40, 60, 80, 100])


def test_single_frame_and_no_loop_extension(tmp_path: Path) -> None:
    path = tmp_path / "one.gif"
    path.write_bytes(CASES["single_frame"])
    layout = scan_gif(path)
    assert layout.n_frames == 1
    rgb, _ = decode_all(path)
    assert rgb.shape == (1, layout.height, layout.width, 3)


def test_local_palettes_are_used_per_frame(tmp_path: Path) -> None:
    pal_a, pal_b = solid_palette(4, seed=1), solid_palette(4, seed=2)
    idx = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    path = tmp_path / "p.gif"
    path.write_bytes(
        encode_gif([GifFrame(idx, palette=pal_a), GifFrame(idx, palette=pal_b)], 2, 2,
                   global_palette=None)
    )  # fmt: skip
    rgb, _ = decode_all(path)
    np.testing.assert_array_equal(rgb[0], pal_a[idx])
    np.testing.assert_array_equal(rgb[1], pal_b[idx])


def test_disposal_specs_cover_every_method() -> None:
    disposals = {f.disposal for spec in disposal_case_specs().values() for f in spec.frames}
    assert {0, 1, 2, 3} <= disposals


# --- bad input --------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gif"
    path.write_bytes(b"")
    with pytest.raises(GifDecodeError, match=r"empty\.gif: file is empty"):
        scan_gif(path)


def test_png_renamed_gif(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "really-a-png.gif"
    Image.new("RGB", (4, 4)).save(path, format="PNG")
    with pytest.raises(GifDecodeError, match=r"really-a-png\.gif: not a GIF file.*PNG"):
        scan_gif(path)


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "none.gif"
    path.write_bytes(b"GIF89a" + bytes([4, 0, 4, 0, 0, 0, 0]) + b";")
    with pytest.raises(GifDecodeError, match="zero frames"):
        scan_gif(path)


def test_garbage_lzw_data(tmp_path: Path) -> None:
    data = bytearray(make_animation(3, 16, 16, seed=1))
    layout_path = tmp_path / "ok.gif"
    layout_path.write_bytes(bytes(data))
    frame = scan_gif(layout_path).frames[1]
    # Keep the sub-block lengths, scramble the codes.
    rng = np.random.default_rng(0)
    pos = frame.lzw_offset + 1
    while data[pos]:
        n = data[pos]
        data[pos + 1 : pos + 1 + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        pos += n + 1
    bad = tmp_path / "garbage.gif"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        GifDecodeError, match=r"garbage\.gif: frame 1: image data cannot be decoded"
    ):
        decode_all(bad)


ANIMATION = make_animation(4, 20, 12, seed=9)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=1, max_value=len(ANIMATION) - 2))
def test_truncated_anywhere_is_an_error_or_a_prefix(cut: int, tmp_path: Path) -> None:
    """Cut at any byte: a clear error naming the file, or (cut exactly between blocks, which
    looks like a missing trailer) the frames before the cut, unchanged."""
    full = tmp_path / "full.gif"
    full.write_bytes(ANIMATION)
    path = tmp_path / "cut.gif"
    path.write_bytes(ANIMATION[:cut])
    try:
        rgb, _ = decode_all(path)
    except GifDecodeError as exc:
        assert str(path) in str(exc)
        return
    full_rgb, _ = decode_all(full)
    assert len(rgb) < len(full_rgb) or cut >= len(ANIMATION) - 1
    np.testing.assert_array_equal(rgb, full_rgb[: len(rgb)])


def test_truncation_names_where_the_file_ends(tmp_path: Path) -> None:
    path = tmp_path / "cut.gif"
    path.write_bytes(ANIMATION[: len(ANIMATION) // 2])
    with pytest.raises(
        GifDecodeError, match=rf"cut\.gif: file is truncated: .* at byte {len(ANIMATION) // 2}$"
    ):
        scan_gif(path)


def test_scan_reads_unmappable_files_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap

    path = tmp_path / "a.gif"
    path.write_bytes(ANIMATION)
    mapped = scan_gif(path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("cannot map this file")

    monkeypatch.setattr(mmap, "mmap", refuse)
    read = scan_gif(path)
    assert [f.lzw_offset for f in read.frames] == [f.lzw_offset for f in mapped.frames]
    assert read.frames[-1].lzw_end == mapped.frames[-1].lzw_end and len(read.frames) == 4
