"""Tests of giflab_dask.testing, the byte-exact GIF writer used by the other tests.

Three independent decoders check the output: a strict reference parser/LZW decoder written here
(it also insists on the end-of-information code at the right width, which real decoders never
read), Pillow, and, when installed, ImageMagick and gifsicle.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from giflab_dask.testing import (
    CASE_HEIGHT,
    CASE_PALETTE,
    CASE_WIDTH,
    GifFrame,
    disposal_case_specs,
    disposal_cases,
    encode_gif,
    interlace_order,
    lzw_encode,
    make_animation,
    make_animation_frames,
    solid_palette,
    write_gif,
)

CONVERT = shutil.which("convert")
IDENTIFY = shutil.which("identify")
GIFSICLE = shutil.which("gifsicle")
needs_convert = pytest.mark.skipif(CONVERT is None, reason="ImageMagick `convert` not on PATH")
needs_identify = pytest.mark.skipif(IDENTIFY is None, reason="ImageMagick `identify` not on PATH")
needs_gifsicle = pytest.mark.skipif(GIFSICLE is None, reason="`gifsicle` not on PATH")


# --------------------------------------------------------------------------- reference decoder


@dataclass
class Lzw:
    pixels: bytes
    codes: list[tuple[int, int]]  # (code, width), including clear and end codes


def lzw_decode(data: bytes, min_code_size: int, n_pixels: int | None = None) -> Lzw:
    """Strict GIF LZW decoder.

    With ``n_pixels`` it stops once that many pixels are out, as real decoders do; without it the
    stream must end with the end code at the width the spec implies, followed only by zero
    padding bits.
    """
    clear = 1 << min_code_size
    eoi = clear + 1
    width = min_code_size + 1
    next_code = eoi + 1
    prefix: list[bytes] = [bytes([i]) for i in range(clear)] + [b"", b""]
    table = list(prefix)
    out = bytearray()
    codes: list[tuple[int, int]] = []
    prev: bytes | None = None
    acc = nacc = pos = 0
    while True:
        if n_pixels is not None and len(out) >= n_pixels:
            break
        while nacc < width:
            if pos >= len(data):
                raise ValueError(f"data ends inside a {width}-bit code after {len(codes)} codes")
            acc |= data[pos] << nacc
            pos += 1
            nacc += 8
        code = acc & ((1 << width) - 1)
        acc >>= width
        nacc -= width
        codes.append((code, width))
        if code == clear:
            width, next_code, prev, table = min_code_size + 1, eoi + 1, None, list(prefix)
            continue
        if code == eoi:
            if pos != len(data) or acc != 0:
                raise ValueError("data or non-zero bits after the end code")
            break
        if code < len(table) and code not in (clear, eoi):
            entry = table[code]
        elif code == next_code and prev is not None:
            entry = prev + prev[:1]
        else:
            raise ValueError(f"code {code} out of range (next free {next_code})")
        if prev is not None and next_code < 4096:
            table.append(prev + entry[:1])
            next_code += 1
            if next_code == (1 << width) and width < 12:
                width += 1
        out += entry
        prev = entry
    return Lzw(bytes(out), codes)


@dataclass
class ParsedFrame:
    left: int
    top: int
    width: int
    height: int
    interlace: bool
    palette: np.ndarray | None
    min_code_size: int
    indices: np.ndarray
    gce: tuple[int, int, int | None] | None  # (disposal, delay_cs, transparency)
    lzw: Lzw


@dataclass
class ParsedGif:
    version: bytes
    width: int
    height: int
    background_index: int
    global_palette: np.ndarray | None
    loop: int | None = None
    comments: list[bytes] = field(default_factory=list)
    frames: list[ParsedFrame] = field(default_factory=list)
    trailer: bool = False


def _read_sub_blocks(b: bytes, i: int) -> tuple[bytes, int]:
    data = bytearray()
    while b[i]:
        n = b[i]
        if i + 1 + n > len(b):
            raise ValueError("sub-block runs past the end of the file")
        data += b[i + 1 : i + 1 + n]
        i += n + 1
    return bytes(data), i + 1


def _read_table(b: bytes, i: int, flags: int) -> tuple[np.ndarray | None, int]:
    if not flags & 0x80:
        return None, i
    n = 2 << (flags & 7)
    return np.frombuffer(b[i : i + 3 * n], np.uint8).reshape(n, 3), i + 3 * n


def parse_gif(b: bytes) -> ParsedGif:
    """Walk every block; decode every frame strictly (deinterlacing as needed)."""
    assert b[:6] in (b"GIF87a", b"GIF89a")
    w, h, flags, bg, aspect = np.frombuffer(b[6:13], "<u2,<u2,u1,u1,u1")[0].tolist()
    assert aspect == 0
    gpal, i = _read_table(b, 13, flags)
    gif = ParsedGif(b[:6], w, h, bg, gpal)
    gce = None
    while i < len(b):
        tag = b[i]
        if tag == 0x3B:
            gif.trailer = True
            assert i == len(b) - 1, "bytes after the trailer"
            break
        if tag == 0x21:
            label = b[i + 1]
            if label == 0xF9:
                assert b[i + 2] == 4
                packed = b[i + 3]
                delay = int.from_bytes(b[i + 4 : i + 6], "little")
                gce = ((packed >> 2) & 7, delay, b[i + 6] if packed & 1 else None)
                assert b[i + 7] == 0
                i += 8
            elif label == 0xFF:
                assert b[i + 2] == 11
                app = b[i + 3 : i + 14]
                data, i = _read_sub_blocks(b, i + 14)
                assert app == b"NETSCAPE2.0" and data[0] == 1 and len(data) == 3
                gif.loop = int.from_bytes(data[1:3], "little")
            elif label == 0xFE:
                data, i = _read_sub_blocks(b, i + 2)
                gif.comments.append(data)
            else:
                raise AssertionError(f"unexpected extension {label:#x}")
            continue
        assert tag == 0x2C, f"unexpected block {tag:#x} at {i}"
        left, top, fw, fh, fflags = np.frombuffer(b[i + 1 : i + 10], "<u2,<u2,<u2,<u2,u1")[
            0
        ].tolist()
        lpal, i = _read_table(b, i + 10, fflags)
        mcs = b[i]
        data, i = _read_sub_blocks(b, i + 1)
        lzw = lzw_decode(data, mcs)
        assert len(lzw.pixels) == fw * fh, "pixel count differs from the image size"
        stored = np.frombuffer(lzw.pixels, np.uint8).reshape(fh, fw)
        interlace = bool(fflags & 0x40)
        indices = stored
        if interlace:
            indices = np.empty_like(stored)
            indices[interlace_order(fh)] = stored
        gif.frames.append(ParsedFrame(left, top, fw, fh, interlace, lpal, mcs, indices, gce, lzw))
        gce = None
    return gif


def _pad(pal: np.ndarray) -> np.ndarray:
    n = 2 << max(0, (len(pal) - 1).bit_length() - 1)
    out = np.zeros((n, 3), np.uint8)
    out[: len(pal)] = pal
    return out


def assert_matches(parsed: ParsedGif, frames: list[GifFrame] | tuple[GifFrame, ...]) -> None:
    assert len(parsed.frames) == len(frames)
    for p, f in zip(parsed.frames, frames, strict=True):
        assert (p.left, p.top, p.width, p.height) == (f.left, f.top, f.width, f.height)
        assert p.interlace == f.interlace
        np.testing.assert_array_equal(p.indices, f.indices)
        if f.palette is None:
            assert p.palette is None
        else:
            np.testing.assert_array_equal(p.palette, _pad(f.palette))
        expect_gce = (f.disposal, f.delay_cs, f.transparency) if f.write_gce else None
        assert p.gce == expect_gce


# --------------------------------------------------------------------------- helpers


def _pil_frames(b: bytes) -> list[tuple[Image.Image, dict]]:
    im = Image.open(io.BytesIO(b))
    out = []
    for k in range(im.n_frames):
        im.seek(k)
        im.load()
        out.append((im.convert("RGBA"), dict(im.info)))
    return out


def _random_frame(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    return rng.integers(0, n, size=(h, w), dtype=np.uint8)


def _convert_raw_frames(path: Path, frames: list[GifFrame] | tuple[GifFrame, ...]) -> list:
    """ImageMagick's un-coalesced frames (each its own rectangle) as RGBA arrays."""
    r = subprocess.run([CONVERT, str(path), "rgba:-"], capture_output=True, check=True)
    assert r.stderr == b""
    raw = np.frombuffer(r.stdout, np.uint8)
    out, off = [], 0
    for f in frames:
        n = f.width * f.height * 4
        out.append(raw[off : off + n].reshape(f.height, f.width, 4))
        off += n
    assert off == raw.size
    return out


