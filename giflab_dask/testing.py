"""Byte-exact GIF construction for tests.

Pillow's GIF writer optimises frames (crops, merges, rewrites palettes and disposal), so it cannot
produce exact disposal / transparency / local-palette cases. This module writes every block
itself: header, logical screen, colour tables, NETSCAPE2.0 loop, comments, Graphic Control
Extensions, image descriptors and a real GIF LZW encoder (variable code width, clear and end
codes, table growth to 4096 codes followed by a clear code).

Pure stdlib + numpy; nothing here imports dask.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CASE_HEIGHT",
    "CASE_LOCAL_PALETTES",
    "CASE_PALETTE",
    "CASE_WIDTH",
    "GifFrame",
    "GifSpec",
    "disposal_case_specs",
    "disposal_cases",
    "encode_gif",
    "encode_solid_gif",
    "interlace_order",
    "lzw_encode",
    "make_animation",
    "make_animation_frames",
    "quirk_cases",
    "solid_lzw",
    "solid_palette",
    "write_gif",
]

_MAX_CODES = 4096  # 12-bit LZW codes
_MAX_CODE_BITS = 12


@dataclass(frozen=True, eq=False)
class GifFrame:
    """One image of a GIF, written exactly as given.

    ``indices`` is the (h, w) uint8 image rectangle placed at (``left``, ``top``). ``palette``
    is a local colour table ((n, 3) uint8, n <= 256, zero-padded to a power of two when
    written); ``None`` uses the global one. ``disposal`` (0..7) goes into the Graphic Control
    Extension verbatim; ``write_gce=False`` omits that extension entirely (and with it
    ``transparency``, ``disposal`` and ``delay_cs``). ``lzw_min_code_size`` overrides the
    computed LZW minimum code size (2..8).
    """

    indices: np.ndarray
    left: int = 0
    top: int = 0
    palette: np.ndarray | None = None
    transparency: int | None = None
    disposal: int = 0
    delay_cs: int = 10
    interlace: bool = False
    write_gce: bool = True
    lzw_min_code_size: int | None = None

    def __post_init__(self) -> None:
        idx = self.indices
        if not isinstance(idx, np.ndarray) or idx.dtype != np.uint8 or idx.ndim != 2:
            raise ValueError("GifFrame.indices must be a 2-D uint8 numpy array")
        h, w = idx.shape
        if not (1 <= h <= 0xFFFF and 1 <= w <= 0xFFFF):
            raise ValueError(f"frame size {w}x{h} outside 1..65535")
        _check_u16("left", self.left)
        _check_u16("top", self.top)
        _check_u16("delay_cs", self.delay_cs)
        if self.palette is not None:
            object.__setattr__(self, "palette", _as_palette(self.palette, "local palette"))
        if self.transparency is not None and not 0 <= self.transparency <= 255:
            raise ValueError(f"transparency index {self.transparency} outside 0..255")
        if not 0 <= self.disposal <= 7:
            raise ValueError(f"disposal {self.disposal} does not fit the 3-bit GCE field")
        if self.lzw_min_code_size is not None and not 2 <= self.lzw_min_code_size <= 8:
            raise ValueError("lzw_min_code_size must be within 2..8")

    @property
    def width(self) -> int:
        """Image rectangle width."""
        return int(self.indices.shape[1])

    @property
    def height(self) -> int:
        """Image rectangle height."""
        return int(self.indices.shape[0])


@dataclass(frozen=True, eq=False)
class GifSpec:
    """Everything :func:`encode_gif` needs, kept so tests can inspect what a file contains."""

    frames: tuple[GifFrame, ...]
    width: int
    height: int
    global_palette: np.ndarray | None
    options: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The GIF bytes."""
        return encode_gif(
            self.frames,
            self.width,
            self.height,
            global_palette=self.global_palette,
            **self.options,
        )


# --------------------------------------------------------------------------- validation helpers


def _check_u16(name: str, value: int) -> None:
    if not isinstance(value, int | np.integer) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name}={value!r} is not an integer in 0..65535")


