"""Streaming GIF decode: the file's blocks are parsed here, Pillow decodes each frame's LZW data,
and frames are composited onto the logical screen the way browsers show them (GIF89a rules).

Why not ``PIL.Image.seek``? Pillow's own compositing differs from what viewers show: its
disposal is sticky (an "unspecified" (0) frame after a disposal 2/3 frame is disposed again);
"restore to background" (2) paints a colour where browsers and ImageMagick clear to transparent;
after an opaque first frame it composites in RGB, losing later transparency; a partial first
frame lies on palette index 0, where browsers leave the screen transparent; and frames reaching
past the logical screen grow the canvas instead of being clipped.

So this module reads the block structure itself (``scan_gif``: header, colour tables, extensions,
image descriptors, sub-block offsets) and asks Pillow only to turn one frame's LZW data into palette
indices (its GIF decoder, driven as ``ImageFile.load`` drives it). Compositing is numpy.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from giflab_dask import config
from giflab_dask.errors import GifDecodeError, GifLimitError

__all__ = ["FrameRecord", "GifLayout", "Limits", "iter_frames", "scan_gif"]

_TRAILER = 0x3B
_EXTENSION = 0x21
_IMAGE = 0x2C
_GCE = 0xF9
_APPLICATION = 0xFF
_PLAIN_TEXT = 0x01


@dataclass(frozen=True, slots=True)  # slots: a huge batch plans with every frame's record
class FrameRecord:
    """One image of a GIF as its blocks declare it (no pixels decoded)."""

    left: int
    top: int
    width: int
    height: int
    interlace: bool
    disposal: int
    delay_cs: int
    transparency: int | None
    palette: np.ndarray | None  # local colour table (n, 3) uint8, or None: use the global one
    lzw_offset: int  # offset of the LZW minimum-code-size byte
    lzw_end: int  # offset just past the image data's block terminator


@dataclass(frozen=True)
class GifLayout:
    """The structure of a GIF file: logical screen, colour table, loop count and its frames."""

    path: Path
    width: int
    height: int
    global_palette: np.ndarray | None
    background_index: int
    loop: int | None  # NETSCAPE2.0 loop count (0 = forever); None = no looping extension
    frames: tuple[FrameRecord, ...] = field(repr=False)
    has_trailer: bool = True
    #: False: scanned without colour tables (planning): palettes are None, decoding rescans
    colour_tables: bool = True

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def durations_ms(self) -> np.ndarray:
        """Declared per-frame delays in milliseconds (raw: no browser clamping of tiny delays)."""
        return np.array([f.delay_cs * 10 for f in self.frames], dtype=np.int32)

    @property
    def declares_transparency(self) -> bool:
        return any(f.transparency is not None for f in self.frames)


def _seconds(raw: Any) -> float | None:
    return None if raw is None else float(raw)


@dataclass(frozen=True)
class Limits:
    """Input limits (``giflab.limits``); None disables one."""

    max_frame_pixels: int | None = config.shipped_field("limits.max-frame-pixels")
    max_frames: int | None = config.shipped_field("limits.max-frames")
    max_decoded_bytes: int | None = config.shipped_field("limits.max-decoded-bytes")
    max_decode_seconds: float | None = config.shipped_field("limits.max-decode-seconds", _seconds)

    @classmethod
    def from_config(cls) -> Limits:
        def value(name: str) -> Any:
            raw = config.get(f"limits.{name}")
            return None if raw is None else config.parse_bytes(raw, key=f"limits.{name}")

        return cls(
            max_frame_pixels=value("max-frame-pixels"),
            max_frames=value("max-frames"),
            max_decoded_bytes=value("max-decoded-bytes"),
            max_decode_seconds=_seconds(config.get("limits.max-decode-seconds")),
        )


def _limit_error(path: Path, what: str, value: float, name: str, limit: float) -> GifLimitError:
    env = "DASK_GIFLAB__LIMITS__" + name.upper().replace("-", "_")
    return GifLimitError(
        path,
        f"{what} ({value:,.0f}) exceeds giflab.limits.{name} = {limit:,.0f}; if the file is "
        f"trusted, raise the limit: dask.config.set({{'giflab.limits.{name}': ...}}) or {env}",
    )


class _Reader:
    """Reads a GIF's bytes from the file mapped into memory, naming the file and offset when
    data runs out (indexing a buffer costs a fraction of ``read(1)``/``seek`` per sub-block)."""

    def __init__(self, path: Path, buf: bytes | mmap.mmap, colour_tables: bool = True) -> None:
        self.path = path
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.colour_tables = colour_tables

    def truncated(self, what: str) -> GifDecodeError:
        return GifDecodeError(
            self.path, f"file is truncated: ended inside the {what} at byte {self.end}"
        )

    def read(self, n: int, what: str) -> bytes:
        start = self.pos
        if start + n > self.end:
            raise self.truncated(what)
        self.pos = start + n
        return self.buf[start : start + n]

    def byte(self, what: str) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.truncated(what)
        self.pos = pos + 1
        return self.buf[pos]

    def skip_sub_blocks(self, what: str) -> None:
        buf, pos, end = self.buf, self.pos, self.end
        while pos < end:
            size = buf[pos]
            pos += 1 + size
            if size == 0:
                self.pos = pos
                return
        raise self.truncated(what)

    def sub_blocks(self, what: str) -> list[bytes]:
        blocks: list[bytes] = []
        while True:
            size = self.byte(what)
            if size == 0:
                return blocks
            blocks.append(self.read(size, what))


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, mapped read-only (a pipe or other unmappable file is read whole)."""
    with _open(path) as f:
        mapped = None
        try:
            if os.fstat(f.fileno()).st_size:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            pass
        try:
            yield mapped if mapped is not None else f.read()
        finally:
            if mapped is not None:
                mapped.close()