# --------------------------------------------------------------------------- LZW


@pytest.mark.parametrize("mcs", range(2, 9))
def test_lzw_roundtrip_random(mcs: int) -> None:
    rng = np.random.default_rng(mcs)
    for length in [1, 2, 3, 5, 17, 100, 1000, 5000]:
        for alphabet in {2, 1 << mcs}:
            data = rng.integers(0, alphabet, size=length, dtype=np.uint8).tobytes()
            assert lzw_decode(lzw_encode(data, mcs), mcs).pixels == data
        runs = np.repeat(rng.integers(0, 1 << mcs, size=length // 7 + 1), 7)[:length]
        data = runs.astype(np.uint8).tobytes()
        assert lzw_decode(lzw_encode(data, mcs), mcs).pixels == data


def test_lzw_every_length_and_end_code_width() -> None:
    """Sweep lengths so the last data code lands on every code-width boundary."""
    saw_widen_before_end = 0
    for mcs in (2, 3, 4, 8):
        rng = np.random.default_rng(100 + mcs)
        for length in range(1, 700):
            data = rng.integers(0, 1 << mcs, size=length, dtype=np.uint8).tobytes()
            dec = lzw_decode(lzw_encode(data, mcs), mcs)  # strict: checks end code width
            assert dec.pixels == data
            (*_, last_data), end = dec.codes[:-1], dec.codes[-1]
            assert end[0] == (1 << mcs) + 1
            saw_widen_before_end += end[1] > last_data[1]
    assert saw_widen_before_end > 0


def test_lzw_zero_length_and_constant_runs() -> None:
    enc = lzw_encode(b"", 2)
    assert lzw_decode(enc, 2).codes == [(4, 3), (5, 3)]
    data = bytes(300 * 300)  # long runs: KwKwK codes all the way to width 12 and beyond
    dec = lzw_decode(lzw_encode(data, 2), 2)
    assert dec.pixels == data
    assert max(w for _, w in dec.codes) >= 9


def test_lzw_table_overflow_clears_at_4096() -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, size=200 * 150, dtype=np.uint8).tobytes()
    dec = lzw_decode(lzw_encode(data, 8), 8)
    assert dec.pixels == data
    clears = [k for k, (c, _) in enumerate(dec.codes) if c == 256]
    assert clears[0] == 0 and len(clears) > 5
    # Between clears codes widen 9 -> 12 and the table fills exactly (256 + 2 + 3838 = 4096).
    seg = dec.codes[clears[1] + 1 : clears[2]]
    assert {w for _, w in seg} == {9, 10, 11, 12}
    assert len(seg) == 4096 - 258 + 1
    assert dec.codes[clears[1]][1] == 12  # the clear itself is sent at the full width


def test_lzw_matches_pillow_encoder() -> None:
    """Same data codes as Pillow's C encoder (Pillow writes the end code 1 bit too narrow when
    the last data code crosses a width boundary; its decoder never reads it, so compare codes
    up to the last pixel)."""
    rng = np.random.default_rng(11)
    identical = 0
    for trial in range(60):
        mcs = int(rng.integers(2, 9))
        h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        idx = rng.integers(0, int(rng.integers(1, (1 << mcs) + 1)), size=(h, w), dtype=np.uint8)
        if trial % 2:
            idx = np.sort(idx, axis=None).reshape(h, w)
        im = Image.fromarray(idx, "P")
        enc = Image._getencoder("P", "gif", ("P", mcs, 0))
        enc.setimage(im.im, (0, 0, w, h))
        framed = b""
        while True:
            _, status, chunk = enc.encode(65536)
            framed += chunk
            if status:
                break
        pil = bytearray()
        i = 0
        while i < len(framed) and framed[i]:
            pil += framed[i + 1 : i + 1 + framed[i]]
            i += framed[i] + 1
        mine = lzw_encode(idx, mcs)
        identical += mine == bytes(pil)
        assert (
            lzw_decode(bytes(pil), mcs, n_pixels=h * w).codes
            == lzw_decode(mine, mcs, n_pixels=h * w).codes
        )
    assert identical >= 50


def test_lzw_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="min_code_size"):
        lzw_encode(b"\x00", 1)
    with pytest.raises(ValueError, match="does not fit"):
        lzw_encode(b"\x04", 2)


