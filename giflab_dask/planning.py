"""The state one :func:`~giflab_dask.pipeline.plan_batch` call's phases share: its options,
the pairs' outcomes, and what each phase leaves for the next (content keys, block layouts,
stored nodes, the metrics still to compute, stored GIFs, pending decodes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from giflab_dask.errors import GiflabError
from giflab_dask.graph.build import BatchGraph, PendingGif
from giflab_dask.graph.files import FileWork

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.decode import GifLayout
    from giflab_dask.framestore import FrameStore, StoredGif
    from giflab_dask.metrics import MetricSpec
    from giflab_dask.options import ValidateOptions
    from giflab_dask.outcomes import PairOutcome
    from giflab_dask.resultstore import ResultStore

__all__ = ["Planning"]

T = TypeVar("T")


@dataclass(eq=False)
class Planning:
    """One call of :func:`plan_batch`: its options (stores resolved), the pairs' outcomes, and
    what each phase leaves for the next."""

    options: ValidateOptions
    outcomes: list[PairOutcome]
    pilot_store: ResultStore | None
    frame_store: FrameStore | None = None
    keys: dict[str, str | GiflabError] = field(default_factory=dict)  # path -> content key
    layouts: dict[str, GifLayout | GiflabError] = field(default_factory=dict)  # key -> blocks
    stored: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # found nodes
    missing: dict[int, list[MetricSpec]] = field(default_factory=dict)  # index -> to compute
    derived: dict[tuple[int, str], Delayed] = field(default_factory=dict)
    stored_gifs: dict[str, StoredGif | None] = field(default_factory=dict)  # key -> entry
    pending: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # key -> (path, root)
    to_build: list[tuple[int, list[MetricSpec]]] = field(default_factory=list)
    files: FileWork = field(default_factory=FileWork)  # hashes and scans: here or on workers
    alignment_writes: dict[int, Delayed] = field(default_factory=dict)  # index -> its task
    graph: BatchGraph = field(default_factory=BatchGraph)  # every task of the batch

    @property
    def results(self) -> ResultStore:
        assert self.options.results is not None
        return self.options.results

    def frames(self) -> FrameStore:
        """The frame store, opened only when some pair needs frames: a run of pure lookups
        never imports zarr (most of a hot batch's time otherwise)."""
        if self.frame_store is None:
            from giflab_dask.framestore import open_frame_store

            self.frame_store = open_frame_store()
        return self.frame_store

    def key_of(self, path: str) -> str:
        """A GIF's content key (cached per path), or the error naming the file."""
        from giflab_dask.keys import gif_key

        return _memo(self.keys, path, lambda: gif_key(path))

    def layout_of(self, path: str, key: str) -> GifLayout:
        """A GIF's block structure (scanned once per content key), or the error naming it."""
        from giflab_dask.decode import scan_gif

        return _memo(self.layouts, key, lambda: scan_gif(path, colour_tables=False))

    def gif_for(self, path: str, key: str) -> StoredGif | PendingGif:
        """A stored GIF's entry, or what its decode task will store."""
        stored = self.stored_gifs.get(key)
        if stored is not None:
            return stored
        from giflab_dask.framestore import chunk_frames_for

        layout = self.layout_of(path, key)
        chunk = min(chunk_frames_for(layout.height, layout.width), layout.n_frames)
        return PendingGif(key, Path(path), layout, chunk, self.frames().root)

    def chunks_of(self, index: int) -> int:
        """How many pair-metrics tasks a pair needs (time chunks of its original)."""
        from giflab_dask.framestore import chunk_frames_for

        outcome = self.outcomes[index]
        path, key = outcome.input.original, outcome.original_key or ""
        try:
            gif = self.stored_gifs.get(key) or self.layout_of(path, key)
        except GiflabError:
            return 0  # an error row, found again when its tasks are built
        n = gif.n_frames
        chunk = getattr(gif, "chunk_frames", None) or chunk_frames_for(gif.height, gif.width)
        return -(-n // min(chunk, n))

    def pairs(self) -> Iterable[tuple[int, PairOutcome]]:
        """The pairs that have no error (yet)."""
        return ((i, o) for i, o in enumerate(self.outcomes) if not o.error)


def _memo(cache: dict[str, T | GiflabError], key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per ``key``; an error naming the file is remembered and raised again
    (a file that cannot be read is its pairs' error row, every time it is asked for)."""
    if key not in cache:
        try:
            cache[key] = compute()
        except GiflabError as exc:
            cache[key] = exc
    value = cache[key]
    if isinstance(value, GiflabError):
        raise value
    return value
