"""Numba kernels: the fused uniform-window SSIM (accelerating ``structural.ssim``), the
per-frame sum of squared errors (accelerating ``fidelity``'s MSE, RMSE and PSNR) and the
palette lookup that draws a decoded GIF frame on its canvas (accelerating ``decode``).

Numba is an optional dependency: this module imports without it, and numba itself is imported
only on first use (:func:`ssim_uniform`, :func:`sse`), never at import time. :func:`load`
compiles the kernels once per process (``cache=True``: later processes load the machine code
from numba's cache instead of compiling) behind a lock, so concurrent first calls from dask
threads compile once.

The SSIM kernel computes exactly what ``structural._UniformSSIM`` computes, fused into one
pass per frame with buffers allocated once per block:

* luma with OpenCV's fixed-point formula ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` in
  integers, into int32 planes (the numpy kernel's float32 dot product is exact, so both give
  the same values);
* exact int32 7x7 window sums of x, y, x^2 + y^2 and x*y over the valid windows: column sums
  over 7 rows, updated row by row (add the new row, subtract the old one; exact in integers),
  then 7-term sums along each row;
* the same integer moments and the same float32 ratio, operation for operation (no fast-math,
  IEEE division), so every window's SSIM is bit-identical to the numpy kernel's;
* the window values of a row stored in float32, then added in float64 per column over the
  rows and finally over the columns (two loops, so each vectorises at its own width; the numpy
  kernel sums pairwise, so frame means agree to float64 rounding, ~1e-16).

The luma planes are int32, not uint8: the sliding loop then needs no widening.

The compiled function releases the GIL (``nogil=True``): dask's threaded scheduler runs blocks
on all cores. It loops over the frames of a block in compiled code (no per-frame Python).
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "available",
    "check_backend",
    "compile_helper",
    "compile_helpers",
    "compile_kernel",
    "draw_frame",
    "import_error",
    "load",
    "loaded",
    "njit_kernel",
    "numba_missing",
    "sse",
    "ssim_uniform",
]

_WIN = 7
_NP = _WIN * _WIN
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
# The same constants, in the same float32 values, as structural._UniformSSIM uses.
_C1_HALF = np.float32(_C1 * _NP * _NP / 2)
_C2_HALF = np.float32(_C2 * _NP * (_NP - 1) / 2)
_C1_FULL = np.float32(_C1 * _NP * _NP)
_C2_FULL = np.float32(_C2 * _NP * (_NP - 1))
_LUMA_R, _LUMA_G, _LUMA_B, _LUMA_HALF = 9798, 19235, 3735, 16384

_lock = threading.Lock()
_kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None
_sse_kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None
_draw_kernel: Callable[..., None] | None = None
_import_error: str | None = None


def _luma_planes(fa, fb, lx, ly):  # pragma: no cover - compiled by numba
    """The int32 luma planes ``lx``, ``ly`` (n,) of two flat (3 n,) uint8 frames (one loop
    over both: two loops were slower)."""
    kr, kg, kb, kh = np.int32(_LUMA_R), np.int32(_LUMA_G), np.int32(_LUMA_B), np.int32(_LUMA_HALF)
    shift = np.int32(15)
    for q in range(lx.size):
        j = 3 * q
        lx[q] = np.int32(
            (kr * np.int32(fa[j]) + kg * np.int32(fa[j + 1]) + kb * np.int32(fa[j + 2]) + kh)
            >> shift
        )
        ly[q] = np.int32(
            (kr * np.int32(fb[j]) + kg * np.int32(fb[j + 1]) + kb * np.int32(fb[j + 2]) + kh)
            >> shift
        )


def _first_column_sums(lx, ly, w, cx, cy, cs, cp):  # pragma: no cover - compiled by numba
    """The column sums of x, y, x^2 + y^2 and x*y over rows 0..6 of the (h w,) luma planes."""
    for c in range(w):
        cx[c] = 0
        cy[c] = 0
        cs[c] = 0
        cp[c] = 0
    for k in range(_WIN):
        row = k * w
        for c in range(w):
            x = lx[row + c]
            y = ly[row + c]
            cx[c] += x
            cy[c] += y
            cs[c] += np.int32(x * x + y * y)
            cp[c] += np.int32(x * y)


def _ssim_block(a, b, out):  # pragma: no cover - compiled by numba, run as machine code
    """Mean 7x7 uniform SSIM of each frame pair of two C-contiguous (t, H, W, 3) uint8 blocks.

    Plain Python written for numba: numba widens int32 arithmetic to int64, so results are
    cast back with ``np.int32(...)`` (exact: every intermediate is below 2**31 for 8-bit
    data), which keeps the loops 32-bit and vectorised; ``error_model="numpy"`` (IEEE
    division, no zero check) lets the float loop vectorise too. ``out[i]`` receives frame
    ``i``'s value. Frames must be at least 7x7.
    """
    t, h, w, _ = a.shape
    hv = h - (_WIN - 1)
    wv = w - (_WIN - 1)
    n = h * w
    lx = np.empty(n, np.int32)
    ly = np.empty(n, np.int32)
    cx = np.empty(w, np.int32)
    cy = np.empty(w, np.int32)
    cs = np.empty(w, np.int32)
    cp = np.empty(w, np.int32)
    acc = np.empty(wv, np.float64)
    buf = np.empty(wv, np.float32)
    n49 = np.int32(_NP)
    for i in range(t):
        _luma_planes(a[i].reshape(n * 3), b[i].reshape(n * 3), lx, ly)
        _first_column_sums(lx, ly, w, cx, cy, cs, cp)
        for c in range(wv):
            acc[c] = 0.0
        for r in range(hv):
            if r > 0:  # slide the column sums down one row: add row r + 6, drop row r - 1
                old = (r - 1) * w
                new = (r + _WIN - 1) * w
                for c in range(w):
                    xo = lx[old + c]
                    yo = ly[old + c]
                    xn = lx[new + c]
                    yn = ly[new + c]
                    cx[c] += np.int32(xn - xo)
                    cy[c] += np.int32(yn - yo)
                    cs[c] += np.int32(xn * xn + yn * yn - xo * xo - yo * yo)
                    cp[c] += np.int32(xn * yn - xo * yo)
            for c in range(wv):
                sx = cx[c]
                sy = cy[c]
                ss = cs[c]
                sp = cp[c]
                for k in range(1, _WIN):  # unrolled by the compiler
                    sx = np.int32(sx + cx[c + k])
                    sy = np.int32(sy + cy[c + k])
                    ss = np.int32(ss + cs[c + k])
                    sp = np.int32(sp + cp[c + k])
                # Exact integer moments, as in structural._UniformSSIM.
                p = np.int32(sx * sy)
                sxy = np.int32(n49 * sp - p)
                s2 = np.int32(sx * sx + sy * sy)
                ssq = np.int32(n49 * ss - s2)
                # SSIM / 4 in float32, the numpy kernel's operations in its order.
                f1 = (np.float32(p) + _C1_HALF) * (np.float32(sxy) + _C2_HALF)
                f2 = (np.float32(s2) + _C1_FULL) * (np.float32(ssq) + _C2_FULL)
                buf[c] = f1 / f2
            for c in range(wv):
                acc[c] += np.float64(buf[c])
        total = 0.0
        for c in range(wv):
            total += acc[c]
        out[i] = 4.0 * total / (hv * wv)


def _sse_block(a, b, out):  # pragma: no cover - compiled by numba, run as machine code
    """Exact sum of squared differences of each row of two C-contiguous (t, n) uint8 arrays.

    Differences are int32 and squares summed in int64, exact (at most 65025 per value) as in
    ``fidelity._sse``; stored as float64, exact below 2**53. One pass over the bytes instead of
    numpy's three (subtract, multiply, reduce through int16/int32 temporaries).
    """
    t, n = a.shape
    for i in range(t):
        total = 0
        for j in range(n):
            d = np.int32(a[i, j]) - np.int32(b[i, j])
            total += d * d
        out[i] = total


def _draw_block(indices, table, transparency, rgb, alpha):  # pragma: no cover - numba
    """Draw palette ``indices`` (h, w) through ``table`` (256, 3) onto the canvas views ``rgb``
    (h, w, 3) and ``alpha`` (h, w), skipping the ``transparency`` index (-1: none).

    What ``decode.iter_frames`` does with a gather of 3-byte pixels and a masked copy, in one
    pass.
    """
    h, w = indices.shape
    for y in range(h):
        for x in range(w):
            i = indices[y, x]
            if i != transparency:
                rgb[y, x, 0] = table[i, 0]
                rgb[y, x, 1] = table[i, 1]
                rgb[y, x, 2] = table[i, 2]
                alpha[y, x] = 255


def available() -> bool:
    """Whether numba is installed (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def loaded() -> bool:
    """Whether the kernel is already compiled in this process (using it costs nothing more).

    Importing numba and loading the kernel take a noticeable time per process (more for the
    first compile on a machine); a caller that knows how much work is coming can use this to
    decide whether the numba kernel pays off.
    """
    return _kernel is not None


def load() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """The compiled SSIM block kernel, compiling the kernels on first call (the SSE kernel is
    compiled with it); ``None`` when numba is unusable.

    Thread-safe: concurrent first calls wait for one compilation. Later processes load the
    compiled code from numba's on-disk cache (``cache=True``: the ``__pycache__`` folder next
    to this file, else numba's user cache directory, or ``NUMBA_CACHE_DIR``). ``None`` when
    numba cannot be imported (the normal case without the optional extra) or the kernel does
    not compile (a ``RuntimeWarning`` says why); :func:`import_error` gives the reason.
    """
    global _kernel, _sse_kernel, _draw_kernel, _import_error
    if _kernel is not None:
        return _kernel
    with _lock:
        if _kernel is None and _import_error is None:
            try:
                import numba
            except ImportError as exc:  # not installed, or installed against another numpy
                _import_error = f"{type(exc).__name__}: {exc}"
                return None
            try:
                u8, f8 = numba.types.uint8, numba.types.float64
                # Inputs typed read-only, which also takes writable arrays: frames often come
                # from read-only buffers (np.asarray of a Pillow image, np.frombuffer).
                planes = numba.types.Array(u8, 2, "C", readonly=True)
                _sse_kernel = njit_kernel(numba.void(planes, planes, f8[::1]), _sse_block)
                indices = numba.types.Array(u8, 2, "A", readonly=True)  # a Pillow buffer
                draw = numba.void(indices, u8[:, ::1], numba.types.int64, u8[:, :, :], u8[:, :])
                _draw_kernel = njit_kernel(draw, _draw_block)
                blocks = numba.types.Array(u8, 4, "C", readonly=True)
                helpers = ("_luma_planes", "_first_column_sums")
                compile_helpers(globals(), helpers)
                _kernel = njit_kernel(numba.void(blocks, blocks, f8[::1]), _ssim_block)
            except Exception as exc:
                _sse_kernel = _draw_kernel = None
                _import_error = f"numba could not compile its kernels: {exc}"
                warnings.warn(
                    f"{_import_error}; using the numpy kernel (same values, slower).",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _kernel


def njit_kernel(signature: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` compiled by numba for ``signature``, releasing the GIL, with IEEE division
    (``error_model="numpy"``), cached on disk when a cache location is writable."""
    import numba

    try:
        return numba.njit(signature, cache=True, nogil=True, error_model="numpy")(function)
    except Exception:  # no writable cache location: compile for this process only
        return numba.njit(signature, cache=False, nogil=True, error_model="numpy")(function)


def compile_kernel(signature: Any, function: Callable[..., Any]) -> Callable[..., Any] | None:
    """A kernel of another module compiled like this module's (see :func:`njit_kernel`); ``None``
    when numba cannot be imported or the kernel does not compile (a ``RuntimeWarning`` says
    why). Each such module compiles its kernels on its own first use, so a process pays only
    for the kernels it runs."""
    if not _importable():
        return None
    try:
        return njit_kernel(signature, function)
    except Exception as exc:
        warnings.warn(
            f"numba could not compile {function.__name__}: {exc}; using the numpy kernel "
            "(same values, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def compile_helper(function: Callable[..., Any], inline: bool = False) -> Callable[..., Any] | None:
    """``function`` as a numba function that compiled kernels call (typed by their use, cached
    with them); ``None`` when numba cannot be imported.

    Inner loops live in such helpers rather than in the kernel's body: LLVM vectorises a small
    function's loop where the same loop inlined into a large kernel stays scalar (as in
    ``_numba_ms_ssim``'s window terms). ``inline``: numba inlines the helper into its caller
    instead (a step of a kernel written as its own function, at the speed of the kernel's body).
    """
    if not _importable():
        return None
    import numba

    options: dict[str, Any] = {"inline": "always"} if inline else {}
    return numba.njit(nogil=True, error_model="numpy", cache=True, **options)(function)


def compile_helpers(namespace: dict[str, Any], names: Iterable[str], inline: bool = False) -> bool:
    """Replace the plain functions ``names`` of a module's ``namespace`` (its ``globals()``) by
    their numba functions (see :func:`compile_helper`): a kernel looks its helpers up there
    when it compiles. False when numba cannot be imported (nothing is replaced)."""
    if not _importable():
        return False
    for name in names:
        if not hasattr(namespace[name], "py_func"):  # not compiled yet
            namespace[name] = compile_helper(namespace[name], inline)
    return True


def _importable() -> bool:
    """Whether numba imports; if not, the reason is kept for :func:`import_error`."""
    global _import_error
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        _import_error = _import_error or f"{type(exc).__name__}: {exc}"
        return False
    return True


def check_backend(backend: object, kernel: str) -> str:
    """A kernel's ``backend`` argument, checked: ``"auto"``, ``"numba"`` or ``"numpy"``."""
    if not isinstance(backend, str) or backend not in ("auto", "numba", "numpy"):
        raise ValueError(
            f"{kernel}: backend must be 'auto' (numba when it can be imported, else numpy), "
            f"'numba' or 'numpy'; got {backend!r}. All give the same values."
        )
    return backend


def numba_missing(kernel: str) -> ImportError:
    """The error of ``backend="numba"`` when numba is unusable, saying what to do."""
    return ImportError(
        f"{kernel}: backend='numba' needs numba ({import_error()}). "
        "Install it with pip install 'giflab-dask[numba]', or use backend='auto' "
        "(numba when available, else numpy) or 'numpy'; the values are the same."
    )


def import_error() -> str | None:
    """Why :func:`load` returned ``None`` (``None`` if it did not, or was not called yet)."""
    return _import_error


def ssim_uniform(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Mean uniform 7x7 SSIM per frame of two validated uint8 ``(t, H, W, 3)`` blocks.

    Frames must be at least 7x7 (the caller returns NaN for smaller ones). Returns float64
    ``(t,)``, or ``None`` when numba is unusable (see :func:`load`; the caller falls back to
    the numpy kernel).
    """
    kernel = load()
    if kernel is None:
        return None
    out = np.empty(a.shape[0], dtype=np.float64)
    if a.shape[0]:
        kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


def sse(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Exact per-frame sum of squared differences of two validated uint8 blocks of equal
    shape ``(t, ...)``, as float64 ``(t,)``; ``None`` when numba is unusable (the caller uses
    the numpy kernel, which gives the same integers)."""
    if load() is None or _sse_kernel is None:
        return None
    t = a.shape[0]
    out = np.empty(t, dtype=np.float64)
    if t:
        _sse_kernel(
            np.ascontiguousarray(a).reshape(t, -1), np.ascontiguousarray(b).reshape(t, -1), out
        )
    return out


def draw_frame(
    indices: np.ndarray,
    table: np.ndarray,
    transparency: int | None,
    rgb: np.ndarray,
    alpha: np.ndarray,
) -> bool:
    """Draw one frame's palette ``indices`` onto the canvas views ``rgb`` and ``alpha`` (see
    :func:`_draw_block`); False when numba is unusable (the caller draws with numpy)."""
    if load() is None or _draw_kernel is None:
        return False
    _draw_kernel(indices, table, -1 if transparency is None else int(transparency), rgb, alpha)
    return True


T = TypeVar("T")


def loader(build: Callable[[Any], T], what: str) -> Callable[[], T | None]:
    """A module's thread-safe ``load()``: ``build(numba)`` on the first call, its result from
    then on; ``None`` when numba is not installed, or when ``build`` fails (a ``RuntimeWarning``
    names ``what``; the numpy kernels, same values, are used instead)."""
    state: dict[str, T | None] = {}
    lock = threading.Lock()

    def load() -> T | None:
        if "value" not in state:
            with lock:
                if "value" not in state:
                    state["value"] = _build_or_warn(build, what)
        return state["value"]

    return load


def _build_or_warn(build: Callable[[Any], T], what: str) -> T | None:
    try:
        import numba
    except ImportError:
        return None
    try:
        return build(numba)
    except Exception as exc:
        warnings.warn(
            f"numba could not compile {what} ({exc}); using the numpy kernels (same values, "
            "slower).",
            RuntimeWarning,
            stacklevel=3,  # the caller of load()
        )
        return None