# --------------------------------------------------------------------------- container


def test_interlace_order() -> None:
    assert interlace_order(16) == [0, 8, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15]
    assert interlace_order(1) == [0]
    for h in range(1, 40):
        assert sorted(interlace_order(h)) == list(range(h))


def test_container_fields_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gpal = solid_palette(5, seed=1)
    frames = [
        GifFrame(_random_frame(rng, 9, 11, 5), disposal=1, delay_cs=3),
        GifFrame(
            _random_frame(rng, 4, 6, 3),
            left=2,
            top=1,
            palette=solid_palette(3, seed=2),
            transparency=2,
            disposal=2,
            delay_cs=0,
        ),
        GifFrame(_random_frame(rng, 13, 5, 5), left=7, interlace=True, disposal=3),
        GifFrame(_random_frame(rng, 2, 2, 5), left=30, top=40, write_gce=False),  # off-screen
        GifFrame(_random_frame(rng, 3, 3, 5), disposal=6, delay_cs=65535),
    ]
    b = encode_gif(frames, 11, 9, global_palette=gpal, background_index=4, loop=7, comment=b"hi")
    p = parse_gif(b)
    assert (p.version, p.width, p.height, p.background_index) == (b"GIF89a", 11, 9, 4)
    np.testing.assert_array_equal(p.global_palette, _pad(gpal))
    assert (p.loop, p.comments, p.trailer) == (7, [b"hi"], True)
    assert_matches(p, frames)
    assert [f.min_code_size for f in p.frames] == [3, 2, 3, 3, 3]

    path = write_gif(
        tmp_path / "x.gif",
        frames,
        11,
        9,
        global_palette=gpal,
        background_index=4,
        loop=7,
        comment=b"hi",
    )
    assert isinstance(path, Path) and path.read_bytes() == b

    b87 = encode_gif(
        frames[:1],
        11,
        9,
        global_palette=None,
        loop=None,
        version=b"GIF87a",
        trailer=False,
        comment=b"x" * 600,
    )
    p = parse_gif(b87)
    assert (p.version, p.global_palette, p.loop, p.trailer) == (b"GIF87a", None, None, False)
    assert p.comments == [b"x" * 600]
    assert p.frames[0].min_code_size == 3  # from the largest index when there is no palette


