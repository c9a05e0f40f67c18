"""OpenCV-compatible luma and the input checks shared by the pair kernels.

GifLab computes every luma-based metric (SSIM, MS-SSIM, ...) on
``cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)``. For 8-bit input OpenCV does not evaluate the
floating-point BT.601 formula ``0.299 R + 0.587 G + 0.114 B``; it uses 15-bit fixed point::

    Y = (9798 * R + 19235 * G + 3735 * B + 2**14) >> 15

(``RY15``, ``GY15``, ``BY15`` in OpenCV's ``color.hpp``; the three weights are BT.601's
rounded to 1/32768 and sum to 32768). The float formula with rounding differs from this in
about 0.13 % of all colours, by one grey level, so :func:`luma` reproduces the integer
formula exactly rather than approximating it. It is checked against OpenCV on all 2**24 RGB
colours in the tests.

No OpenCV import here: kernels stay numpy/scipy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "LUMA_WEIGHTS_F32",
    "LUMA_WEIGHTS_Q15",
    "LumaConverter",
    "check_bool",
    "check_pair",
    "luma",
]

#: OpenCV's 15-bit fixed-point BT.601 weights for R, G, B (they sum to 2**15).
LUMA_WEIGHTS_Q15 = (9798, 19235, 3735)

#: The same weights scaled by 2**-15, in float32. For 8-bit R, G, B every product and every
#: partial sum of ``R * wr + G * wg + B * wb`` is a multiple of 2**-15 below 2**8, i.e. has
#: at most 23 significant bits, so the float32 dot product is exact whatever the summation
#: order (or FMA) of the matmul; adding 0.5 and truncating towards zero (a cast to an integer
#: type) is then exactly OpenCV's round-half-up shift.
LUMA_WEIGHTS_F32 = np.array(LUMA_WEIGHTS_Q15, dtype=np.float32) / np.float32(2**15)


class LumaConverter:
    """Reusable luma conversion for frames of one shape ``(H, W, 3)``.

    Holds its float32 scratch so that a kernel looping over the frames of a block allocates
    it once (fresh allocations of frame-sized buffers cost page faults on every frame).
    Calling it with ``out`` (any integer dtype, e.g. uint8 or int32) writes the luma there.
    """

    def __init__(self, height: int, width: int) -> None:
        self._rgb = np.empty((height, width, 3), dtype=np.float32)
        self._y = np.empty((height, width), dtype=np.float32)

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty(frame.shape[:2], dtype=np.uint8)
        np.copyto(self._rgb, frame)
        np.matmul(self._rgb, LUMA_WEIGHTS_F32, out=self._y)
        np.add(self._y, np.float32(0.5), out=self._y)
        # Non-negative values: the unsafe cast truncates, i.e. floors.
        np.copyto(out, self._y, casting="unsafe")
        return out


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luma of uint8 RGB pixels exactly as ``cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)``.

    Parameters
    ----------
    rgb : ndarray of uint8, shape ``(..., 3)``
        RGB pixels (any leading shape: one frame ``(H, W, 3)`` or a block ``(t, H, W, 3)``).

    Returns
    -------
    ndarray of uint8, shape ``rgb.shape[:-1]``
        ``(9798 R + 19235 G + 3735 B + 16384) >> 15``: ITU-R BT.601 luma in OpenCV's 15-bit
        fixed point with round-half-up.

    References
    ----------
    OpenCV, ``modules/imgproc/src/color.hpp`` (``RY15``, ``GY15``, ``BY15``) and
    ``color_rgb.simd.hpp`` (``RGB2Gray<uchar>``); ITU-R Recommendation BT.601.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(
            f"luma expects uint8 RGB pixels with a last axis of length 3; got dtype "
            f"{rgb.dtype} and shape {rgb.shape}. Decode frames as 8-bit RGB (composite any "
            "alpha first) before computing luma."
        )
    y = np.matmul(rgb.astype(np.float32), LUMA_WEIGHTS_F32)
    y += np.float32(0.5)
    return y.astype(np.uint8)


def check_pair(
    original: npt.ArrayLike, compressed: npt.ArrayLike, kernel: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an aligned pair of frame blocks for a pair kernel and return them as arrays.

    Both must be uint8 ``(t, H, W, 3)`` RGB blocks of the same shape (anything
    ``np.asarray`` turns into one is accepted). Every kernel checks its frames here, so bad
    input raises the same ``ValueError`` everywhere (scikit-image's convention for a wrong
    dtype or shape), with a message naming ``kernel`` and saying how to fix the input.
    """
    a = np.asarray(original)
    b = np.asarray(compressed)
    for name, x in (("original", a), ("compressed", b)):
        if x.ndim != 4 or x.shape[-1] != 3:
            hint = (
                " For a single frame pass frame[np.newaxis]."
                if x.ndim == 3 and x.shape[-1] == 3
                else ""
            )
            raise ValueError(
                f"{kernel}: {name} must be a block of RGB frames with shape (t, H, W, 3); "
                f"got shape {x.shape}.{hint} Composite alpha onto a background and drop it "
                "before computing metrics."
            )
        if x.dtype != np.uint8:
            raise ValueError(
                f"{kernel}: {name} must be uint8 RGB (0-255); got dtype {x.dtype}. Decode "
                "frames as 8-bit RGB, or convert with np.clip(x, 0, 255).astype(np.uint8) "
                "if they already hold 0-255 values."
            )
    if a.shape != b.shape:
        raise ValueError(
            f"{kernel}: original and compressed must have the same shape; got {a.shape} and "
            f"{b.shape}. Align the pair first (giflab_dask.align: same frame count and the same "
            "H, W), so that frame i of one is compared with frame i of the other."
        )
    return a, b


def check_bool(value: object, param: str, kernel: str) -> bool:
    """A kernel's boolean parameter, checked (``ValueError`` otherwise, like bad frames)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{kernel}: {param} must be True or False; got {value!r}.")
    return bool(value)