def _as_palette(palette: np.ndarray, what: str) -> np.ndarray:
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= pal.shape[0] <= 256:
        raise ValueError(f"{what} must have shape (n, 3) with 1 <= n <= 256, got {pal.shape}")
    if pal.dtype != np.uint8:
        if not np.issubdtype(pal.dtype, np.integer) or pal.min() < 0 or pal.max() > 255:
            raise ValueError(f"{what} must hold integers in 0..255")
        pal = pal.astype(np.uint8)
    return pal


def _table_bits(n: int) -> int:
    """Exponent k of the smallest GIF colour table (2**k entries, k >= 1) holding n colours."""
    return max(1, (n - 1).bit_length())


def _color_table(pal: np.ndarray) -> tuple[bytes, int]:
    bits = _table_bits(len(pal))
    padded = np.zeros((1 << bits, 3), np.uint8)
    padded[: len(pal)] = pal
    return padded.tobytes(), bits


def _sub_blocks(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 255):
        chunk = data[i : i + 255]
        out.append(len(chunk))
        out += chunk
    out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------- LZW


def lzw_encode(data: bytes | np.ndarray, min_code_size: int) -> bytes:
    """GIF LZW-compress a flat stream of palette indices (no sub-block framing).

    Starts with a clear code, widens codes when the next table entry needs another bit, emits a
    clear code once the table holds 4096 codes, and finishes with the end-of-information code
    written at the width the decoder expects after the last data code.
    """
    if not 2 <= min_code_size <= 11:
        raise ValueError("min_code_size must be within 2..11")
    buf = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    clear = 1 << min_code_size
    if buf and max(buf) >= clear:
        raise ValueError(f"index {max(buf)} does not fit LZW minimum code size {min_code_size}")
    eoi = clear + 1
    first_free = eoi + 1

    out = bytearray()
    acc = 0  # bit accumulator, LSB first
    nacc = 0
    width = min_code_size + 1
    next_code = first_free
    table: dict[int, int] = {}

    # Emit the leading clear code.
    acc |= clear << nacc
    nacc += width

    if buf:
        prefix = buf[0]
        for px in buf[1:]:
            key = (prefix << 8) | px
            code = table.get(key)
            if code is not None:
                prefix = code
                continue
            acc |= prefix << nacc
            nacc += width
            while nacc >= 8:
                out.append(acc & 0xFF)
                acc >>= 8
                nacc -= 8
            # The decoder adds an entry after each code it reads (lagging the encoder by one), so
            # it widens once the entry it is about to add (== next_code) needs width+1 bits.
            if next_code >= (1 << width) and width < _MAX_CODE_BITS:
                width += 1
            if next_code >= _MAX_CODES:
                # Table full (4096 codes, the decoder adds the last one on reading this code):
                # clear, as Pillow's and most encoders do, rather than a deferred clear.
                acc |= clear << nacc
                nacc += width
                table.clear()
                width = min_code_size + 1
                next_code = first_free
            else:
                table[key] = next_code
                next_code += 1
            prefix = px
        acc |= prefix << nacc
        nacc += width
        # The decoder still adds an entry after this last data code, possibly widening.
        if next_code >= (1 << width) and width < _MAX_CODE_BITS and next_code > first_free:
            width += 1
    acc |= eoi << nacc
    nacc += width
    while nacc > 0:
        out.append(acc & 0xFF)
        acc >>= 8
        nacc -= 8
    return bytes(out)