def _colour_table(reader: _Reader, packed: int, what: str) -> np.ndarray | None:
    n = 2 << (packed & 0x07)
    raw = reader.read(3 * n, what)
    if not reader.colour_tables:
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, 3)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb", buffering=1 << 16)
    except IsADirectoryError:
        raise GifDecodeError(path, "is a directory, not a GIF file") from None
    except FileNotFoundError:
        reason = "dangling symlink" if path.is_symlink() else "file not found"
        raise GifDecodeError(path, reason) from None
    except PermissionError:
        raise GifDecodeError(path, "permission denied") from None
    except OSError as exc:
        raise GifDecodeError(path, f"cannot read file ({exc.strerror or exc})") from None


def scan_gif(
    path: str | os.PathLike[str], limits: Limits | None = None, *, colour_tables: bool = True
) -> GifLayout:
    """Parse a GIF's block structure without decoding pixels (one pass, constant memory per frame).

    ``colour_tables=False`` checks the colour tables but keeps none (planning's scans).

    Raises :class:`GifDecodeError` naming the file for an empty file, a file that is not a GIF,
    a file truncated inside a block, an unknown block, or a GIF with no image; and
    :class:`GifLimitError` as soon as the logical screen, a frame, the frame count or the
    decoded size passes a limit (``giflab.limits``), before anything is allocated for it.
    """
    path = Path(path)
    limits = limits if limits is not None else Limits.from_config()
    with _mapped(path) as buf:
        reader = _Reader(path, buf, colour_tables)
        width, height, packed, background = _read_screen(reader, limits)
        global_palette = (
            _colour_table(reader, packed, "global colour table") if packed & 0x80 else None
        )
        blocks = _read_blocks(reader, limits)
    if not blocks.frames:
        raise GifDecodeError(path, "GIF holds no image (zero frames)")
    width, height = _canvas_size(path, width, height, blocks.frames[0], limits)
    _check_decoded_size(path, blocks.frames, width, height, limits)
    return GifLayout(
        path=path,
        width=width,
        height=height,
        global_palette=global_palette,
        background_index=background,
        loop=blocks.loop,
        frames=tuple(blocks.frames),
        has_trailer=blocks.has_trailer,
        colour_tables=colour_tables,
    )


def _check_pixels(path: Path, what: str, width: int, height: int, limits: Limits) -> None:
    """Raise :class:`GifLimitError` when ``width * height`` passes ``limits.max_frame_pixels``."""
    max_pixels = limits.max_frame_pixels
    if max_pixels is not None and width * height > max_pixels:
        raise _limit_error(
            path, f"{what} {width}x{height} pixels", width * height, "max-frame-pixels", max_pixels
        )


def _read_screen(reader: _Reader, limits: Limits) -> tuple[int, int, int, int]:
    """The header's checks and the logical screen descriptor: ``(width, height, packed fields,
    background index)``."""
    path, head = reader.path, reader.buf[:6]
    reader.pos = len(head)
    if not head:
        raise GifDecodeError(path, "file is empty")
    if head[:3] != b"GIF":
        raise GifDecodeError(path, f"not a GIF file (starts with {_describe_magic(head)})")
    if head[3:6] not in (b"87a", b"89a"):
        raise GifDecodeError(path, f"unsupported GIF version {head[3:6]!r}")
    width, height, packed, background, _aspect = struct.unpack(
        "<HHBBB", reader.read(7, "logical screen descriptor")
    )
    _check_pixels(path, "logical screen", width, height, limits)
    return width, height, packed, background


