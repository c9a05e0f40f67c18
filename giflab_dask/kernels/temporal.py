"""Temporal consistency (animation smoothness) of the original and the compressed GIF.

GifLab's definition (``lachyts/giflab``, ``src/giflab/metrics.py``,
``calculate_temporal_consistency(frames)``), for one stream of frames ``f_0 .. f_{n-1}``:

* ``d_k = mean(|f_k - f_{k-1}|)`` over all pixels and the three channels (0..255), for each
  transition ``k = 1 .. n-1``;
* with ``m = mean(d)`` and ``v = var(d)`` (population variance) over the transitions:
  ``consistency = exp(-2 * v / m**2)``, which is 1.0 when all transitions change the picture
  by the same amount (``v == 0``, including a static animation, ``m == 0``: GifLab's explicit
  rule) and falls towards 0 as the amount of change becomes erratic.

GifLab reports it for both streams and their difference (its current key names, with the
older ``_pre`` / ``_post`` aliases)::

    temporal_consistency_original   = consistency(original frames)
    temporal_consistency_compressed = consistency(compressed frames)
    temporal_consistency_delta      = |original - compressed|

Per-frame form. The consistency is not a mean of per-frame values, but it is a function of the
per-transition vector ``d``: the temporal kernel :func:`temporal_consistency` returns ``d`` for
both streams (one value per frame, describing the change from the previous frame), and the
summary is :func:`temporal_consistency_from_transitions` (``exp(-2 v / m**2)``; it needs only
``count``, ``sum(d)`` and ``sum(d**2)``, so it can be reduced chunk by chunk), then the delta.
:func:`temporal_consistency_summary` does all three from the per-frame vectors.

Deliberate differences from GifLab: fewer than two frames (no transition) gives NaN, where
GifLab writes 1.0; ``d`` is computed exactly (integer sums), GifLab accumulates a float32 mean
(relative differences ~1e-7). GifLab computes each stream on its own frames; on an aligned pair
the compressed stream is the time-aligned sequence, which equals GifLab's whenever the frame
counts and timings match. When alignment repeats or drops frames, apply
:func:`frame_differences` to each stream's own frames to get GifLab's numbers exactly.
"""

from __future__ import annotations

import math

import numpy as np

from giflab_dask.errors import GiflabError
from giflab_dask.kernels import _numba, _numba_texture
from giflab_dask.kernels._luma import check_pair

__all__ = [
    "OUTPUTS",
    "SUMMARY_OUTPUTS",
    "frame_differences",
    "temporal_consistency",
    "temporal_consistency_from_transitions",
    "temporal_consistency_summary",
]

#: Per-frame outputs of :func:`temporal_consistency`, in column order. Each per-frame value is
#: the transition's mean absolute difference ``d_k``; the metric named is its summary.
OUTPUTS: tuple[str, ...] = ("temporal_consistency_original", "temporal_consistency_compressed")
#: Keys of :func:`temporal_consistency_summary` (GifLab's names).
SUMMARY_OUTPUTS: tuple[str, ...] = (*OUTPUTS, "temporal_consistency_delta")


def frame_differences(frames: np.ndarray, *, backend: str = "auto") -> np.ndarray:
    """``d_k = mean(|f_k - f_{k-1}|)`` for ``k = 1 .. n-1`` of a ``(n, H, W, 3)`` uint8 block.

    A single-stream temporal kernel: ``n`` frames (the first being the frame before the block)
    give ``n - 1`` float64 values, exact (integer sums, one division). ``backend``: ``"numba"``
    or ``"auto"`` (when numba imports) sums in one compiled pass, ``"numpy"`` with numpy; the
    integers are the same.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4:
        raise GiflabError(
            "frame_differences takes a (n, H, W, 3) uint8 array of frames, got "
            f"{getattr(frames, 'dtype', type(frames).__name__)} {getattr(frames, 'shape', '')}"
        )
    backend = _numba.check_backend(backend, "temporal_consistency")
    n = frames.shape[0]
    out = np.empty(max(n - 1, 0), dtype=np.float64)
    size = frames[0].size if n else 0
    if size == 0:
        out[:] = np.nan
        return out
    if backend != "numpy":
        sums = _numba_texture.abs_diff_sums(frames)
        if sums is not None:
            # exact below 2**53, then one correctly rounded division, as int / int below
            return sums.astype(np.float64) / size
        if backend == "numba":
            raise _numba_texture.numba_missing("temporal_consistency")
    for k in range(1, n):
        diff = np.abs(frames[k].astype(np.int16) - frames[k - 1].astype(np.int16))
        out[k - 1] = int(diff.sum(dtype=np.int64)) / size
    return out


def temporal_consistency(
    original: np.ndarray, compressed: np.ndarray, *, backend: str = "auto"
) -> np.ndarray:
    """Temporal kernel: per-transition change of both streams, ``(t, 2)`` float64.

    Blocks are ``(t + 1, H, W, 3)`` uint8, the first frame being the one before the block;
    column 0 is ``d_k`` of the original, column 1 of the compressed (:data:`OUTPUTS`), for the
    ``t`` transitions previous -> frame (see the module docstring for ``d_k``). These are not
    consistencies: reduce each column with :func:`temporal_consistency_from_transitions`, and the
    pair with :func:`temporal_consistency_summary`, to get GifLab's three numbers.
    ``backend`` as in :func:`frame_differences`.
    """
    original, compressed = check_pair(original, compressed, "temporal_consistency")
    return np.stack(
        [
            frame_differences(original, backend=backend),
            frame_differences(compressed, backend=backend),
        ],
        axis=-1,
    )


def temporal_consistency_from_transitions(values: np.ndarray) -> float:
    """GifLab's temporal consistency from the per-transition differences ``d``.

    ``exp(-2 * var(d) / mean(d)**2)`` with the population variance; 1.0 if ``var(d) == 0``
    (uniform or static animation, GifLab's rule); NaN if there is no transition. NaN entries
    are skipped: the per-frame vector of a GIF starts with NaN (its first frame has no
    predecessor). Equivalently ``exp(-2 * (n * sum(d**2) / sum(d)**2 - 1))``, so chunked partial
    sums ``(n, sum(d), sum(d**2))`` reduce to the same value.
    """
    d = np.asarray(values, dtype=np.float64).ravel()
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan
    mean = float(d.mean())
    var = float(d.var())
    if var == 0.0:
        return 1.0
    return float(min(1.0, max(0.0, math.exp(-2.0 * var / (mean * mean)))))


def temporal_consistency_summary(per_frame: np.ndarray) -> dict[str, float]:
    """GifLab's three temporal numbers from the ``(T, 2)`` per-frame output of the kernel.

    Returns ``{"temporal_consistency_original", "temporal_consistency_compressed",
    "temporal_consistency_delta"}``; the delta is ``|original - compressed|`` (NaN if either is).
    """
    per_frame = np.asarray(per_frame, dtype=np.float64)
    if per_frame.ndim != 2 or per_frame.shape[1] != 2:
        raise GiflabError(
            f"expected the (T, 2) per-frame output of temporal_consistency, got {per_frame.shape}"
        )
    orig = temporal_consistency_from_transitions(per_frame[:, 0])
    comp = temporal_consistency_from_transitions(per_frame[:, 1])
    return {
        "temporal_consistency_original": orig,
        "temporal_consistency_compressed": comp,
        "temporal_consistency_delta": abs(orig - comp),
    }