def solid_lzw(value: int, n_pixels: int, min_code_size: int = 2) -> bytes:
    """:func:`lzw_encode` of ``n_pixels`` pixels all of index ``value``, byte for byte, in time
    proportional to the codes written (a 9459x9459 frame is ~46,000 codes, ~35 KB): for
    building huge frames in tests without a pixel array.

    A constant stream's codes are its runs: after a clear code the encoder writes the literal,
    then the newest entry each time (one pixel longer than the one before), and the longest
    entry that fits whatever is left at the end.
    """
    if not 2 <= min_code_size <= 11 or not 0 <= value < (1 << min_code_size):
        raise ValueError("value must fit min_code_size, which must be within 2..11")
    clear = 1 << min_code_size
    eoi, first_free = clear + 1, clear + 2
    codes: list[tuple[int, int]] = []  # (code, width)
    width, next_code = min_code_size + 1, first_free
    codes.append((clear, width))
    left = n_pixels
    while left > 0:
        longest = next_code - first_free + 1  # entries hold runs of 2..longest; literal: 1
        if left <= longest:  # the final prefix
            codes.append((value if left == 1 else first_free + left - 2, width))
            if next_code >= (1 << width) and width < _MAX_CODE_BITS and next_code > first_free:
                width += 1
            break
        codes.append((value if longest == 1 else first_free + longest - 2, width))
        left -= longest
        if next_code >= (1 << width) and width < _MAX_CODE_BITS:
            width += 1
        if next_code >= _MAX_CODES:
            codes.append((clear, width))
            width, next_code = min_code_size + 1, first_free
        else:
            next_code += 1
    codes.append((eoi, width))
    acc = nacc = 0
    out = bytearray()
    for code, bits in codes:
        acc |= code << nacc
        nacc += bits
        while nacc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8
    if nacc:
        out.append(acc & 0xFF)
    return bytes(out)


def encode_solid_gif(
    screen: tuple[int, int],
    frame: tuple[int, int],
    n_frames: int = 1,
    *,
    value: int = 1,
    left: int = 0,
    top: int = 0,
    interlace: bool = False,
) -> bytes:
    """A GIF of ``n_frames`` one-colour frames of ``frame`` = (width, height) pixels at
    (``left``, ``top``) on a ``screen`` = (width, height) logical screen, built without a pixel
    array (:func:`solid_lzw`): huge frames, or frames far larger than their screen, in KBs.
    Interlacing does not change a one-colour frame's data, only its descriptor's flag."""
    for name, v in (("screen", screen), ("frame", frame)):
        _check_u16(f"{name} width", v[0])
        _check_u16(f"{name} height", v[1])
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", screen[0], screen[1], 0xF1, 0, 0) + palette.tobytes()
    data = _sub_blocks(solid_lzw(value, frame[0] * frame[1], 2))
    for _ in range(n_frames):
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # GCE: disposal 1, 100 ms
        out += b"\x2c" + struct.pack("<HHHHB", left, top, frame[0], frame[1], 0x40 * interlace)
        out += b"\x02" + data
    return bytes(out + b"\x3b")


def interlace_order(height: int) -> list[int]:
    """Row numbers in the order an interlaced GIF stores them (4 passes)."""
    return [
        *range(0, height, 8),
        *range(4, height, 8),
        *range(2, height, 4),
        *range(1, height, 2),
    ]


# --------------------------------------------------------------------------- container


def _min_code_size(frame: GifFrame, table_size: int | None) -> int:
    if frame.lzw_min_code_size is not None:
        return frame.lzw_min_code_size
    need = int(frame.indices.max()) + 1
    if table_size is not None:
        need = max(need, table_size)
    return max(2, (need - 1).bit_length())