_Control = tuple[int, int, int | None]  # a Graphic Control Extension: disposal, delay, transparency


@dataclass
class _Blocks:
    """What the blocks after the logical screen declare."""

    frames: list[FrameRecord] = field(default_factory=list)
    loop: int | None = None
    has_trailer: bool = False


def _read_blocks(reader: _Reader, limits: Limits) -> _Blocks:
    """Every extension and image block up to the trailer (or the end of the file)."""
    found = _Blocks()
    control: _Control | None = None  # the GCE that applies to the next image
    while reader.pos < reader.end:  # a missing trailer is common and harmless
        kind = reader.buf[reader.pos]
        reader.pos += 1
        if kind == _TRAILER:
            found.has_trailer = True
            break
        if kind == _EXTENSION:
            control = _read_extension(reader, found, control)
        elif kind == _IMAGE:
            found.frames.append(_read_image(reader, len(found.frames), control, limits))
            control = None
        elif found.frames:
            # Bytes that are no block after complete frames: viewers stop here; so do we.
            break
        else:
            raise GifDecodeError(
                reader.path,
                f"corrupt GIF: unexpected byte 0x{kind:02x} at offset {reader.pos - 1}",
            )
    return found


def _read_extension(reader: _Reader, found: _Blocks, control: _Control | None) -> _Control | None:
    """One extension block: a GCE gives the next image's control, the NETSCAPE2.0 (or
    ANIMEXTS1.0) application block the loop count (into ``found``). Returns the control
    that now applies to the next image."""
    label = reader.byte("extension label")
    if label == _GCE:
        blocks = reader.sub_blocks("graphic control extension")
        if blocks and len(blocks[0]) >= 4:
            gce = blocks[0]
            flags = gce[0]
            return ((flags >> 2) & 0x07, gce[1] | (gce[2] << 8), gce[3] if flags & 0x01 else None)
        return control
    if label == _APPLICATION:
        blocks = reader.sub_blocks("application extension")
        if (
            len(blocks) >= 2
            and blocks[0][:11] in (b"NETSCAPE2.0", b"ANIMEXTS1.0")
            and len(blocks[1]) >= 3
            and blocks[1][0] == 1
        ):
            found.loop = blocks[1][1] | (blocks[1][2] << 8)
        return control
    reader.skip_sub_blocks("extension")
    # a plain-text block consumes the GCE; viewers skip it
    return None if label == _PLAIN_TEXT else control


def _read_image(
    reader: _Reader, frame_no: int, control: _Control | None, limits: Limits
) -> FrameRecord:
    """One image block: its descriptor, local colour table and where its LZW data lies (the
    data itself is skipped)."""
    left, top, w, h, ipacked = struct.unpack(
        "<HHHHB", reader.read(9, f"image descriptor of frame {frame_no}")
    )
    _check_pixels(reader.path, f"frame {frame_no} of", w, h, limits)
    if limits.max_frames is not None and frame_no >= limits.max_frames:
        raise _limit_error(
            reader.path, "number of frames", frame_no + 1, "max-frames", limits.max_frames
        )
    local = (
        _colour_table(reader, ipacked, f"local colour table of frame {frame_no}")
        if ipacked & 0x80
        else None
    )
    lzw_offset = reader.pos
    reader.byte(f"image data of frame {frame_no}")
    reader.skip_sub_blocks(f"image data of frame {frame_no}")
    disposal, delay, transparency = control or (0, 0, None)
    return FrameRecord(
        left=left,
        top=top,
        width=w,
        height=h,
        interlace=bool(ipacked & 0x40),
        disposal=disposal,
        delay_cs=delay,
        transparency=transparency,
        palette=local,
        lzw_offset=lzw_offset,
        lzw_end=reader.pos,
    )


def _canvas_size(
    path: Path, width: int, height: int, first: FrameRecord, limits: Limits
) -> tuple[int, int]:
    """The canvas: the logical screen, or, for a 0x0 one, the first frame's extent."""
    if width == 0 or height == 0:
        # Some encoders write a 0x0 logical screen; viewers then size it from the first frame.
        width, height = max(width, first.left + first.width), max(height, first.top + first.height)
        _check_pixels(path, "canvas", width, height, limits)
    if width == 0 or height == 0:
        raise GifDecodeError(path, f"canvas of {width}x{height} pixels: no pixel to compare")
    return width, height


