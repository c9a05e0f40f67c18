"""A byte-exact GIF writer for tests.

Pillow's GIF writer optimises frames (crops, merges, rewrites palettes and disposal), so it cannot
produce exact disposal / transparency / local-palette cases. This module writes every block
itself: header, logical screen, colour tables, NETSCAPE2.0 loop, comments, Graphic Control
Extensions, image descriptors and the LZW data of :mod:`giflab_dask.testing.lzw`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from giflab_dask.testing.lzw import lzw_encode, solid_lzw

__all__ = [
    "GifFrame",
    "GifSpec",
    "encode_gif",
    "encode_solid_gif",
    "interlace_order",
    "write_gif",
]


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


def _screen(
    width: int,
    height: int,
    gpal: np.ndarray | None,
    background_index: int,
    loop: int | None,
    version: bytes,
    comment: bytes | None,
) -> bytes:
    """Header, logical screen descriptor, global colour table, loop and comment extensions."""
    packed = 0x70  # colour resolution 8 bits, not sorted
    gct = b""
    if gpal is not None:
        gct, bits = _color_table(gpal)
        packed |= 0x80 | (bits - 1)
    out = bytearray(version)
    out += struct.pack("<HHBBB", width, height, packed, background_index, 0) + gct
    if loop is not None:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00"
    if comment is not None:
        out += b"\x21\xfe" + _sub_blocks(bytes(comment))
    return bytes(out)


def _check_strict(i: int, frame: GifFrame, pal: np.ndarray | None) -> None:
    """``strict=True``: indices and the transparent index inside the frame's colour table."""
    if pal is None:
        raise ValueError(f"frame {i} has neither a local nor a global palette")
    if int(frame.indices.max()) >= len(pal):
        raise ValueError(f"frame {i} uses index {int(frame.indices.max())} >= {len(pal)}")
    if frame.transparency is not None and frame.transparency >= len(pal):
        raise ValueError(f"frame {i} transparency index outside its palette")


def _frame_blocks(frame: GifFrame, pal: np.ndarray | None) -> bytes:
    """Graphic Control Extension, image descriptor, local colour table and LZW data."""
    out = bytearray()
    if frame.write_gce:
        flags = (frame.disposal << 2) | (1 if frame.transparency is not None else 0)
        out += b"\x21\xf9\x04" + struct.pack("<BHB", flags, frame.delay_cs, frame.transparency or 0)
        out += b"\x00"
    desc = 0x40 if frame.interlace else 0
    lct = b""
    if frame.palette is not None:
        lct, bits = _color_table(frame.palette)
        desc |= 0x80 | (bits - 1)
    out += b"\x2c" + struct.pack("<HHHHB", frame.left, frame.top, frame.width, frame.height, desc)
    out += lct
    rows = frame.indices
    if frame.interlace:
        rows = rows[interlace_order(frame.height)]
    table_size = None if pal is None else 1 << _table_bits(len(pal))
    mcs = _min_code_size(frame, table_size)
    out.append(mcs)
    out += _sub_blocks(lzw_encode(np.ascontiguousarray(rows), mcs))
    return bytes(out)


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

    out = bytearray(_screen(width, height, gpal, background_index, loop, version, comment))
    for i, frame in enumerate(frames):
        if not isinstance(frame, GifFrame):
            raise TypeError(f"frame {i} is a {type(frame).__name__}, not a GifFrame")
        pal = frame.palette if frame.palette is not None else gpal
        if strict:
            _check_strict(i, frame, pal)
        out += _frame_blocks(frame, pal)
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