def encode_gif(
    frames: Sequence[GifFrame],
    width: int,
    height: int,
    *,
    global_palette: np.ndarray | None,
    background_index: int = 0,
    loop: int | None = 0,
    version: bytes = b"GIF89a",
    trailer: bool = True,
    comment: bytes | None = None,
    strict: bool = False,
) -> bytes:
    """Encode ``frames`` on a ``width`` x ``height`` logical screen, exactly as described.

    ``loop`` adds a NETSCAPE2.0 extension (0 = forever) unless ``None``. Frames may reach past
    the logical screen. With ``strict=True`` indices and the transparent index must lie inside
    the frame's colour table (the colours actually given, before padding) and some colour table
    must exist; the default lets decoders be tested on such broken files.
    """
    _check_u16("width", width)
    _check_u16("height", height)
    if not 0 <= background_index <= 255:
        raise ValueError(f"background_index {background_index} outside 0..255")
    if loop is not None:
        _check_u16("loop", loop)
    if len(version) != 6:
        raise ValueError("version must be 6 bytes, e.g. b'GIF89a'")
    gpal = None if global_palette is None else _as_palette(global_palette, "global palette")

    out = bytearray(version)
    packed = 0x70  # colour resolution 8 bits, not sorted
    gct = b""
    if gpal is not None:
        gct, bits = _color_table(gpal)
        packed |= 0x80 | (bits - 1)
    out += struct.pack("<HHBBB", width, height, packed, background_index, 0)
    out += gct

    if loop is not None:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00"
    if comment is not None:
        out += b"\x21\xfe" + _sub_blocks(bytes(comment))

    for i, frame in enumerate(frames):
        if not isinstance(frame, GifFrame):
            raise TypeError(f"frame {i} is a {type(frame).__name__}, not a GifFrame")
        pal = frame.palette if frame.palette is not None else gpal
        if strict:
            if pal is None:
                raise ValueError(f"frame {i} has neither a local nor a global palette")
            if int(frame.indices.max()) >= len(pal):
                raise ValueError(f"frame {i} uses index {int(frame.indices.max())} >= {len(pal)}")
            if frame.transparency is not None and frame.transparency >= len(pal):
                raise ValueError(f"frame {i} transparency index outside its palette")

        if frame.write_gce:
            flags = (frame.disposal << 2) | (1 if frame.transparency is not None else 0)
            out += b"\x21\xf9\x04" + struct.pack(
                "<BHB", flags, frame.delay_cs, frame.transparency or 0
            )
            out += b"\x00"

        desc = 0x40 if frame.interlace else 0
        lct = b""
        if frame.palette is not None:
            lct, bits = _color_table(frame.palette)
            desc |= 0x80 | (bits - 1)
        out += b"\x2c" + struct.pack(
            "<HHHHB", frame.left, frame.top, frame.width, frame.height, desc
        )
        out += lct

        rows = frame.indices
        if frame.interlace:
            rows = rows[interlace_order(frame.height)]
        table_size = None if pal is None else 1 << _table_bits(len(pal))
        mcs = _min_code_size(frame, table_size)
        out.append(mcs)
        out += _sub_blocks(lzw_encode(np.ascontiguousarray(rows), mcs))

    if trailer:
        out.append(0x3B)
    return bytes(out)


def write_gif(
    path: str | os.PathLike[str],
    frames: Sequence[GifFrame],
    width: int,
    height: int,
    **kw: Any,
) -> Path:
    """:func:`encode_gif` to ``path``; returns the path."""
    p = Path(path)
    p.write_bytes(encode_gif(frames, width, height, **kw))
    return p


# --------------------------------------------------------------------------- builders


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


# --------------------------------------------------------------------------- disposal cases

#: Global palette of :func:`disposal_case_specs` (index: colour).
CASE_PALETTE = np.array(
    [
        (0, 0, 0),  # 0 black
        (255, 255, 255),  # 1 white
        (255, 0, 0),  # 2 red
        (0, 255, 0),  # 3 green
        (0, 0, 255),  # 4 blue
        (255, 255, 0),  # 5 yellow
        (0, 255, 255),  # 6 cyan
        (255, 0, 255),  # 7 magenta
    ],
    np.uint8,
)
#: Local palettes of :func:`disposal_case_specs`; none of their colours is in CASE_PALETTE.
CASE_LOCAL_PALETTES = (
    np.array([(255, 128, 0), (128, 0, 255), (0, 128, 128), (128, 128, 128)], np.uint8),
    np.array([(64 + 8 * i, 200 - 8 * i, 32 + 12 * i) for i in range(16)], np.uint8),
    np.array([(10, 20, 30), (40, 50, 60), (70, 80, 90)], np.uint8),
)
CASE_WIDTH = 24
CASE_HEIGHT = 16


