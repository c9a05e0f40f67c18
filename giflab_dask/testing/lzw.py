"""GIF's LZW code stream, written for tests: variable code width, clear and end codes, and
table growth to 4096 codes followed by a clear code (no sub-block framing)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["lzw_encode", "solid_lzw"]

_MAX_CODES = 4096  # 12-bit LZW codes
_MAX_CODE_BITS = 12


def _check_code_size(min_code_size: int) -> None:
    if not 2 <= min_code_size <= 11:
        raise ValueError("min_code_size must be within 2..11")


def _pack_codes(codes: Iterable[tuple[int, int]]) -> bytes:
    """``(code, width)`` pairs packed least significant bit first, as GIF streams are."""
    out = bytearray()
    acc = nacc = 0
    for code, width in codes:
        acc |= code << nacc
        nacc += width
        while nacc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8
    if nacc:
        out.append(acc & 0xFF)
    return bytes(out)


def _widens(next_code: int, width: int) -> bool:
    """Whether the decoder widens its codes before adding table entry ``next_code``."""
    return next_code >= (1 << width) and width < _MAX_CODE_BITS


def _lzw_codes(buf: bytes, min_code_size: int) -> Iterator[tuple[int, int]]:
    """The ``(code, width)`` pairs of ``buf``: a clear code, the data, the end code."""
    clear = 1 << min_code_size
    eoi, first_free = clear + 1, clear + 2
    width, next_code = min_code_size + 1, first_free
    table: dict[int, int] = {}
    yield clear, width
    if buf:
        prefix = buf[0]
        for px in buf[1:]:
            key = (prefix << 8) | px
            code = table.get(key)
            if code is not None:
                prefix = code
                continue
            yield prefix, width
            # The decoder adds an entry after each code it reads (lagging the encoder by one), so
            # it widens once the entry it is about to add (== next_code) needs width+1 bits.
            if _widens(next_code, width):
                width += 1
            if next_code >= _MAX_CODES:
                # Table full (4096 codes, the decoder adds the last one on reading this code):
                # clear, as Pillow's and most encoders do, rather than a deferred clear.
                yield clear, width
                table.clear()
                width, next_code = min_code_size + 1, first_free
            else:
                table[key] = next_code
                next_code += 1
            prefix = px
        yield prefix, width
        # The decoder still adds an entry after this last data code, possibly widening.
        if _widens(next_code, width) and next_code > first_free:
            width += 1
    yield eoi, width


def lzw_encode(data: bytes | np.ndarray, min_code_size: int) -> bytes:
    """GIF LZW-compress a flat stream of palette indices (no sub-block framing).

    Starts with a clear code, widens codes when the next table entry needs another bit, emits a
    clear code once the table holds 4096 codes, and finishes with the end-of-information code
    written at the width the decoder expects after the last data code.
    """
    _check_code_size(min_code_size)
    buf = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if buf and max(buf) >= 1 << min_code_size:
        raise ValueError(f"index {max(buf)} does not fit LZW minimum code size {min_code_size}")
    return _pack_codes(_lzw_codes(buf, min_code_size))


def _solid_codes(value: int, n_pixels: int, min_code_size: int) -> Iterator[tuple[int, int]]:
    """The ``(code, width)`` pairs :func:`_lzw_codes` gives ``n_pixels`` copies of ``value``."""
    clear = 1 << min_code_size
    eoi, first_free = clear + 1, clear + 2
    width, next_code = min_code_size + 1, first_free
    yield clear, width
    left = n_pixels
    while left > 0:
        longest = next_code - first_free + 1  # entries hold runs of 2..longest; literal: 1
        if left <= longest:  # the final prefix
            yield (value if left == 1 else first_free + left - 2), width
            if _widens(next_code, width) and next_code > first_free:
                width += 1
            break
        yield (value if longest == 1 else first_free + longest - 2), width
        left -= longest
        if _widens(next_code, width):
            width += 1
        if next_code >= _MAX_CODES:
            yield clear, width
            width, next_code = min_code_size + 1, first_free
        else:
            next_code += 1
    yield eoi, width


def solid_lzw(value: int, n_pixels: int, min_code_size: int = 2) -> bytes:
    """:func:`lzw_encode` of ``n_pixels`` pixels all of index ``value``, byte for byte, in time
    proportional to the codes written: for building huge frames in tests without a pixel
    array.

    A constant stream's codes are its runs: after a clear code the encoder writes the literal,
    then the newest entry each time (one pixel longer than the one before), and the longest
    entry that fits whatever is left at the end.
    """
    _check_code_size(min_code_size)
    if not 0 <= value < (1 << min_code_size):
        raise ValueError("value must fit min_code_size, which must be within 2..11")
    return _pack_codes(_solid_codes(value, n_pixels, min_code_size))
