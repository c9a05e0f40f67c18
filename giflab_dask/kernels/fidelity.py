"""Pixel-fidelity pair kernels: MSE, RMSE, PSNR and GifLab's normalised PSNR.

All four compare the full RGB frames (all three channels, every pixel, data range 255), as
GifLab does (``giflab.metrics.mse``/``rmse`` and ``skimage.metrics.peak_signal_noise_ratio``
on the ``(H, W, 3)`` frames). Each takes two aligned uint8 blocks ``(t, H, W, 3)`` and returns
float64 ``(t,)``, one value per frame (see :mod:`giflab_dask.kernels`).

The squared error of a frame is summed exactly in integers, so MSE is exact to float64
rounding (GifLab accumulates in float32 and agrees to ~1e-7 relative).

Output names as GifLab spells them (:data:`GIFLAB_OUTPUT_NAMES`): GifLab's ``psnr`` is the
*normalised* PSNR (dB / 50 clamped to [0, 1]); the PSNR in dB is its ``psnr_raw``.
"""

from __future__ import annotations

import math
import numbers
from typing import TypeGuard, cast

import numpy as np
import numpy.typing as npt

from . import _numba
from ._luma import check_pair

__all__ = [
    "GIFLAB_OUTPUT_NAMES",
    "PSNR_CAP_DB",
    "PSNR_NORMALIZATION_DB",
    "mse",
    "psnr",
    "psnr_from_mse",
    "psnr_normalized",
    "psnr_normalized_of_mse",
    "psnr_of_mse",
    "rmse",
    "rmse_of_mse",
]

#: Peak value of 8-bit data: PSNR's data range.
DATA_RANGE = 255.0

#: Default ceiling for PSNR in dB (identical frames have infinite PSNR).
PSNR_CAP_DB = 100.0

#: GifLab's ``MetricsConfig.PSNR_MAX_DB``: PSNR at or above this maps to normalised 1.0.
PSNR_NORMALIZATION_DB = 50.0

#: Kernel name -> the key GifLab's ``calculate_comprehensive_metrics`` reports it under.
GIFLAB_OUTPUT_NAMES = {
    "mse": "mse",
    "rmse": "rmse",
    "psnr": "psnr_raw",
    "psnr_normalized": "psnr",
}