def _check_decoded_size(
    path: Path, frames: list[FrameRecord], width: int, height: int, limits: Limits
) -> None:
    """Raise :class:`GifLimitError` when decoding would pass ``limits.max_decoded_bytes``: the
    frames on the screen, and each frame's palette indices as far as they are decoded
    (off-screen rows are not: see _rows_to_decode)."""
    indices = sum(f.width * _stream_rows(f, _rows_to_decode(f, width, height)) for f in frames)
    decoded = len(frames) * width * height * 3 + indices
    if limits.max_decoded_bytes is not None and decoded > limits.max_decoded_bytes:
        raise _limit_error(
            path, "decoded size in bytes", decoded, "max-decoded-bytes", limits.max_decoded_bytes
        )


def _describe_magic(head: bytes) -> str:
    known = {
        b"\x89PNG": "a PNG signature",
        b"\xff\xd8\xff": "a JPEG signature",
        b"RIFF": "a RIFF/WebP signature",
        b"BM": "a BMP signature",
    }
    for magic, name in known.items():
        if head.startswith(magic):
            return name
    return f"bytes {head!r}"


_GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


def _rgb_table(palette: np.ndarray | None) -> np.ndarray:
    """The (256, 3) uint8 colour table of a frame.

    Indices past the file's colour table read as black; with no colour table at all the
    indices are grey levels, as Pillow shows them.
    """
    table = np.zeros((256, 3), dtype=np.uint8)
    source = _GREY if palette is None else palette
    table[: len(source)] = source[:256]
    return table


def _draw(
    indices: np.ndarray,
    table: np.ndarray,
    transparency: int | None,
    pixels: np.ndarray,
    alpha: np.ndarray,
    use_numba: bool,
) -> None:
    """Draw a frame's palette indices onto the canvas views ``pixels`` (h, w) of 3-byte
    pixels and ``alpha`` (h, w), leaving the transparent index's pixels as they are."""
    if use_numba:
        from giflab_dask.kernels import _numba

        rgb = pixels[..., None].view(np.uint8)  # the same memory as (h, w, 3) bytes
        if _numba.draw_frame(indices, table, transparency, rgb, alpha):
            return
    colours = table.view(_PIXEL).ravel()  # one gather moves a whole RGB pixel
    if transparency is None:
        np.take(colours, indices, out=pixels)
        alpha[...] = 255
    else:
        opaque = indices != transparency
        np.copyto(pixels, np.take(colours, indices), where=opaque)
        alpha[opaque] = 255


def _numba_drawing() -> bool:
    """Whether frames are drawn by the numba kernel (``giflab.kernels.numba``: not off, and
    numba installed; the numpy path gives the same pixels)."""
    import importlib.util

    setting = config.get("kernels.numba")
    return setting not in ("off", False) and importlib.util.find_spec("numba") is not None


_PIXEL = np.dtype("V3")
# Chromium (Skia's GIF reader) reads the undefined disposal 4 as "restore to previous": some
# encoders set that bit meaning 3.
_RESTORE_PREVIOUS = (3, 4)


def _rows_to_decode(record: FrameRecord, width: int, height: int) -> int:
    """How many of a frame's image rows are on a ``width`` x ``height`` screen (0: the frame
    lies off it); the rows below the screen are never decoded."""
    if record.left >= width or record.top >= height or not (record.width and record.height):
        return 0
    return min(record.height, height - record.top)


_PASSES = ((0, 8), (4, 8), (2, 4), (1, 2))  # interlaced rows: (first row, step) of each pass


def _stream_rows(record: FrameRecord, rows: int) -> int:
    """How many rows of a frame's data stream hold its first ``rows`` image rows. An interlaced
    frame stores them in four passes, the last holding the odd rows: any row past the first
    needs the stream up to the last odd row among them (LZW data cannot be skipped)."""
    if not record.interlace or rows >= record.height or rows <= 1:
        return rows
    last_odd = rows - 1 if (rows - 1) % 2 else rows - 2
    earlier = sum(len(range(first, record.height, step)) for first, step in _PASSES[:3])
    return earlier + (last_odd - 1) // 2 + 1


def _interlaced_rows(height: int) -> np.ndarray:
    """The image row of each row of an interlaced frame's data stream."""
    return np.concatenate([np.arange(first, height, step) for first, step in _PASSES])