def test_min_code_size_and_palette_padding() -> None:
    one = np.zeros((1, 1), np.uint8)
    for n, mcs, table in [
        (1, 2, 2),
        (2, 2, 2),
        (3, 2, 4),
        (4, 2, 4),
        (5, 3, 8),
        (17, 5, 32),
        (129, 8, 256),
        (256, 8, 256),
    ]:
        p = parse_gif(encode_gif([GifFrame(one)], 1, 1, global_palette=solid_palette(n)))
        assert p.frames[0].min_code_size == mcs
        assert len(p.global_palette) == table
    p = parse_gif(
        encode_gif([GifFrame(one, lzw_min_code_size=8)], 1, 1, global_palette=solid_palette(2))
    )
    assert p.frames[0].min_code_size == 8


def test_invalid_indices_are_written_unless_strict() -> None:
    idx = np.array([[0, 1, 5, 9]], np.uint8)
    pal = solid_palette(4)
    p = parse_gif(encode_gif([GifFrame(idx)], 4, 1, global_palette=pal))
    np.testing.assert_array_equal(p.frames[0].indices, idx)
    assert p.frames[0].min_code_size == 4  # widened so index 9 is a literal, not a clear code
    im = Image.open(io.BytesIO(encode_gif([GifFrame(idx)], 4, 1, global_palette=pal)))
    np.testing.assert_array_equal(np.asarray(im), idx)
    with pytest.raises(ValueError, match="index 9"):
        encode_gif([GifFrame(idx)], 4, 1, global_palette=pal, strict=True)
    with pytest.raises(ValueError, match="transparency"):
        encode_gif([GifFrame(idx[:, :1], transparency=4)], 1, 1, global_palette=pal, strict=True)
    with pytest.raises(ValueError, match="neither"):
        encode_gif([GifFrame(idx[:, :1])], 1, 1, global_palette=None, strict=True)
    encode_gif([GifFrame(idx[:, :2], transparency=1)], 2, 1, global_palette=pal, strict=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"indices": np.zeros((2, 2), np.int32)}, "uint8"),
        ({"indices": np.zeros((2, 2, 1), np.uint8)}, "2-D"),
        ({"indices": np.zeros((0, 2), np.uint8)}, "outside"),
        ({"palette": np.zeros((257, 3), np.uint8)}, r"\(n, 3\)"),
        ({"palette": np.zeros((4, 4), np.uint8)}, r"\(n, 3\)"),
        ({"palette": np.full((4, 3), 300)}, "0..255"),
        ({"disposal": 8}, "3-bit"),
        ({"transparency": 256}, "transparency"),
        ({"left": -1}, "left"),
        ({"top": 65536}, "top"),
        ({"delay_cs": 70000}, "delay_cs"),
        ({"lzw_min_code_size": 9}, "lzw_min_code_size"),
    ],
)
def test_frame_validation(kwargs: dict, match: str) -> None:
    args = {"indices": np.zeros((2, 2), np.uint8), **kwargs}
    with pytest.raises(ValueError, match=match):
        GifFrame(**args)