def _checker(h: int, w: int, a: int, b: int, cell: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.where(((yy // cell) + (xx // cell)) % 2 == 0, a, b).astype(np.uint8)


def _stripes(h: int, w: int, values: Sequence[int], band: int = 4) -> np.ndarray:
    xx = np.arange(w) // band
    row = np.asarray(values, np.uint8)[xx % len(values)]
    return np.tile(row, (h, 1))


def _base(disposal: int = 1, **kw: Any) -> GifFrame:
    """Full-screen opaque first frame: white/cyan vertical stripes."""
    return GifFrame(_stripes(CASE_HEIGHT, CASE_WIDTH, (1, 6)), disposal=disposal, **kw)


def _spec(frames: Sequence[GifFrame], **options: Any) -> GifSpec:
    gpal = options.pop("global_palette", CASE_PALETTE)
    return GifSpec(tuple(frames), CASE_WIDTH, CASE_HEIGHT, gpal, options)


def disposal_case_specs() -> dict[str, GifSpec]:
    """Small (24x16 screen) GIF descriptions covering disposal/transparency/palette corners.

    Frame rectangles are patterned (checkers/stripes) so a misplaced or mis-disposed area shows.
    """
    cases: dict[str, GifSpec] = {}

    def partial_sequence(d1: int, d2: int) -> list[GifFrame]:
        return [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=d1),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=d2),
            GifFrame(np.full((4, 4), 7, np.uint8), left=0, top=0, disposal=1),
        ]

    for d in (0, 1, 2, 3):
        cases[f"dispose{d}_partial"] = _spec(partial_sequence(d, 1))
    cases["dispose4_out_of_range_partial"] = _spec(partial_sequence(4, 1))
    cases["dispose7_out_of_range_partial"] = _spec(partial_sequence(7, 1))
    cases["dispose2_then_0"] = _spec(partial_sequence(2, 0))
    cases["dispose3_then_0"] = _spec(partial_sequence(3, 0))
    cases["dispose3_consecutive"] = _spec(partial_sequence(3, 3))
    cases["dispose2_full_first_frame"] = _spec(
        [_base(disposal=2), GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=1)]
    )
    cases["dispose3_first_frame"] = _spec(
        [
            GifFrame(_checker(8, 12, 2, 3), left=2, top=2, disposal=3),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=1),
        ]
    )

    # Transparency.
    holes = _checker(CASE_HEIGHT, CASE_WIDTH, 0, 4, cell=4)  # index 0 transparent
    cases["transparency_frame0"] = _spec(
        [
            GifFrame(holes, transparency=0, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=1),
        ]
    )
    cases["transparency_frame0_dispose2"] = _spec(
        [
            GifFrame(holes, transparency=0, disposal=2),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
        ]
    )
    cases["transparency_later_frames_only"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
            GifFrame(_checker(6, 8, 4, 5, cell=3), left=10, top=6, transparency=5, disposal=1),
        ]
    )
    cases["transparency_index_changes"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=12, top=8, transparency=3, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=8, top=5, transparency=None, disposal=1),
        ]
    )
    cases["transparency_with_dispose2_and_3"] = _spec(
        [
            _base(transparency=6),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=3, disposal=2),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, transparency=4, disposal=3),
            GifFrame(np.full((4, 4), 7, np.uint8), left=0, top=0, disposal=1),
        ]
    )

    # Palettes.
    lp0, lp1, lp2 = CASE_LOCAL_PALETTES
    cases["local_palette_differs"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 0, 3), left=4, top=3, palette=lp0, disposal=1),
            GifFrame(
                (np.arange(CASE_WIDTH * CASE_HEIGHT) % 16).astype(np.uint8).reshape(16, 24),
                palette=lp1,
                disposal=1,
            ),
            GifFrame(_checker(6, 8, 2, 3), left=10, top=6, disposal=1),
            GifFrame(_checker(5, 7, 1, 2), left=1, top=9, palette=lp2, transparency=1),
        ]
    )
    cases["no_global_palette"] = _spec(
        [
            GifFrame(_stripes(CASE_HEIGHT, CASE_WIDTH, (0, 1, 2, 3)), palette=lp0, disposal=1),
            GifFrame(_checker(6, 8, 0, 2), left=4, top=3, palette=lp2, disposal=2),
            GifFrame(_checker(6, 8, 5, 9), left=10, top=6, palette=lp1, disposal=1),
        ],
        global_palette=None,
    )
    cases["partial_first_frame"] = _spec(
        [
            GifFrame(_checker(8, 10, 2, 3), left=6, top=4, disposal=1),
            GifFrame(_checker(6, 8, 4, 5), left=12, top=8, disposal=1),
        ]
    )
    cases["partial_first_frame_bg_index5"] = _spec(
        [
            GifFrame(_checker(8, 10, 2, 3), left=6, top=4, disposal=1),
            GifFrame(_checker(6, 8, 4, 7), left=12, top=8, disposal=1),
        ],
        background_index=5,
    )
    cases["bg_index5_opaque_dispose2"] = _spec(
        [
            _base(disposal=2),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=2),
            GifFrame(_checker(6, 8, 4, 7), left=10, top=6, disposal=1),
        ],
        background_index=5,
    )

    # Layout / structure.
    rows = (np.arange(CASE_HEIGHT) % 8).astype(np.uint8)[:, None].repeat(CASE_WIDTH, axis=1)
    cases["interlaced_frame"] = _spec(
        [
            GifFrame(rows, interlace=True, disposal=1),
            GifFrame(
                (np.arange(11) % 8).astype(np.uint8)[:, None].repeat(9, axis=1)[:, ::-1].copy(),
                left=3,
                top=2,
                interlace=True,
                disposal=1,
            ),
            GifFrame(_checker(6, 8, 2, 3), left=10, top=6, disposal=1),
        ]
    )
    cases["interlaced_small_frames"] = _spec(
        [_base()]
        + [
            GifFrame(
                ((np.arange(h) + h) % 8).astype(np.uint8)[:, None].repeat(5, axis=1),
                left=2 + 5 * i,
                top=1,
                interlace=True,
                disposal=1,
            )
            for i, h in enumerate((1, 2, 3, 5))
        ]
    )
    cases["single_frame"] = _spec([_base(disposal=0)])
    cases["single_frame_gif87a_no_gce"] = _spec(
        [GifFrame(_checker(CASE_HEIGHT, CASE_WIDTH, 2, 4), write_gce=False)],
        loop=None,
        version=b"GIF87a",
    )
    cases["frame_without_gce"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, write_gce=False),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=1),
        ]
    )
    cases["frame_beyond_screen"] = _spec(
        [
            _base(),
            GifFrame(_checker(10, 10, 2, 3), left=18, top=10, disposal=1),
            GifFrame(_checker(6, 8, 4, 5), left=2, top=2, disposal=1),
        ]
    )
    return cases