def _decode_indices(
    path: Path, frame_no: int, record: FrameRecord, data: bytes, rows: int | None = None
) -> np.ndarray:
    """Palette indices (rows, w) of one frame, from Pillow's GIF LZW decoder.

    ``data`` is the frame's LZW minimum code size byte followed by its sub-blocks. The decoder
    is driven the way ``ImageFile.load`` drives it for a GIF tile, without building a whole
    image file around each frame (that cost more than the decoding itself). ``rows`` (default:
    all) gives only the first image rows: the decoder stops where the data stream has given
    them (an interlaced frame's stream is then decoded as stored and its rows put in place).
    """
    from PIL import Image

    bits = data[0]
    # The spec writes 2-8; browsers also decode 1 and 9-11 (12 leaves no room below 4096).
    if not 1 <= bits <= 11:
        raise GifDecodeError(
            path, f"frame {frame_no}: invalid LZW minimum code size {bits} (must be 1-11)"
        )
    rows = record.height if rows is None else rows
    stream = _stream_rows(record, rows)
    interlace = record.interlace and stream == record.height  # else rows put in place below
    target = Image.new("L", (record.width, stream))
    decoder = Image._getdecoder("L", "gif", (bits, interlace, -1))
    try:
        decoder.setimage(target.im, (0, 0, record.width, stream))
        consumed, status = decoder.decode(data[1:])
    finally:
        decoder.cleanup()
    if status < 0:
        raise GifDecodeError(
            path, f"frame {frame_no}: image data cannot be decoded (corrupt LZW data)"
        )
    if consumed >= 0:
        raise GifDecodeError(
            path, f"frame {frame_no}: image data is truncated (fewer pixels than the frame holds)"
        )
    if record.interlace and not interlace:
        out = np.empty((rows, record.width), dtype=np.uint8)
        image_rows = _interlaced_rows(record.height)[:stream]
        kept = image_rows < rows
        out[image_rows[kept]] = np.asarray(target)[kept]
        return out
    return np.asarray(target)[:rows]


def iter_frames(
    path: str | os.PathLike[str], layout: GifLayout | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rgb (H,W,3) uint8, alpha (H,W) uint8)`` per frame, composited as viewers show it.

    The canvas starts transparent (Chromium, the decode oracle, ignores the background colour);
    each frame draws its non-transparent pixels (clipped to the logical screen); after display,
    disposal 2 clears the frame's rectangle to transparent, 3 (and 4, as Chromium reads it)
    restores what was there before the frame, 0/1 and the undefined 5-7 leave it. Transparent
    pixels are (0, 0, 0) with alpha 0. The arrays yielded are the canvas the next frame draws
    on: copy them to keep them.
    """
    import time

    path = Path(path)
    if layout is None or not layout.colour_tables:
        layout = scan_gif(path)
    limit_s = Limits.from_config().max_decode_seconds
    deadline = None if limit_s is None else time.monotonic() + limit_s
    height, width = layout.height, layout.width
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    alpha = np.zeros((height, width), dtype=np.uint8)
    pixels = rgb.view(_PIXEL)[..., 0]  # (H, W) of 3-byte pixels: draw a pixel in one move
    global_table = _rgb_table(layout.global_palette)
    use_numba = _numba_drawing()
    with _open(path) as f:
        for frame_no, record in enumerate(layout.frames):
            if deadline is not None and time.monotonic() > deadline:
                raise _limit_error(
                    path, f"decode time in seconds (at frame {frame_no})", limit_s or 0,
                    "max-decode-seconds", limit_s or 0,
                )  # fmt: skip
            # Clip the frame's rectangle to the logical screen.
            x0, y0 = min(record.left, width), min(record.top, height)
            x1, y1 = min(record.left + record.width, width), min(record.top + record.height, height)
            region, region_alpha = pixels[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
            saved = None
            if record.disposal in _RESTORE_PREVIOUS:
                saved = (region.copy(), region_alpha.copy())
            rows = _rows_to_decode(record, width, height)
            if rows:  # off-screen pixels are never decoded (rows) nor drawn (columns)
                f.seek(record.lzw_offset)
                data = f.read(record.lzw_end - record.lzw_offset)
                indices = _decode_indices(path, frame_no, record, data, rows)
                indices = indices[: y1 - y0, : x1 - x0]
                table = global_table if record.palette is None else _rgb_table(record.palette)
                _draw(indices, table, record.transparency, region, region_alpha, use_numba)
            yield rgb, alpha
            if record.disposal == 2:
                region[...] = b"\0\0\0"
                region_alpha[...] = 0
            elif saved is not None:
                region[...], region_alpha[...] = saved