def _positive_db(value: object) -> TypeGuard[float]:
    """A finite positive number of dB (bools are not numbers here)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and cast(float, value) > 0
    )


def _check_cap(cap_db: object, name: str = "cap_db") -> float | None:
    if cap_db is None:
        return None
    if not _positive_db(cap_db):
        raise ValueError(
            f"{name} must be a positive finite number of dB (default {PSNR_CAP_DB}) or None "
            f"for no ceiling (identical frames then give inf); got {cap_db!r}."
        )
    return float(cap_db)


def _sse(a: np.ndarray, b: np.ndarray, *, backend: str = "auto") -> np.ndarray:
    """Exact per-frame sum of squared differences, as float64 ``(t,)``.

    ``backend="auto"`` uses the numba kernel when numba is usable (one pass over the bytes),
    else numpy; both sum the same integers exactly, so the values are identical.
    """
    if _numba.check_backend(backend, "mse") != "numpy":
        values = _numba.sse(a, b)
        if values is not None:
            return values
        if backend == "numba":
            raise _numba.numba_missing("mse")
    t = a.shape[0]
    out = np.empty(t, dtype=np.float64)
    if t == 0:
        return out
    diff = np.empty(a.shape[1:], dtype=np.int16)
    sq = np.empty(a.shape[1:], dtype=np.int32)
    for i in range(t):
        np.subtract(a[i], b[i], out=diff, dtype=np.int16)
        np.multiply(diff, diff, out=sq, dtype=np.int32)
        # int64 accumulation is exact (at most 65025 per element); its float64 value is
        # exact below 2**53, i.e. for any frame under ~1.4e11 pixels.
        out[i] = np.add.reduce(sq, axis=None, dtype=np.int64)
    return out


def mse(original: npt.ArrayLike, compressed: npt.ArrayLike, *, backend: str = "auto") -> np.ndarray:
    """Mean squared error per frame over all RGB values.

    ``MSE = mean((original - compressed) ** 2)`` over the ``H * W * 3`` values of a frame, in
    squared 8-bit levels (0 for identical frames, at most 65025).

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    backend : {"auto", "numba", "numpy"}, optional
        How squared errors are summed, not part of the metric (the same integers either
        way): the numba kernel (optional extra), numpy, or numba when it can be imported.

    Returns
    -------
    ndarray of float64, shape ``(t,)``

    References
    ----------
    GifLab ``giflab.metrics.mse`` (output ``mse``); ``skimage.metrics.mean_squared_error``.
    """
    a, b = check_pair(original, compressed, "mse")
    n = a.shape[1] * a.shape[2] * a.shape[3]
    if n == 0:
        return np.full(a.shape[0], np.nan)
    return _sse(a, b, backend=backend) / n


def rmse(
    original: npt.ArrayLike, compressed: npt.ArrayLike, *, backend: str = "auto"
) -> np.ndarray:
    """Root mean squared error per frame over all RGB values: ``sqrt(mse)``.

    In 8-bit levels (0 for identical frames, at most 255).

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    backend : {"auto", "numba", "numpy"}, optional
        How squared errors are summed, not part of the metric (the same integers either
        way): the numba kernel (optional extra), numpy, or numba when it can be imported.

    Returns
    -------
    ndarray of float64, shape ``(t,)``

    References
    ----------
    GifLab ``giflab.metrics.rmse`` (output ``rmse``).
    """
    check_pair(original, compressed, "rmse")
    return rmse_of_mse(mse(original, compressed, backend=backend))


# Per-frame transforms of MSE: the kernels below are these applied to :func:`mse`, and the
# batch applies them to a stored MSE vector instead when it has one (MetricSpec.derive), so a
# changed PSNR cap reads no frame; both ways give the same floats.


def rmse_of_mse(mse_values: np.ndarray) -> np.ndarray:
    """RMSE per frame from MSE per frame (``(t,)`` float64)."""
    return np.sqrt(np.asarray(mse_values, dtype=np.float64))


def psnr_of_mse(mse_values: np.ndarray, *, cap_db: float | None = PSNR_CAP_DB) -> np.ndarray:
    """:func:`psnr` per frame from MSE per frame (``(t,)`` float64)."""
    return np.asarray(psnr_from_mse(np.asarray(mse_values, dtype=np.float64), cap_db=cap_db))


def psnr_normalized_of_mse(
    mse_values: np.ndarray, *, max_db: float = PSNR_NORMALIZATION_DB
) -> np.ndarray:
    """:func:`psnr_normalized` per frame from MSE per frame (``(t,)`` float64)."""
    if not _positive_db(max_db):
        raise ValueError(
            f"psnr_normalized: max_db must be a positive finite number of dB (GifLab uses "
            f"{PSNR_NORMALIZATION_DB}); got {max_db!r}."
        )
    db = psnr_of_mse(mse_values, cap_db=None)
    return np.clip(db / float(max_db), 0.0, 1.0)


def psnr_from_mse(
    mse_value: npt.ArrayLike, *, cap_db: float | None = PSNR_CAP_DB
) -> float | np.ndarray:
    """PSNR in dB of an MSE (8-bit data): ``10 * log10(255**2 / mse)``, capped at ``cap_db``.

    Use it for the summary "PSNR of the aggregated MSE" (PSNR of the mean MSE over frames),
    which, unlike the mean of per-frame PSNR, stays finite and meaningful when some frames
    are identical.

    Parameters
    ----------
    mse_value : float or array_like of float
        Mean squared error(s), in squared 8-bit levels; NaN gives NaN.
    cap_db : float or None, optional
        Ceiling in dB (default 100.0). ``mse == 0`` (identical) gives exactly ``cap_db``, and
        any PSNR above it is clipped to it, so the result is monotonic in MSE. ``None``:
        no ceiling, ``mse == 0`` gives ``inf`` (skimage's and GifLab's behaviour).

    Returns
    -------
    float (scalar input) or ndarray of float64 (array input)

    References
    ----------
    ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=255``.
    """
    cap = _check_cap(cap_db)
    m = np.asarray(mse_value, dtype=np.float64)
    if np.any(m < 0):
        raise ValueError(
            "psnr_from_mse: mse must be >= 0 (a mean of squared errors); got a negative "
            "value. Pass the MSE, not an RMSE difference or a log value."
        )
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10((DATA_RANGE**2) / m)
    if cap is not None:
        out = np.minimum(out, cap)  # NaN stays NaN
    return float(out) if out.ndim == 0 else out


def psnr(
    original: npt.ArrayLike,
    compressed: npt.ArrayLike,
    *,
    cap_db: float | None = PSNR_CAP_DB,
    backend: str = "auto",
) -> np.ndarray:
    """Peak signal-to-noise ratio per frame over all RGB values, in dB.

    ``PSNR = 10 * log10(255**2 / MSE)`` with :func:`mse` over the three channels, capped at
    ``cap_db``.

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    cap_db : float or None, optional
        Ceiling in dB (default 100.0): identical frames give exactly ``cap_db``, and larger
        values (possible only for nearly identical large frames: one level of difference in
        one value of a 480x270 frame is 104 dB) are clipped to it. ``None`` gives the
        uncapped value, ``inf`` for identical frames, which is what skimage and GifLab
        compute (GifLab has no ceiling of its own; its normalised PSNR clamps at 1.0).
    backend : {"auto", "numba", "numpy"}, optional
        How squared errors are summed, not part of the metric (the same integers either
        way): the numba kernel (optional extra), numpy, or numba when it can be imported.

    Returns
    -------
    ndarray of float64, shape ``(t,)``

    References
    ----------
    ``skimage.metrics.peak_signal_noise_ratio(original, compressed, data_range=255)``, which
    GifLab uses per frame; GifLab reports the frame mean of this as ``psnr_raw``.
    """
    original, compressed = check_pair(original, compressed, "psnr")
    cap = _check_cap(cap_db)
    return psnr_of_mse(mse(original, compressed, backend=backend), cap_db=cap)


def psnr_normalized(
    original: npt.ArrayLike,
    compressed: npt.ArrayLike,
    *,
    max_db: float = PSNR_NORMALIZATION_DB,
    backend: str = "auto",
) -> np.ndarray:
    """GifLab's normalised PSNR per frame: ``clip(PSNR_dB / max_db, 0, 1)``.

    PSNR as in :func:`psnr` (RGB, data range 255) divided by ``max_db`` (GifLab's
    ``PSNR_MAX_DB``, 50 dB) and clamped to [0, 1]; identical frames give 1.0.

    GifLab reports this value under the name ``psnr`` (and the dB value as ``psnr_raw``).

    Parameters
    ----------
    original, compressed : ndarray of uint8, shape ``(t, H, W, 3)``
        Aligned blocks of RGB frames.
    max_db : float, optional
        PSNR in dB that maps to 1.0 (default 50.0).
    backend : {"auto", "numba", "numpy"}, optional
        How squared errors are summed, not part of the metric (the same integers either
        way): the numba kernel (optional extra), numpy, or numba when it can be imported.

    Returns
    -------
    ndarray of float64, shape ``(t,)``, values in [0, 1]

    References
    ----------
    GifLab ``giflab.metrics.calculate_comprehensive_metrics`` (``min(psnr / PSNR_MAX_DB,
    1.0)`` then ``max(0.0, ...)``) and ``giflab.config.MetricsConfig.PSNR_MAX_DB``.
    """
    original, compressed = check_pair(original, compressed, "psnr_normalized")
    psnr_normalized_of_mse(np.empty(0), max_db=max_db)  # parameter check before any work
    return psnr_normalized_of_mse(mse(original, compressed, backend=backend), max_db=max_db)