def disposal_cases() -> dict[str, bytes]:
    """Encoded :func:`disposal_case_specs`: name -> GIF bytes."""
    return {name: spec.encode() for name, spec in disposal_case_specs().items()}


def quirk_cases() -> dict[str, bytes]:
    """GIF bytes for decoder corners outside the disposal cases: zero and tiny delays, stray
    bytes after the frames, a missing trailer, a 0x0 logical screen, undefined disposals 5/6."""
    delays = (0, 1, 2, 5, 10, 1000)
    frames = [
        GifFrame(_checker(CASE_HEIGHT, CASE_WIDTH, i % 8, (i + 3) % 8), delay_cs=d)
        for i, d in enumerate(delays)
    ]
    cases = {"zero_and_tiny_delays": _spec(frames).encode()}
    three = _spec(frames[2:5]).encode()
    cases["stray_bytes_after_frames"] = three[:-1] + b"\x00\x17not a block"
    cases["no_trailer"] = three[:-1]
    cases["zero_size_screen"] = encode_gif(
        [GifFrame(_checker(6, 8, 2, 3), left=2, top=1)], 0, 0, global_palette=CASE_PALETTE
    )
    cases["dispose5_and_6"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=5),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=6),
            GifFrame(_checker(6, 8, 4, 7), left=1, top=8, disposal=1),
        ]
    ).encode()
    return cases
