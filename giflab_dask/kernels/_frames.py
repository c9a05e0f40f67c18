"""Per-frame conversions shared by the kernels of one block, each computed once per frame.

Several kernels of the default set start from the same conversion of the same frame: OpenCV
luma feeds MS-SSIM, edges, texture, sharpness and banding. Inside :func:`shared_conversions`
(which :func:`giflab_dask.metrics.measure_block` opens around the kernels of one block) a
conversion of a frame is computed on the first request and handed to every later one;
outside it each call computes. Results are read-only arrays, so no kernel can change what
another one reads.

A frame is recognised by its buffer address, shape and strides. The memo keeps a reference
to each frame it has seen, so no address can be reused by another array while the memo
lives (one block); it lives in a :class:`contextvars.ContextVar`, so every thread of dask's
threaded scheduler has its own.

:func:`luma` computes OpenCV's integer formula with numba (compiled on first use, cached on
disk) when numba can be imported, else with :func:`giflab_dask.kernels._luma.luma`; both give
the same bytes (tests compare them on all 2**24 colours).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from giflab_dask.kernels._luma import luma as _numpy_luma

__all__ = ["luma", "shared_conversions"]

_memo: contextvars.ContextVar[dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] | None] = (
    contextvars.ContextVar("giflab_frame_conversions", default=None)
)


@contextlib.contextmanager
def shared_conversions() -> Iterator[None]:
    """Within this block, each conversion of a frame is computed once (see the module doc)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _shared(name: str, frame: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> Any:
    memo = _memo.get()
    if memo is None:
        return compute(frame)
    key = (name, frame.__array_interface__["data"][0], frame.shape, frame.strides, frame.dtype)
    hit = memo.get(key)
    if hit is not None:
        return hit[1]
    value = compute(frame)
    value.setflags(write=False)
    memo[key] = (frame, value)  # the frame reference pins its address for the memo's life
    return value


_lock = threading.Lock()
_compiled: list[Callable[[np.ndarray, np.ndarray], None] | None] = []


def _luma_kernel() -> Callable[[np.ndarray, np.ndarray], None] | None:
    """The numba luma loop, compiled once per process (None when numba is unusable)."""
    if _compiled:
        return _compiled[0]
    with _lock:
        if not _compiled:
            try:
                import numba

                def luma_frame(rgb: np.ndarray, out: np.ndarray) -> None:
                    # One flat loop in uint32: numba vectorises it (a 2-D loop it did not).
                    n = out.size
                    flat, flat_out = rgb.reshape(n * 3), out.reshape(n)
                    wr, wg, wb = np.uint32(9798), np.uint32(19235), np.uint32(3735)
                    half, shift = np.uint32(16384), np.uint32(15)
                    for k in range(n):
                        r = np.uint32(flat[3 * k]) * wr
                        g = np.uint32(flat[3 * k + 1]) * wg
                        b = np.uint32(flat[3 * k + 2]) * wb
                        flat_out[k] = (r + g + b + half) >> shift

                u8 = numba.types.uint8
                signature = numba.void(numba.types.Array(u8, 3, "C", readonly=True), u8[:, ::1])
                kernel = numba.njit(signature, nogil=True, cache=True)(luma_frame)
            except Exception:  # no numba, or no compiler for this platform: numpy's luma
                kernel = None
            _compiled.append(kernel)
    return _compiled[0]


def _compute_luma(frame: np.ndarray) -> np.ndarray:
    kernel = _luma_kernel()
    if kernel is None or frame.ndim != 3 or frame.dtype != np.uint8 or frame.shape[-1] != 3:
        return _numpy_luma(frame)
    out = np.empty(frame.shape[:2], dtype=np.uint8)
    kernel(np.ascontiguousarray(frame), out)
    return out


def luma(frame: np.ndarray) -> np.ndarray:
    """OpenCV luma ``(H, W)`` uint8 of one RGB frame ``(H, W, 3)`` uint8, read-only inside
    :func:`shared_conversions` (copy it before changing it)."""
    return _shared("luma", frame, _compute_luma)