def test_encode_validation() -> None:
    f = [GifFrame(np.zeros((2, 2), np.uint8))]
    pal = solid_palette(2)
    with pytest.raises(ValueError, match="global palette"):
        encode_gif(f, 2, 2, global_palette=np.zeros((300, 3), np.uint8))
    with pytest.raises(ValueError, match="background_index"):
        encode_gif(f, 2, 2, global_palette=pal, background_index=256)
    with pytest.raises(ValueError, match="version"):
        encode_gif(f, 2, 2, global_palette=pal, version=b"GIF8")
    with pytest.raises(ValueError, match="loop"):
        encode_gif(f, 2, 2, global_palette=pal, loop=-1)
    with pytest.raises(TypeError, match="GifFrame"):
        encode_gif([np.zeros((2, 2), np.uint8)], 2, 2, global_palette=pal)  # type: ignore[list-item]
    # int palettes in range are accepted and converted
    assert GifFrame(f[0].indices, palette=np.array([[1, 2, 3]])).palette.dtype == np.uint8


# --------------------------------------------------------------------------- Pillow round trips


@pytest.mark.parametrize(
    ("h", "w", "n", "interlace"),
    [
        (150, 200, 256, False),  # high entropy: table fills and clears several times
        (150, 200, 256, True),
        (1, 1, 2, False),
        (1, 1, 1, True),
        (37, 23, 2, False),
        (37, 23, 2, True),
        (9, 300, 3, False),
        (64, 64, 16, True),
    ],
)
def test_pillow_single_frame_indices(h: int, w: int, n: int, interlace: bool) -> None:
    rng = np.random.default_rng(h * w + n)
    idx = _random_frame(rng, h, w, n)
    pal = solid_palette(n, seed=n)
    b = encode_gif([GifFrame(idx, interlace=interlace)], w, h, global_palette=pal)
    im = Image.open(io.BytesIO(b))
    assert im.mode == "P" and im.size == (w, h)
    assert im.tile[0].args[1] == interlace  # Pillow saw the interlace flag
    np.testing.assert_array_equal(np.asarray(im), idx)
    np.testing.assert_array_equal(np.array(im.getpalette()[: 3 * n], np.uint8).reshape(n, 3), pal)
    assert_matches(parse_gif(b), [GifFrame(idx, interlace=interlace)])


