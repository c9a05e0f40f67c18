"""Per-frame metric kernels: pure numpy/scipy/numba functions, no dask, so each runs and is
tested alone against its reference (see docs/design.md).

The kernel contract
-------------------
* A *pair kernel* is ``f(original, compressed, **params) -> np.ndarray`` where ``original`` and
  ``compressed`` are aligned blocks of frames, ``(t, H, W, 3)`` uint8 RGB, the same shape (frame
  ``i`` of one is compared with frame ``i`` of the other; alpha was already composited onto a
  background by the alignment stage). It returns float64 of shape ``(t,)`` (one value per frame)
  or ``(t, k)`` for a kernel with ``k`` named outputs (the metric spec lists the names).
* A *temporal kernel* has the same signature but its blocks carry one extra leading frame, the
  frame before the block (``(t + 1, H, W, 3)``); it returns ``(t,)`` / ``(t, k)`` values, one per
  frame of the block, each describing the change from the previous frame to that frame. The
  wrapper supplies that frame with an overlap along time, so chunk borders change nothing; the
  very first frame of a GIF has no predecessor and gets NaN (reported as missing, not invented).
* Kernels loop over the frames of a block (a frame's working arrays stay small, where
  filtering a whole ``(t,H,W)`` block at once was slower), compute in float32 where that
  agrees with the float64 reference to ~1e-5, and accumulate in float64. They validate
  parameters eagerly with messages that say what to do; frames through the one check every
  kernel shares (``_luma.check_pair``: ``ValueError``, as in scikit-image).
  ``tests/test_metric_contract.py`` checks this contract on every metric.
* A value that cannot be computed for a frame is NaN; a kernel never substitutes a default.
* Every kernel's docstring states its definition and its reference (paper or library).
"""
