"""Task keys and graph assembly: the one module that writes raw task tuples and
``HighLevelGraph``\\ s. The planner (:mod:`giflab_dask.pipeline`) decides what to compute; this
module turns one pair's decision into ``gif-decode``, ``alignment-write``, ``pair-metrics``
and ``result-write`` tasks (:mod:`.tasks`) and gives each node's write as a ``Delayed``.
Every task of a batch goes into one :class:`BatchGraph`, a layer per stage, which all the
batch's ``Delayed`` share: a huge batch is four layers, not a graph per write.

A pair costs one ``pair-metrics`` task per time chunk of its original (and group of metrics)
plus one ``result-write`` per metric: frames are read, aligned and measured in one task, and
only small per-frame vectors travel to the writes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.budget import TaskLimits
from giflab_dask.graph.tasks import (
    AlignmentJob,
    ChunkJob,
    Side,
    decode_task,
    pair_chunk,
    write_alignment,
    write_derived,
    write_from_chunks,
    write_sampled_node,
    write_with_alignment,
)
from giflab_dask.metrics import BoundMetric, MetricSpec

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.align import FrameAlignment
    from giflab_dask.decode import GifLayout
    from giflab_dask.framestore import StoredGif

__all__ = [
    "FUSE_FROM_TASKS",
    "BatchGraph",
    "PairDecodes",
    "PairGraph",
    "PendingGif",
    "balanced_groups",
    "decode_task_key",
    "derived_write",
    "metric_groups",
    "root_token",
]


# -- keys -------------------------------------------------------------------------------------


def root_token(*roots: str | os.PathLike[str]) -> str:
    """A short token of cache roots for task keys: two batches on one cluster with different
    caches must not share a task (its result would name the other cache's entry or node)."""
    return _root_token(tuple(str(r) for r in roots))


@functools.lru_cache(maxsize=64)
def _root_token(roots: tuple[str, ...]) -> str:
    # every task key of a batch names its roots: tokenized once per batch, not per task
    from dask.base import tokenize

    return tokenize(*roots)[:8]


def _group_token(node_keys: Sequence[str], *parts: Any) -> str:
    """The token of one pair's ``pair-metrics`` tasks for a group of metrics: their node keys
    already name both GIFs' contents, the alignment options and each metric's parameters (what
    decides the tasks' values); ``parts`` add what decides how they run and where they read."""
    text = "|".join([*node_keys, *(str(p) for p in parts)])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def decode_task_key(key: str, root: str | os.PathLike[str]) -> str:
    """``gif-decode-<content key>-<root token>``: one decode per GIF and frame store."""
    return f"gif-decode-{key}-{root_token(root)}"


# -- GIFs whose frames come from a decode task in the graph -----------------------------------


@dataclass(frozen=True)
class PendingGif:
    """A GIF not yet in the frame store: its size, frame count and durations from its blocks
    (what planning needs); its frames come from its ``gif-decode`` task in the graph."""

    key: str
    path: Path
    layout: GifLayout
    chunk_frames: int
    store_root: Path

    @property
    def n_frames(self) -> int:
        return self.layout.n_frames

    @property
    def height(self) -> int:
        return self.layout.height

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def durations_ms(self) -> np.ndarray:
        return self.layout.durations_ms

    @property
    def may_have_alpha(self) -> bool:
        # Conservative, from the blocks alone: transparency declared, disposal to background,
        # or a partial first frame (the screen it leaves uncovered is transparent).
        layout = self.layout
        first = layout.frames[0]
        screen = (0, 0, self.width, self.height)
        partial = (first.left, first.top, first.width, first.height) != screen
        return (
            layout.declares_transparency or any(f.disposal == 2 for f in layout.frames) or partial
        )


@dataclass(frozen=True, eq=False)
class PairDecodes:
    """The ``gif-decode`` tasks of a pair's GIFs that are not yet in the frame store."""

    dsk: Mapping[Any, Any]  # decode task key -> task
    decodes: Mapping[str, str] = field(default_factory=dict)  # content key -> decode task key

    @classmethod
    def for_gifs(
        cls,
        pending: Mapping[str, tuple[Path, Path]],
        memory: Mapping[str, tuple[int, int | None]] | None = None,
    ) -> PairDecodes:
        """``pending`` maps content key -> (GIF path, frame store root); ``memory`` content key
        -> (estimated bytes, memory budget) of its decode."""
        memory = memory or {}
        decodes = {k: decode_task_key(k, pending[k][1]) for k in sorted(pending)}
        dsk: dict[Any, Any] = {
            decodes[k]: (
                decode_task, str(pending[k][0]), k, str(pending[k][1]), memory.get(k, (0, None))
            )
            for k in decodes
        }  # fmt: skip
        return cls(dsk, decodes)


# -- metric groups ----------------------------------------------------------------------------

#: Below this many pair-metrics tasks in a batch (pairs x time chunks), the metrics are split
#: into groups with tasks of their own, until the batch has about this many tasks: a single
#: small pair would otherwise run all its kernels in one task, on one core. Each group reads
#: and aligns the frames again, so there are no more groups than that takes.
FUSE_FROM_TASKS = 32


def metric_groups(tasks: int, metrics: int) -> int:
    """How many groups of metrics each pair's chunks are measured in, for a batch of ``tasks``
    pair-metrics tasks when every metric runs in one (1 from :data:`FUSE_FROM_TASKS` on)."""
    if tasks >= FUSE_FROM_TASKS or tasks <= 0:
        return 1
    return max(1, min(metrics, -(-FUSE_FROM_TASKS // tasks)))


def balanced_groups(specs: Sequence[MetricSpec], groups: int) -> list[list[MetricSpec]]:
    """``specs`` in ``groups`` groups of about equal cost (``MetricSpec.cost``, greedy: the
    dearest metric first, each into the cheapest group so far), in registry order inside."""
    if groups <= 1:
        return [list(specs)]
    bins: list[list[MetricSpec]] = [[] for _ in range(min(groups, len(specs)))]
    loads = [0.0] * len(bins)
    for spec in sorted(specs, key=lambda s: -s.cost):
        i = loads.index(min(loads))
        bins[i].append(spec)
        loads[i] += spec.cost
    order = {s.name: i for i, s in enumerate(specs)}
    return [sorted(b, key=lambda s: order[s.name]) for b in bins if b]


# -- one pair's tasks -------------------------------------------------------------------------


def _side(gif: StoredGif | PendingGif) -> Side:
    if isinstance(gif, PendingGif):
        return Side(gif.key, None)
    return Side(gif.key, str(gif.path), gif.has_alpha)


#: The stages of a batch's graph, one layer each, and the layers each one's tasks read.
LAYERS = {
    "gif-decode": (),
    "pair-metrics": ("gif-decode",),
    "result-write": ("gif-decode", "pair-metrics"),
    "alignment-write": ("gif-decode",),
}


class BatchGraph:
    """The tasks of one batch, a dict per stage (:data:`LAYERS`), and one ``HighLevelGraph``
    over them that every write's ``Delayed`` shares (tasks added later are in it too: the
    layers hold the dicts, not copies). Layer names carry the batch's id, so the graphs of two
    batches merge without one's stage replacing the other's."""

    def __init__(self) -> None:
        from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

        self.id = uuid.uuid4().hex[:12]
        self.tasks: dict[str, dict[Any, Any]] = {stage: {} for stage in LAYERS}
        layers = {self.layer(s): MaterializedLayer(dsk) for s, dsk in self.tasks.items()}
        needs = {self.layer(s): {self.layer(d) for d in deps} for s, deps in LAYERS.items()}
        self.graph = HighLevelGraph(layers, needs)  # type: ignore[arg-type]

    def layer(self, stage: str) -> str:
        return f"{stage}-{self.id}"

    def add(self, stage: str, dsk: Mapping[Any, Any]) -> None:
        self.tasks[stage].update(dsk)

    def write(self, stage: str, key: str, task: tuple[Any, ...]) -> Delayed:
        """Add a write task; its ``Delayed`` over the batch's graph."""
        from dask.delayed import Delayed

        self.tasks[stage][key] = task
        return Delayed(key, self.graph, layer=self.layer(stage))


def derived_write(
    batch: BatchGraph, root: str, node: str, spec: MetricSpec, parent: np.ndarray
) -> Delayed:
    """The ``result-write`` of a metric derived from a stored node's per-frame vector."""
    write_key = f"result-write-{node}-{root_token(root)}"
    return batch.write("result-write", write_key, (write_derived, root, node, spec, parent))


@dataclass(frozen=True, eq=False)
class PairGraph:
    """What every task of one pair shares: its two sides, the decode tasks they wait for (and
    the keys of their results, None for a GIF already stored), where results are written."""

    batch: BatchGraph
    sides: tuple[Side, Side]
    refs: list[Any]
    decode_dsk: Mapping[Any, Any]
    facts: FrameAlignment
    root: str  # the result store's root
    roots: str  # token of the frame and result store roots, for task keys
    n_frames: int
    chunk_frames: int
    limits: TaskLimits

    @classmethod
    def of(
        cls,
        batch: BatchGraph,
        original: StoredGif | PendingGif,
        compressed: StoredGif | PendingGif,
        facts: FrameAlignment,
        root: str,
        store_root: Path,
        pair_decodes: PairDecodes | None,
        limits: TaskLimits | None = None,
    ) -> PairGraph:
        sides = (_side(original), _side(compressed))
        refs: list[Any] = [None, None]
        decode_dsk: Mapping[Any, Any] = {}
        if pair_decodes is not None:
            refs = [pair_decodes.decodes.get(side.key) for side in sides]
            decode_dsk = pair_decodes.dsk
        return cls(
            batch, sides, refs, decode_dsk, facts, root, root_token(store_root, root),
            original.n_frames, original.chunk_frames, limits or TaskLimits(),
        )  # fmt: skip

    def alignment_write(self, job: AlignmentJob) -> Delayed:
        """The ``alignment-write`` of the pair's alignment node, after the pair's decodes
        (which count the frames its facts need); for a pair with no metric to write."""
        name = job.node or uuid.uuid4().hex  # not stored: a task of this graph alone
        self.batch.add("gif-decode", self.decode_dsk)
        task = (write_alignment, job, *self.refs)
        return self.batch.write("alignment-write", f"alignment-write-{name}-{self.roots}", task)

    def _job(self, start: int, stop: int, previous: bool, mapping: np.ndarray,
             metrics: tuple[BoundMetric, ...], frames: np.ndarray | None = None,
             keep: np.ndarray | None = None) -> ChunkJob:  # fmt: skip
        options = self.facts.options
        return ChunkJob(
            *self.sides, start, stop, previous, mapping, options.background, self.facts.size,
            options.resize, metrics, frames, keep, self.limits,
        )  # fmt: skip

    def _chunks(self, name: str, jobs: Sequence[ChunkJob]) -> list[Any]:
        """Add the pair's decodes and a ``pair-metrics`` task per job; their keys."""
        self.batch.add("gif-decode", self.decode_dsk)
        dsk = {(name, i): (pair_chunk, job, *self.refs) for i, job in enumerate(jobs)}
        self.batch.add("pair-metrics", dsk)
        return list(dsk)

    def fused_writes(
        self,
        metric_keys: Mapping[str, str],
        specs: Sequence[MetricSpec],
        groups: int = 1,
        bound: Mapping[str, BoundMetric] | None = None,
        alignment: AlignmentJob | None = None,
    ) -> tuple[dict[str, Delayed], int]:
        """The ``result-write`` of each metric in ``specs``, over one ``pair-metrics`` task per
        time chunk of the original and group of metrics (``groups`` of about equal cost, see
        :func:`metric_groups`); and the frames x metrics those tasks measure. ``bound``: the
        batch's metrics as tasks run them, by name (bound once per batch, not per pair);
        ``alignment``: the pair's alignment node, stored by its first write."""
        n, step = self.n_frames, self.chunk_frames
        writes, measurements = {}, 0
        for group in balanced_groups(specs, groups):
            metrics = tuple(
                bound[s.name] if bound and s.name in bound else BoundMetric.of(s) for s in group
            )
            previous = any(s.temporal for s in group)
            token = _group_token(
                [metric_keys[s.name] for s in group], self.roots, n, step, self.sides,
                [sorted(m.runtime.items()) for m in metrics],
            )  # fmt: skip
            jobs = []
            for start in range(0, n, step):
                stop = min(start + step, n)
                lead = previous and start > 0
                mapping = self.facts.mapping[start - 1 if lead else start : stop]
                jobs.append(self._job(start, stop, lead, mapping, metrics))
                measurements += (stop - start) * len(metrics)
            chunk_keys = self._chunks(f"pair-metrics-{token}", jobs)
            for spec in group:
                node = metric_keys[spec.name]
                task: tuple[Any, ...] = (
                    write_from_chunks, self.root, node, spec, list(self.refs), chunk_keys
                )  # fmt: skip
                if alignment is not None:
                    task = (write_with_alignment, alignment, *task[1:])
                    alignment = None
                key = f"result-write-{node}-{self.roots}"
                writes[spec.name] = self.batch.write("result-write", key, task)
        # in the order asked (the table's columns)
        return {s.name: writes[s.name] for s in specs}, measurements

    def sampled_writes(
        self,
        metric_keys: Mapping[str, str],
        group: Sequence[MetricSpec],
        todo: np.ndarray,
        records: Mapping[str, Mapping[str, Any]],
    ) -> list[tuple[MetricSpec, Delayed]]:
        """The ``result-write`` of each sampled metric of ``group`` (metrics that measure the
        same frames ``todo``, all temporal or none), over ``pair-metrics`` tasks that read only
        those frames, one per time chunk they fall in; ``records`` is each node's sample
        record (design, computed, known)."""
        from dask.base import tokenize

        facts = self.facts
        temporal = group[0].temporal
        metrics = tuple(BoundMetric.of(s) for s in group)
        step = self.chunk_frames
        jobs = []
        for part in np.split(todo, np.flatnonzero(np.diff(todo // step)) + 1) if len(todo) else []:
            frames, keep = part, None
            if temporal:  # temporal metrics also read the frame before each sampled one
                frames = np.union1d(part, part[part > 0] - 1)
                keep = np.searchsorted(frames, part)
            start, stop = int(frames[0]), int(frames[-1]) + 1
            jobs.append(self._job(start, stop, False, facts.mapping[frames], metrics, frames, keep))
        where = [(j.frames, j.mapping) for j in jobs]
        token = tokenize(
            self.sides, facts.options, facts.mode, facts.size, metrics, self.roots, where
        )
        chunk_keys = self._chunks(f"pair-metrics-{token}", jobs)
        out = []
        for spec in group:
            key = metric_keys[spec.name]
            task = (
                write_sampled_node, self.root, key, spec, list(self.refs), chunk_keys,
                records[spec.name],
            )  # fmt: skip
            write_key = f"result-write-{key}-{self.roots}"
            out.append((spec, self.batch.write("result-write", write_key, task)))
        return out