def test_pillow_multi_frame_rgb_durations_loop() -> None:
    """Opaque frames of varied size, offset, palette and interlace: each frame's rectangle in
    Pillow's composite equals its palette[indices], whatever Pillow does about disposal."""
    rng = np.random.default_rng(5)
    gpal = solid_palette(256, seed=9)
    frames = [
        GifFrame(_random_frame(rng, 150, 200, 256), delay_cs=4),
        GifFrame(
            _random_frame(rng, 40, 70, 2),
            left=10,
            top=20,
            palette=solid_palette(2, 4),
            delay_cs=7,
            interlace=True,
            disposal=1,
        ),
        GifFrame(_random_frame(rng, 1, 1, 256), left=199, top=149, delay_cs=0, disposal=2),
        GifFrame(
            _random_frame(rng, 100, 120, 16),
            left=3,
            top=5,
            palette=solid_palette(16, 5),
            delay_cs=250,
            disposal=3,
        ),
        GifFrame(_random_frame(rng, 150, 200, 3), palette=solid_palette(3, 6), interlace=True),
    ]
    b = encode_gif(frames, 200, 150, global_palette=gpal, loop=3)
    got = _pil_frames(b)
    assert len(got) == len(frames)
    for (img, info), f in zip(got, frames, strict=True):
        pal = f.palette if f.palette is not None else gpal
        rect = np.asarray(img)[f.top : f.top + f.height, f.left : f.left + f.width]
        np.testing.assert_array_equal(rect[..., :3], pal[f.indices])
        assert info["duration"] == f.delay_cs * 10
        assert info["loop"] == 3
    assert_matches(parse_gif(b), frames)


def test_pillow_no_loop_and_no_gce() -> None:
    idx = np.zeros((2, 2), np.uint8)
    b = encode_gif(
        [GifFrame(idx, write_gce=False)], 2, 2, global_palette=solid_palette(2), loop=None
    )
    im = Image.open(io.BytesIO(b))
    assert "loop" not in im.info and "duration" not in im.info
    b = encode_gif([GifFrame(idx)], 2, 2, global_palette=solid_palette(2), loop=0)
    assert Image.open(io.BytesIO(b)).info["loop"] == 0


def test_pillow_transparency_and_disposal_fields() -> None:
    idx = np.array([[0, 1], [2, 3]], np.uint8)
    pal = solid_palette(4)
    frames = [GifFrame(idx, transparency=t, disposal=d) for t, d in [(2, 1), (None, 2), (3, 3)]]
    im = Image.open(io.BytesIO(encode_gif(frames, 2, 2, global_palette=pal)))
    assert im.info["transparency"] == 2
    seen = []
    for k in range(3):
        im.seek(k)
        seen.append(im.disposal_method)
    assert seen == [1, 2, 3]


# --------------------------------------------------------------------------- builders


def test_solid_palette() -> None:
    for n in (1, 2, 3, 16, 256):
        pal = solid_palette(n, seed=4)
        assert pal.shape == (n, 3) and pal.dtype == np.uint8
        assert len({tuple(c) for c in pal.tolist()}) == n
    np.testing.assert_array_equal(solid_palette(16, 1), solid_palette(16, 1))
    assert not np.array_equal(solid_palette(16, 1), solid_palette(16, 2))
    with pytest.raises(ValueError):
        solid_palette(257)


def test_make_animation() -> None:
    b = make_animation(6, 40, 30, seed=2, delay_cs=[1, 2, 3, 4, 5, 6])
    assert b == make_animation(6, 40, 30, seed=2, delay_cs=[1, 2, 3, 4, 5, 6])
    assert b != make_animation(6, 40, 30, seed=3, delay_cs=[1, 2, 3, 4, 5, 6])
    frames, pal = make_animation_frames(6, 40, 30, seed=2, delay_cs=[1, 2, 3, 4, 5, 6])
    assert pal.shape == (256, 3) and len({tuple(c) for c in pal.tolist()}) == 256
    assert_matches(parse_gif(b), frames)
    got = _pil_frames(b)
    assert [info["duration"] for _, info in got] == [10, 20, 30, 40, 50, 60]
    for (img, _), f in zip(got, frames, strict=True):
        assert img.size == (40, 30)
        np.testing.assert_array_equal(np.asarray(img)[..., :3], pal[f.indices])
    assert all(not np.array_equal(a.indices, c.indices) for a, c in pairwise(frames))
    still, _ = make_animation_frames(4, 40, 30, moving_box=False)
    assert all(np.array_equal(still[0].indices, f.indices) for f in still)
    one = parse_gif(make_animation(1, 1, 1, delay_cs=7, loop=None))
    assert one.loop is None and one.frames[0].gce[1] == 7
    with pytest.raises(ValueError, match="delays"):
        make_animation(3, 8, 8, delay_cs=[1, 2])


