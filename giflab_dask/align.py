"""Alignment: two lazy frame arrays -> one aligned pair with shared chunks, so each metric
compares what a viewer sees at the same moment, block by block.

* ``time`` maps each original frame to the compressed frame on screen at the middle of the
  original frame's display interval (cumulative durations), so dropped or merged frames are
  compared with what a viewer sees.
* ``index`` pairs frame ``i`` with frame ``i`` (frame counts must agree).
* ``content`` starts from the time mapping and picks, within ``content-window`` frames either
  side, the compressed frame closest in content (mean squared error of block-mean
  luma thumbnails about 32 pixels on the short side). It reads thumbnails (one small compute)
  and never searches all pairs.
* ``auto`` is ``index`` when counts and durations agree (it then equals ``time``), else ``time``.

Alpha is composited on ``giflab.align.background``; a size mismatch resizes both sides to the
smaller common size (``giflab.align.resize``, area interpolation by default, GifLab's rule).
Everything stays lazy except the ``content`` thumbnails.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask import config
from giflab_dask.errors import AlignmentError

if TYPE_CHECKING:
    import dask.array as da

    from giflab_dask.framestore import StoredGif

__all__ = [
    "AlignOptions",
    "AlignedPair",
    "AlignmentError",
    "FrameAlignment",
    "align",
    "display_times",
    "frame_alignment",
    "frame_count_facts",
    "pair_facts",
    "prepare_block",
    "time_mapping",
]

MODES = ("auto", "time", "index", "content")
RESIZES = ("area", "bilinear", "nearest")


@dataclass(frozen=True)
class AlignOptions:
    """Alignment parameters (part of every result's cache key)."""

    mode: str = config.shipped_field("align.mode")
    min_delay_ms: int = config.shipped_field("align.min-delay-ms")
    clamp_to_ms: int = config.shipped_field("align.clamp-to-ms")
    content_window: int = config.shipped_field("align.content-window")
    resize: str = config.shipped_field("align.resize")
    background: tuple[int, int, int] = config.shipped_field("align.background", tuple)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AlignmentError(
                f"alignment mode must be one of {', '.join(MODES)}; got {self.mode!r}"
            )
        if self.resize not in RESIZES:
            raise AlignmentError(f"resize must be one of {', '.join(RESIZES)}; got {self.resize!r}")
        if self.content_window < 0:
            raise AlignmentError("content-window must be >= 0 (frames either side to search)")
        if len(self.background) != 3 or not all(0 <= int(c) <= 255 for c in self.background):
            raise AlignmentError(f"background must be three values 0-255; got {self.background!r}")

    @classmethod
    def from_config(cls, **overrides: Any) -> AlignOptions:
        values: dict[str, Any] = {
            "mode": config.get("align.mode"),
            "min_delay_ms": int(config.get("align.min-delay-ms")),
            "clamp_to_ms": int(config.get("align.clamp-to-ms")),
            "content_window": int(config.get("align.content-window")),
            "resize": config.get("align.resize"),
            "background": tuple(int(c) for c in config.get("align.background")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["background"], list):
            values["background"] = tuple(values["background"])
        return cls(**values)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("giflab-align-options", *self.__dict__.values())


def display_times(durations_ms: np.ndarray, options: AlignOptions) -> np.ndarray:
    """Per-frame display durations in ms as browsers play them (tiny delays clamped)."""
    shown = np.asarray(durations_ms, dtype=np.float64).copy()
    if options.min_delay_ms > 0:
        shown[shown < options.min_delay_ms] = options.clamp_to_ms
    return shown


def time_mapping(
    original_ms: np.ndarray, compressed_ms: np.ndarray, options: AlignOptions
) -> np.ndarray:
    """For each original frame, the compressed frame on screen at its display midpoint.

    Times past the end of the compressed animation map to its last frame (the timing drift is
    reported by the verdict, not hidden here).
    """
    o = display_times(original_ms, options)
    c = display_times(compressed_ms, options)
    midpoints = np.cumsum(o) - o / 2
    # Scale nothing: a viewer plays both at their own speeds; compare at the same wall time.
    compressed_starts = np.cumsum(c) - c
    mapping = np.searchsorted(compressed_starts, midpoints, side="right") - 1
    return np.clip(mapping, 0, len(c) - 1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class FrameAlignment:
    """Which compressed frame is shown with each original frame, and the size both are compared
    at: what :func:`align` decides before it builds any array (the batch graph's per-chunk tasks
    need only this)."""

    mapping: np.ndarray  # compressed frame index for each original frame
    mode: str  # the mode actually used (auto resolved)
    size: tuple[int, int]  # (height, width) compared
    original_size: tuple[int, int]
    compressed_size: tuple[int, int]
    options: AlignOptions
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False, kw_only=True)
class AlignedPair(FrameAlignment):
    """Two frame arrays of equal shape and chunks, frame ``i`` of each shown together, with the
    :class:`FrameAlignment` that built them."""

    original: da.Array
    compressed: da.Array
    # The aligned positions (original frame indices) the arrays hold; None: every one.
    positions: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.original.shape[0])

    def restrict(self, positions: np.ndarray | list[int]) -> AlignedPair:
        """The pair at a subset of its aligned positions (sorted, unique, relative to this
        pair), still lazy: computing it reads and aligns only the chunks holding those frames
        (the other chunks' tasks are culled). Used by frame sampling (``sampling.py``)."""
        from dataclasses import replace

        index = np.asarray(positions, dtype=np.int64)
        if index.ndim != 1 or not len(index):
            raise AlignmentError("restrict() needs a non-empty 1-d list of aligned positions")
        if np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= self.n_frames:
            raise AlignmentError(
                f"restrict() positions must be sorted, unique and within 0..{self.n_frames - 1}"
            )
        if len(index) == self.n_frames:
            return self
        held = np.arange(self.n_frames) if self.positions is None else self.positions
        return replace(
            self,
            original=self.original[index],
            compressed=self.compressed[index],
            mapping=self.mapping[index],
            positions=held[index],
            notes=list(self.notes),
        )


def _resolve_mode(original: StoredGif, compressed: StoredGif, options: AlignOptions) -> str:
    if options.mode != "auto":
        return options.mode
    same = original.n_frames == compressed.n_frames and np.array_equal(
        display_times(original.durations_ms, options),
        display_times(compressed.durations_ms, options),
    )
    return "index" if same else "time"


def _composite_block(
    rgb: np.ndarray, alpha: np.ndarray | None, background: tuple[int, int, int]
) -> np.ndarray:
    if alpha is None or alpha.min() >= 128:
        return rgb  # opaque block: nothing to composite
    opaque = (alpha >= 128)[..., None]  # GIF alpha is 0 or 255
    return np.where(opaque, rgb, np.asarray(background, dtype=np.uint8))


def _resize_block(block: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    from PIL import Image

    height, width = size
    if block.shape[1:3] == (height, width):
        return block
    resample = {
        "area": Image.Resampling.BOX,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }[method]
    out = np.empty((block.shape[0], height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(block):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), resample))
    return out


def prepare_block(
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    background: tuple[int, int, int],
    size: tuple[int, int],
    method: str,
) -> np.ndarray:
    """A block of frames as compared: composited over ``background``, resized to ``size``."""
    return _resize_block(_composite_block(rgb, alpha, background), size, method)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _resized_luma(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    luma = block.astype(np.float32) @ _LUMA
    out = np.empty((len(luma), *shape), dtype=np.float32)
    for i, frame in enumerate(luma):
        image = Image.fromarray(frame).resize(shape[::-1], Image.Resampling.BOX)  # mode F
        out[i] = np.asarray(image)
    return out


def _content_mapping(
    original: da.Array, compressed: da.Array, start: np.ndarray, window: int
) -> np.ndarray:
    import dask
    import dask.array as da

    # Luma thumbnails about 32 pixels on the short side of the smaller frame: cheap to compare.
    f = max(1, min(*original.shape[1:3], *compressed.shape[1:3]) // 32)
    same_size = original.shape[1:3] == compressed.shape[1:3]

    def thumbs(frames: da.Array) -> da.Array:
        if same_size:  # block means
            luma = frames.astype(np.float32) @ _LUMA
            h, w = luma.shape[1] // f * f, luma.shape[2] // f * f
            return luma[:, :h, :w].reshape(luma.shape[0], h // f, f, w // f, f).mean(axis=(2, 4))
        # Sizes differ (a resized variant): area-resize both sides to one thumbnail shape, or
        # the thumbnails could not be compared.
        shape = (
            max(1, min(original.shape[1], compressed.shape[1]) // f),
            max(1, min(original.shape[2], compressed.shape[2]) // f),
        )
        whole = frames.rechunk({1: -1, 2: -1, 3: -1})
        return da.map_blocks(
            _resized_luma, whole, shape=shape, dtype=np.float32, drop_axis=3,
            chunks=(whole.chunks[0], (shape[0],), (shape[1],)),
        )  # fmt: skip

    o, c = dask.compute(thumbs(original), thumbs(compressed))
    mapping = start.copy()
    for i, j0 in enumerate(start):
        lo, hi = max(0, j0 - window), min(len(c), j0 + window + 1)
        errors = ((c[lo:hi] - o[i]) ** 2).mean(axis=(1, 2))
        # Ties keep the time-aligned frame.
        best = np.flatnonzero(errors == errors.min())
        mapping[i] = lo + best[np.argmin(np.abs(lo + best - j0))]
    return mapping


def frame_alignment(
    original: StoredGif, compressed: StoredGif, options: AlignOptions | None = None
) -> FrameAlignment:
    """The frame mapping and common size of two GIFs, without building arrays (``content``
    mode reads thumbnails; the others need only frame counts, durations and sizes)."""
    options = options or AlignOptions.from_config()
    mode = _resolve_mode(original, compressed, options)
    if mode == "index" and original.n_frames != compressed.n_frames:
        raise AlignmentError(
            f"index alignment needs equal frame counts (original {original.n_frames}, "
            f"compressed {compressed.n_frames}); use mode 'time' or 'content'"
        )
    if mode == "index":
        mapping = np.arange(original.n_frames, dtype=np.int64)
    else:
        mapping = time_mapping(original.durations_ms, compressed.durations_ms, options)

    size = (min(original.height, compressed.height), min(original.width, compressed.width))
    notes = []
    if (original.height, original.width) != (compressed.height, compressed.width):
        notes.append(
            f"size mismatch {original.width}x{original.height} vs "
            f"{compressed.width}x{compressed.height}: both resized to {size[1]}x{size[0]} "
            f"({options.resize})"
        )

    if mode == "content":
        mapping = _content_mapping(
            original.frames(), compressed.frames(), mapping, options.content_window
        )
    return FrameAlignment(
        mapping=mapping,
        mode=mode,
        size=size,
        original_size=(original.height, original.width),
        compressed_size=(compressed.height, compressed.width),
        options=options,
        notes=notes,
    )


def align(
    original: StoredGif,
    compressed: StoredGif,
    options: AlignOptions | None = None,
    *,
    tag: str = "",
) -> AlignedPair:
    """Align two stored GIFs lazily: equal shapes, the original's time chunks, named layers."""
    import dask.array as da
    from dask.base import tokenize

    facts = frame_alignment(original, compressed, options)
    options, mode, mapping, size = facts.options, facts.mode, facts.mapping, facts.size
    o_frames, c_frames = original.frames(tag), compressed.frames(tag)
    time_chunks = o_frames.chunks[0]

    def on_original_chunks(array: da.Array) -> da.Array:
        gathered = array if mode == "index" else array[mapping]
        if gathered.chunks[0] == time_chunks:
            return gathered  # (rechunk would still import distributed to choose a method)
        return gathered.rechunk({0: time_chunks})

    gathered = on_original_chunks(c_frames)
    c_alpha = compressed.alpha(tag)
    if c_alpha is not None:
        c_alpha = on_original_chunks(c_alpha)

    token = tokenize(original.key, compressed.key, options, mode, mapping, tag)
    out_chunks = (time_chunks, (size[0],), (size[1],), (3,))
    meta = np.empty((0, 0, 0, 0), dtype=np.uint8)
    kwargs = {"background": options.background, "size": size, "method": options.resize}

    def prepare(frames: da.Array, alpha: da.Array | None, side: str) -> da.Array:
        if alpha is None:
            args: tuple[Any, ...] = (frames,)
        else:
            args = (frames, alpha[..., None])
        return da.map_blocks(
            _prepare_side,
            *args,
            dtype=np.uint8,
            meta=meta,
            chunks=out_chunks,
            name=f"align-frames-{side}-{token}",
            **kwargs,
        )

    return AlignedPair(
        **{f.name: getattr(facts, f.name) for f in fields(FrameAlignment)},
        original=prepare(o_frames, original.alpha(tag), "original"),
        compressed=prepare(gathered, c_alpha, "compressed"),
    )


def _prepare_side(
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    background: tuple[int, int, int],
    size: tuple[int, int],
    method: str,
) -> np.ndarray:
    return prepare_block(
        rgb,
        None if alpha is None else alpha[..., 0],
        background=background,
        size=size,
        method=method,
    )


def pair_facts(options: AlignOptions, original: Any, compressed: Any) -> dict[str, float]:
    """Pair-level values the verdict checks besides metric summaries.

    ``frame_count_change`` counts frames a viewer can tell apart, known once both GIFs are
    decoded: it is left out while either is a GIF the graph has still to decode (a
    :class:`~giflab_dask.graph.build.PendingGif`, which has no ``distinct_frames``).
    """
    o_total = display_times(original.durations_ms, options).sum()
    c_total = display_times(compressed.durations_ms, options).sum()
    facts = {
        "timing_drift": float(abs(c_total - o_total) / o_total) if o_total else float("nan"),
        "timing_drift_ms": float(abs(c_total - o_total)),
        "original_frames": float(original.n_frames),
        "compressed_frames": float(compressed.n_frames),
    }
    o_seen = getattr(original, "distinct_frames", None)
    c_seen = getattr(compressed, "distinct_frames", None)
    if o_seen is not None and c_seen is not None:
        facts.update(frame_count_facts(o_seen, c_seen))
    return facts


def frame_count_facts(o_seen: int, c_seen: int) -> dict[str, float]:
    """The pair facts of the frames a viewer can tell apart in each GIF (its decode counts
    them): :func:`pair_facts` of stored GIFs, or the ``alignment-write`` task's completion of
    them once the graph has decoded the pair."""
    return {
        "frame_count_change": max(0, o_seen - c_seen) / o_seen,
        "original_distinct_frames": float(o_seen),
        "compressed_distinct_frames": float(c_seen),
    }