# --------------------------------------------------------------------------- disposal cases

REQUIRED_CASES = {
    "dispose0_partial",
    "dispose1_partial",
    "dispose2_partial",
    "dispose3_partial",
    "dispose4_out_of_range_partial",
    "dispose2_then_0",
    "dispose3_then_0",
    "transparency_frame0",
    "transparency_later_frames_only",
    "transparency_index_changes",
    "local_palette_differs",
    "no_global_palette",
    "partial_first_frame",
    "bg_index5_opaque_dispose2",
    "interlaced_frame",
    "single_frame",
    "frame_without_gce",
    "frame_beyond_screen",
}


@pytest.fixture(scope="module")
def case_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cases")
    out = {}
    for name, b in disposal_cases().items():
        out[name] = d / f"{name}.gif"
        out[name].write_bytes(b)
    return out


def test_disposal_cases_cover_the_list() -> None:
    specs = disposal_case_specs()
    assert set(specs) >= REQUIRED_CASES
    for name, spec in specs.items():
        assert (spec.width, spec.height) == (CASE_WIDTH, CASE_HEIGHT), name
        assert_matches(parse_gif(spec.encode()), spec.frames)
    screen = (CASE_WIDTH, CASE_HEIGHT)

    def partial(f: GifFrame) -> bool:
        return (f.left, f.top, f.width, f.height) != (0, 0, *screen)

    for d in range(5):
        f = specs[f"dispose{d}_partial" if d < 4 else "dispose4_out_of_range_partial"].frames[1]
        assert f.disposal == d and partial(f)
    for d in (2, 3):
        fr = specs[f"dispose{d}_then_0"].frames
        assert [fr[1].disposal, fr[2].disposal] == [d, 0]
    assert specs["transparency_frame0"].frames[0].transparency is not None
    later = specs["transparency_later_frames_only"].frames
    assert later[0].transparency is None and all(f.transparency is not None for f in later[1:])
    assert len({f.transparency for f in specs["transparency_index_changes"].frames[1:]}) == 3
    local = [f.palette for f in specs["local_palette_differs"].frames if f.palette is not None]
    assert local and not any(
        {tuple(c) for c in p.tolist()} & {tuple(c) for c in CASE_PALETTE.tolist()} for p in local
    )
    ng = specs["no_global_palette"]
    assert ng.global_palette is None and all(f.palette is not None for f in ng.frames)
    assert partial(specs["partial_first_frame"].frames[0])
    bg = specs["bg_index5_opaque_dispose2"]
    assert bg.options["background_index"] == 5 and bg.frames[0].transparency is None
    assert any(f.interlace for f in specs["interlaced_frame"].frames)
    assert len(specs["single_frame"].frames) == 1
    assert not specs["frame_without_gce"].frames[1].write_gce
    beyond = specs["frame_beyond_screen"].frames[1]
    assert beyond.left + beyond.width > CASE_WIDTH and beyond.top + beyond.height > CASE_HEIGHT


def test_disposal_cases_open_in_pillow() -> None:
    for name, spec in disposal_case_specs().items():
        im = Image.open(io.BytesIO(spec.encode()))
        assert im.n_frames == len(spec.frames), name
        for k, f in enumerate(spec.frames):
            im.seek(k)
            im.load()
            # Opaque pixels of each frame show in its rectangle of Pillow's composite.
            rgba = np.asarray(im.convert("RGBA"))
            rect = rgba[f.top : f.top + f.height, f.left : f.left + f.width, :3]
            pal = f.palette if f.palette is not None else spec.global_palette
            opaque = np.ones(f.indices.shape, bool)
            if f.transparency is not None:
                opaque = f.indices != f.transparency
            np.testing.assert_array_equal(rect[opaque], pal[f.indices][opaque], err_msg=name)


@needs_identify
def test_disposal_cases_identify(case_files: dict[str, Path]) -> None:
    dispose_names = {0: "Undefined", 1: "None", 2: "Background", 3: "Previous"}
    for name, path in case_files.items():
        spec = disposal_case_specs()[name]
        r = subprocess.run(
            [IDENTIFY, "-format", r"%wx%h%X%Y %D %T\n", str(path)], capture_output=True, text=True
        )
        assert r.returncode == 0 and r.stderr == "", (name, r.stderr)
        lines = r.stdout.splitlines()
        assert len(lines) == len(spec.frames), name
        for line, f in zip(lines, spec.frames, strict=True):
            geom, disposal, delay = line.split()
            assert geom == f"{f.width}x{f.height}+{f.left}+{f.top}", name
            if f.write_gce:  # ImageMagick carries the previous GCE over to a frame without one
                assert delay == str(f.delay_cs)
                assert disposal == dispose_names.get(f.disposal, "Unrecognized")


@needs_convert
def test_disposal_cases_convert_raw_frames(case_files: dict[str, Path]) -> None:
    """ImageMagick's un-coalesced frames are palette[indices], alpha 0 where transparent."""
    for name, path in case_files.items():
        spec = disposal_case_specs()[name]
        for raw, f in zip(_convert_raw_frames(path, spec.frames), spec.frames, strict=True):
            pal = f.palette if f.palette is not None else spec.global_palette
            np.testing.assert_array_equal(raw[..., :3], pal[f.indices], err_msg=name)
            alpha = np.where(f.indices == f.transparency, 0, 255)
            np.testing.assert_array_equal(raw[..., 3], alpha, err_msg=name)


@needs_convert
def test_convert_high_entropy_and_interlace(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    gpal = solid_palette(256, 1)
    frames = [
        GifFrame(_random_frame(rng, 150, 200, 256)),
        GifFrame(_random_frame(rng, 150, 200, 256), interlace=True, transparency=7),
        GifFrame(_random_frame(rng, 1, 1, 2), palette=solid_palette(2, 2), left=5, top=5),
        GifFrame(_random_frame(rng, 33, 17, 2), palette=solid_palette(2, 3), interlace=True),
    ]
    path = write_gif(tmp_path / "big.gif", frames, 200, 150, global_palette=gpal)
    for raw, f in zip(_convert_raw_frames(path, frames), frames, strict=True):
        pal = f.palette if f.palette is not None else gpal
        np.testing.assert_array_equal(raw[..., :3], pal[f.indices])


def _gifsicle_info(path: Path) -> list[str]:
    r = subprocess.run([GIFSICLE, "--info", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return re.split(r"\n  \+ ", r.stdout)[1:]


@needs_gifsicle
def test_disposal_cases_gifsicle(case_files: dict[str, Path]) -> None:
    words = {0: None, 1: "asis", 2: "background", 3: "previous"}
    for name, path in case_files.items():
        spec = disposal_case_specs()[name]
        # Copying decompresses every frame: any LZW error or missing pixel shows on stderr.
        r = subprocess.run([GIFSICLE, str(path), "-o", "/dev/null"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", (name, r.stderr)
        images = _gifsicle_info(path)
        assert len(images) == len(spec.frames), name
        for text, f in zip(images, spec.frames, strict=True):
            head = text.splitlines()[0]
            assert re.match(rf"image #\d+ {f.width}x{f.height}\b", head), (name, head)
            if (f.left, f.top) != (0, 0):
                assert f" at {f.left},{f.top}" in head, (name, head)
            assert ("interlaced" in head) == f.interlace
            assert (f" transparent {f.transparency}" in head) == (f.transparency is not None)
            assert ("local color table" in text) == (f.palette is not None)
            m = re.search(r"disposal (\w+)", text)
            if f.write_gce and f.disposal:
                assert m is not None and m.group(1) == words.get(f.disposal, str(f.disposal))
            else:
                assert m is None
            if f.write_gce and f.delay_cs:
                assert f"delay {f.delay_cs / 100:.2f}s" in text


@needs_gifsicle
def test_gifsicle_high_entropy(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frames = [GifFrame(_random_frame(rng, 150, 200, 256), interlace=i) for i in (False, True)]
    path = write_gif(tmp_path / "e.gif", frames, 200, 150, global_palette=solid_palette(256))
    r = subprocess.run([GIFSICLE, str(path), "-o", "/dev/null"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    info = subprocess.run([GIFSICLE, "--info", str(path)], capture_output=True, text=True)
    assert "loop forever" in info.stdout and "2 images" in info.stdout
