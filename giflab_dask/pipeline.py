"""The validation graph: one graph per batch, persisted nodes as the result cache.

For a batch of pairs (DESIGN decisions 7 and 8):

1. every input file is hashed to its content key and its block structure scanned (cheap; a file
   that is not a GIF becomes an error row here, before any graph);
2. for every pair the client looks up its nodes in the result store: the alignment node and one
   node per metric, keyed by ``tokenize(original key, compressed key, alignment options, metric
   spec, schema version)``; a pair whose nodes all exist needs no task at all;
3. for the missing nodes one graph is built: each distinct GIF that is not yet in the frame
   store gets one ``gif-decode-<key>-<root>`` task (however many pairs use it); each pair gets
   one ``pair-metrics`` task per time chunk of its original, which reads both GIFs' frames of
   that chunk, aligns them and runs the missing metrics' kernels (DESIGN decision 32), and one
   ``result-write`` task per missing metric node, which summarizes and stores it, so an
   interrupted batch keeps every finished node and the rerun computes only the rest;
4. one ``dask.compute`` runs it; the verdict of each pair is evaluated from its summaries.

A decode failure is carried in-band (its pair becomes an error row, the others finish), and so
is a metric that fails at run time (a kernel that raises, memory, a node that cannot be
written): nothing of it is stored, so the next run computes it again, and its pair gets no
verdict but an error naming the metric and the cause (DESIGN decision 49), while the pair's
other metrics are stored. Only a metric missing by nature of the input (every frame NaN: too
small, no gradient region) leaves a verdict over the others. Anything else that fails a task
aborts the shared compute, after which the remaining work is retried write by write so the
failure is pinned on its pair and metric.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.align import (
    AlignOptions,
    FrameAlignment,
    display_times,
    frame_alignment,
)
from giflab_dask.budget import (
    PairClock,
    TaskLimits,
    decode_bytes,
    max_pair_seconds,
    measure_in_groups,
    memory_budget,
    pair_limits,
    reserve,
)
from giflab_dask.errors import (
    CacheWriteError,
    GiflabError,
    MeasurementError,
    MemoryBudgetError,
    PairTimeLimitError,
)
from giflab_dask.inputs import PairInput
from giflab_dask.metrics import (
    BoundMetric,
    MetricSpec,
    get_metric,
    resolve_metrics,
)
from giflab_dask.reduce import composite_quality, psnr_from_mse, summarize
from giflab_dask.results import PairResult
from giflab_dask.resultstore import ResultStore, node_key
from giflab_dask.sampling import SampleDesign, SampleSpec, expand
from giflab_dask.verdicts import evaluate, load_profile

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.cluster import RunReport
    from giflab_dask.decode import GifLayout
    from giflab_dask.framestore import FrameStore, StoredGif

__all__ = [
    "BatchPlan",
    "BatchResult",
    "LazyPairResult",
    "PairOutcome",
    "plan_batch",
    "validate_batch",
    "validate_pair",
    "validate_pair_lazy",
]

GifLike = str | os.PathLike[str]


# -- GIFs whose frames come from a decode task in the graph -----------------------------------


def _decode_task(
    path: str, key: str, root: str, memory: tuple[int, int | None] = (0, None)
) -> dict[str, Any]:
    """The ``gif-decode`` task: decode into the frame store (or find it there); never raises.

    ``memory``: the decode's estimated bytes and the budget it is reserved from (decision 50).
    """
    from giflab_dask.framestore import FrameStore
    from giflab_dask.keys import GifSource

    try:
        with reserve(*memory):
            stored = FrameStore(root).ensure(GifSource(Path(path), key))
    except GiflabError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{path}: {type(exc).__name__}: {exc}"}
    return {"ok": True, "entry": str(stored.path), "has_alpha": stored.has_alpha}


def root_token(*roots: str | os.PathLike[str]) -> str:
    """A short token of cache roots for task keys: two batches on one cluster with different
    caches must not share a task (its result would name the other cache's entry or node)."""
    from dask.base import tokenize

    return tokenize(*(str(r) for r in roots))[:8]


def decode_task_key(key: str, root: str | os.PathLike[str]) -> str:
    """``gif-decode-<content key>-<root token>``: one decode per GIF and frame store."""
    return f"gif-decode-{key}-{root_token(root)}"


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
                _decode_task, str(pending[k][0]), k, str(pending[k][1]), memory.get(k, (0, None))
            )
            for k in decodes
        }  # fmt: skip
        return cls(dsk, decodes)


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
        partial = (first.left, first.top, first.width, first.height) != (
            0,
            0,
            self.width,
            self.height,
        )
        return (
            layout.declares_transparency or any(f.disposal == 2 for f in layout.frames) or partial
        )


# -- nodes ------------------------------------------------------------------------------------


def _metric_node_key(
    o_key: str,
    c_key: str,
    options: AlignOptions,
    spec: MetricSpec,
    sample: SampleSpec | None = None,
) -> str:
    if sample is None:  # full-frame keys stay as they were
        return node_key("metric", o_key, c_key, options, spec)
    return node_key("metric", o_key, c_key, options, spec, sample)


def _alignment_node_key(o_key: str, c_key: str, options: AlignOptions) -> str:
    return node_key("alignment", o_key, c_key, options)


def _node_summaries(data: Mapping[str, Any]) -> dict[str, list[float]]:
    return {name: output["summary"] for name, output in data["outputs"].items()}


# -- one task per pair and chunk (DESIGN decision 32) -----------------------------------------


@dataclass(frozen=True)
class _Side:
    """Where a task finds one GIF's frames: a stored entry, or what its decode task returns."""

    key: str
    entry: str | None  # the stored entry's folder; None while this graph decodes the GIF
    has_alpha: bool = False

    @classmethod
    def of(cls, gif: StoredGif | PendingGif) -> _Side:
        if isinstance(gif, PendingGif):
            return cls(gif.key, None)
        return cls(gif.key, str(gif.path), gif.has_alpha)

    def locate(self, decoded: dict[str, Any] | None) -> tuple[str, bool] | None:
        """(entry folder, has alpha), or None when its decode failed."""
        if self.entry is not None:
            return self.entry, self.has_alpha
        if decoded is None or not decoded["ok"]:
            return None
        # The decode knows whether any frame was transparent: opaque GIFs read no alpha.
        return decoded["entry"], bool(decoded["has_alpha"])


@dataclass(frozen=True, eq=False)
class _ChunkJob:
    """What one ``pair-metrics`` task measures: original frames ``[start, stop)`` of a pair."""

    original: _Side
    compressed: _Side
    start: int
    stop: int
    previous: bool  # frame start - 1 is read too (temporal metrics compare with it)
    mapping: np.ndarray  # the compressed frame of each original frame read
    background: tuple[int, int, int]
    size: tuple[int, int]
    method: str
    metrics: tuple[BoundMetric, ...]
    # A sampled pair's job (decision 31): these original frames (sorted) instead of
    # [start, stop), and the rows of the results to keep (temporal metrics also read the
    # frame before each sampled one).
    frames: np.ndarray | None = None
    keep: np.ndarray | None = None
    limits: TaskLimits = field(default_factory=TaskLimits)  # memory budget and time limit


def _read_frames(
    where: tuple[str, bool], index: slice | np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB frames (and alpha, if the entry has it) at ``index`` of a stored entry.

    Each chunk holding a wanted frame is read once: a compressed GIF with more frames than its
    original is sampled, never read whole; frames shown more than once are read once.
    """
    from giflab_dask.framestore import read_frames

    entry, has_alpha = where
    rgb = read_frames(entry, "frames", index)
    return rgb, (read_frames(entry, "alpha", index) if has_alpha else None)


def _pair_chunk(
    job: _ChunkJob, o_decoded: dict[str, Any] | None, c_decoded: dict[str, Any] | None
) -> dict[str, np.ndarray | str] | None:
    """The ``pair-metrics`` task: read both GIFs' frames of one chunk, composite and resize
    them, and run every requested kernel; returns each metric's ``(t, k)`` values (or its
    error text), or None when a decode of the pair failed (its ``result-write`` says why).

    Only these small vectors leave the task: frames never travel between workers. A pair over
    its memory budget or time limit (decision 50) gives ``{_ERROR: reason}``: an error row.
    """
    o_where, c_where = job.original.locate(o_decoded), job.compressed.locate(c_decoded)
    if o_where is None or c_where is None:
        return None
    clock = PairClock(job.limits)
    try:
        clock.check()  # another task of the pair may have used its time up
        with reserve(job.limits.memory, job.limits.budget):
            clock.last = time.perf_counter()  # waiting for memory is not the pair's time
            return _measure_chunk(job, o_where, c_where, clock)
    except (MemoryBudgetError, PairTimeLimitError) as exc:  # the pair is an error row
        return {_ERROR: str(exc)}


def _measure_chunk(
    job: _ChunkJob, o_where: tuple[str, bool], c_where: tuple[str, bool], clock: PairClock
) -> dict[str, np.ndarray | str]:
    """:func:`_pair_chunk` once both GIFs are stored and the task's memory is reserved."""
    from giflab_dask.align import _prepare_block
    from giflab_dask.cluster import activity, count_frames

    lo = job.start - 1 if job.previous else job.start
    index = job.frames if job.frames is not None else slice(lo, job.stop)
    prep = {"background": job.background, "size": job.size, "method": job.method}
    started = time.perf_counter()
    try:
        with activity("read"):
            o_rgb, o_alpha = _read_frames(o_where, index)
            c_rgb, c_alpha = _read_frames(c_where, job.mapping)
        with activity("align"):
            original = _prepare_block(o_rgb, o_alpha, **prep)
            compressed = _prepare_block(c_rgb, c_alpha, **prep)
    except Exception as exc:  # e.g. a corrupted store chunk: every metric of the pair says so
        error = f"{type(exc).__name__}: {exc}"
        return {m.spec.name: error for m in job.metrics}
    del o_rgb, o_alpha, c_rgb, c_alpha
    # Task seconds per metric (its kernel plus an equal share of reading and aligning), stored
    # with each node: what a later run saves by finding the node (the "time saved" statistic).
    seconds = {m.spec.name: (time.perf_counter() - started) / len(job.metrics) for m in job.metrics}

    @contextlib.contextmanager
    def meter(label: str) -> Iterator[None]:
        began = time.perf_counter()
        with activity(label):
            yield
        name = label.removesuffix("-frame")
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began

    out = measure_in_groups(
        job.metrics, original, compressed, previous=job.previous, clock=clock, meter=meter
    )
    measured = len(original) - (1 if job.previous else 0) if job.keep is None else len(job.keep)
    count_frames(measured * len(job.metrics))
    if job.keep is not None:
        out = {k: v if isinstance(v, str) else v[job.keep] for k, v in out.items()}
    out[_SECONDS] = seconds  # type: ignore[assignment]
    return out


#: Key of the per-metric task seconds in a ``pair-metrics`` task's result.
_SECONDS = "__seconds__"
#: Key of a ``pair-metrics`` task's result when the pair is refused (memory, time).
_ERROR = "__error__"


def _write_from_chunks(
    root: str,
    key: str,
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
) -> dict[str, Any]:
    """The ``result-write`` task: one metric node of one pair from its ``pair-metrics``
    chunks (summaries included), persisted unless a decode failed or the kernel raised."""
    started = time.perf_counter()
    gathered = _gather_chunks(spec, decoded, chunks)
    if isinstance(gathered, dict):
        return gathered
    matrix, measured = gathered
    return _persist_node(root, key, spec, matrix, measured, started)


def _gather_chunks(
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
) -> tuple[np.ndarray, float] | dict[str, Any]:
    """One metric's ``(t, k)`` values from its ``pair-metrics`` chunks, in order, with their
    measured task seconds; or the write's result when a decode failed or the kernel raised."""
    failed = [d["error"] for d in decoded if d is not None and not d["ok"]]
    failed += [c[_ERROR] for c in chunks if c is not None and _ERROR in c][:1]  # type: ignore[misc]
    if failed:
        return {"ok": False, "error": "; ".join(failed)}
    values = [chunk[spec.name] for chunk in chunks if chunk is not None]
    errors = [v for v in values if isinstance(v, str)]
    if errors:
        return {"ok": False, "metric_error": errors[0]}
    measured = sum(
        chunk.get(_SECONDS, {}).get(spec.name, 0.0)  # type: ignore[union-attr]
        for chunk in chunks
        if chunk is not None
    )
    k = len(spec.outputs)
    if not values:
        return np.empty((0, k)), measured
    matrix = np.concatenate([np.asarray(v, dtype=np.float64).reshape(len(v), k) for v in values])
    return matrix, measured


def _persist_node(
    root: str, key: str, spec: MetricSpec, matrix: np.ndarray, measured: float, started: float
) -> dict[str, Any]:
    """Summarise a metric's ``(T, k)`` per-frame matrix and store the node."""
    from giflab_dask.cluster import activity
    from giflab_dask.reduce import _summarize_values

    with activity("summary"):
        vectors = {name: matrix[:, j] for j, name in enumerate(spec.outputs)}
        stats = [_summarize_values(vectors[name]) for name in spec.outputs]
        pair_summary = spec.resolve_pair_summary()
        extra = {}
        if pair_summary is not None:
            extra = {k: float(v) for k, v in pair_summary(matrix).items()}
    data = {
        "metric": spec.name,
        "outputs": {
            name: {"per_frame": vectors[name].tolist(), "summary": summary.tolist()}
            for name, summary in zip(spec.outputs, stats, strict=True)
        },
        "pair_summary": extra,
        "compute_seconds": measured + time.perf_counter() - started,
    }
    ResultStore(root).put(key, "metric", data)
    return {"ok": True, "summary": _node_summaries(data), "extra": extra}


def _write_derived(root: str, key: str, spec: MetricSpec, parent: np.ndarray) -> dict[str, Any]:
    """The ``result-write`` task of a metric derived from a stored node's per-frame vector
    (PSNR from MSE, ``MetricSpec.derive``): no frame is read."""
    started = time.perf_counter()
    derive = spec.resolve_derive()
    assert derive is not None
    matrix = np.asarray(derive(parent, **spec.params), dtype=np.float64).reshape(len(parent), -1)
    return _persist_node(root, key, spec, matrix, 0.0, started)


def _derivable(
    specs: Sequence[MetricSpec],
    requested: Sequence[MetricSpec],
    keys: tuple[str, str],
    options: AlignOptions,
    results: ResultStore,
    found: Mapping[str, Mapping[str, Any]],
) -> dict[str, np.ndarray]:
    """Which of ``specs`` can be derived from a stored node, with that node's per-frame
    vector: the parent as requested in this batch, else at its registered parameters."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        parent = spec.derive_from
        if parent is None or spec.derive is None:
            continue
        if parent in found:
            data: Mapping[str, Any] | None = found[parent]
        else:
            parent_spec = next((s for s in requested if s.name == parent), None)
            try:
                parent_spec = parent_spec or get_metric(parent)
            except GiflabError:
                continue
            data = results.get(_metric_node_key(*keys, options, parent_spec), "metric")
        output = (data or {}).get("outputs", {}).get(parent)
        if output is not None:
            out[spec.name] = np.asarray(output["per_frame"], dtype=np.float64)
    return out


def _pair_writes(
    outcome: PairOutcome,
    specs: Sequence[MetricSpec],
    original: StoredGif | PendingGif,
    compressed: StoredGif | PendingGif,
    facts: FrameAlignment,
    root: str,
    store_root: Path,
    pair_decodes: PairDecodes | None,
    *,
    groups: int = 1,
    limits: TaskLimits | None = None,
) -> dict[str, Delayed]:
    """The ``result-write`` task of each metric in ``specs`` for one pair, over one
    ``pair-metrics`` task per time chunk of the original and group of metrics (``groups``
    groups of about equal cost: more than one only for batches too small to keep the workers
    busy otherwise, see :func:`metric_groups`).

    Each task is raw (no dask.array): the frames of a chunk are read, aligned and measured in
    one task, so a pair costs ``chunks + metrics`` tasks plus its decodes.
    """
    from dask.base import tokenize

    sides, refs, decode_dsk = _pair_inputs(original, compressed, pair_decodes)
    roots = root_token(store_root, root)
    options = facts.options
    n, step = original.n_frames, original.chunk_frames
    writes = {}
    for group in _balanced_groups(specs, groups):
        metrics = tuple(BoundMetric.of(s) for s in group)
        previous = any(s.temporal for s in group)
        token = tokenize(sides, options, facts.mode, facts.mapping, facts.size, metrics, roots)
        name = f"pair-metrics-{token}"
        dsk = dict(decode_dsk)
        for i, start in enumerate(range(0, n, step)):
            stop = min(start + step, n)
            lead = previous and start > 0
            job = _ChunkJob(
                *sides, start, stop, lead, facts.mapping[start - 1 if lead else start : stop],
                options.background, facts.size, options.resize, metrics,
                limits=limits or TaskLimits(),
            )  # fmt: skip
            dsk[(name, i)] = (_pair_chunk, job, *refs)
            outcome.frame_measurements += (stop - start) * len(metrics)
        chunk_keys = [k for k in dsk if isinstance(k, tuple)]
        for spec in group:
            node = outcome.metric_keys[spec.name]
            task = (_write_from_chunks, root, node, spec, list(refs), chunk_keys)
            writes[spec.name] = _write_delayed(f"result-write-{node}-{roots}", task, dsk)
    return {s.name: writes[s.name] for s in specs}  # in the order asked (the table's columns)


def _pair_inputs(
    original: StoredGif | PendingGif,
    compressed: StoredGif | PendingGif,
    pair_decodes: PairDecodes | None,
) -> tuple[tuple[_Side, _Side], list[Any], dict[Any, Any]]:
    """A pair's two sides, the keys of their decode results (None: already stored) and the
    decode tasks its pair-metrics tasks wait for."""
    sides = (_Side.of(original), _Side.of(compressed))
    if pair_decodes is None:
        return sides, [None, None], {}
    refs = [pair_decodes.decodes.get(side.key) for side in sides]
    return sides, refs, dict(pair_decodes.dsk)


def _write_delayed(write_key: str, task: tuple[Any, ...], dsk: Mapping[Any, Any]) -> Delayed:
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.from_collections(write_key, {**dsk, write_key: task}, dependencies=())
    return Delayed(write_key, graph)


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


def _balanced_groups(specs: Sequence[MetricSpec], groups: int) -> list[list[MetricSpec]]:
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


# -- the plan ---------------------------------------------------------------------------------


@dataclass
class PairOutcome:
    """One pair of a batch: its input row and, once computed, its result or error."""

    input: PairInput
    original_key: str | None = None
    compressed_key: str | None = None
    error: str | None = None
    alignment: dict[str, Any] | None = None
    metric_keys: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, list[float]] = field(default_factory=dict)  # output -> stats
    extra: dict[str, float] = field(default_factory=dict)  # pair-level summaries of metrics
    missing: dict[str, str] = field(default_factory=dict)  # by nature of the input
    failed: dict[str, str] = field(default_factory=dict)  # failed at run time: no verdict
    hits: int = 0
    computed: int = 0
    saved_seconds: float = 0.0  # recorded compute seconds of this pair's stored nodes
    result: PairResult | None = None
    sample: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> its sample record
    frame_measurements: int = 0  # frames x metrics its pair-metrics tasks measure (progress)
    # (original, compressed, alignment node key or None) while a pair fact waits for a decode
    facts_after_decode: tuple[Any, Any, str | None] | None = None


@dataclass
class BatchPlan:
    """The graph of a batch before compute: which nodes exist, and the tasks for the rest."""

    outcomes: list[PairOutcome]
    specs: list[MetricSpec]
    options: AlignOptions
    profile: str | Mapping[str, Any] | None
    results: ResultStore
    writes: dict[tuple[int, str], Delayed]  # (pair index, metric) -> result-write task
    decode_keys: set[str]
    started: float = field(default_factory=time.perf_counter)
    sample: SampleSpec | None = None
    # Adaptive sampling: this plan is the pilot pass, and ``then()`` plans the final pass.
    then: Callable[[], BatchPlan] | None = None
    #: Recorded decode seconds of the GIFs whose frames came from the frame store.
    decode_saved_seconds: float = 0.0

    def dask_objects(self) -> list[Delayed]:
        return list(self.writes.values())

    @property
    def n_decode_tasks(self) -> int:
        return len(self.decode_keys)

    @property
    def n_metric_tasks(self) -> int:
        return len(self.writes)

    @property
    def frame_measurements(self) -> int:
        """Frames x metrics the graph measures: the total of ``cluster.frames_measured``'s
        count when it has run (progress within long pairs)."""
        return sum(o.frame_measurements for o in self.outcomes)

    def compute(self, *, progress: bool = False, **compute_kwargs: Any) -> BatchResult:
        """Run the graph and assemble one outcome per pair.

        ``scheduler`` (threads, processes, sync, local-cluster, an address, a Client),
        ``address`` and ``num_workers`` choose where it runs (:mod:`giflab_dask.cluster`;
        default: an active Client, else ``giflab.scheduler``); ``progress`` shows a progress
        bar on stderr; other keyword arguments go to ``dask.compute``. The run's
        :class:`~giflab_dask.cluster.RunReport` (stage times) is ``result.report``.
        """
        from giflab_dask.cluster import execute

        if self.then is not None:  # adaptive sampling (decision 31): the pilot pass first
            execute(
                list(self.writes.values()),
                progress=progress,
                frames_total=self.frame_measurements,
                **compute_kwargs,
            )
            final = self.then()
            final.started = self.started
            return final.compute(progress=progress, **compute_kwargs)
        items = list(self.writes.items())
        # Finished nodes are stored as they finish; a write that failed is pinned on its own
        # pair and metric, and the others keep their results (DESIGN decision 19).
        values, report = execute(
            [w for _, w in items],
            progress=progress,
            frames_total=self.frame_measurements,
            **compute_kwargs,
        )
        done: dict[tuple[int, str], dict[str, Any]] = {}
        for (ident, _), value in zip(items, values, strict=True):
            if isinstance(value, BaseException):
                value = {"ok": False, "metric_error": _exception_text(value)}
            done[ident] = value
        for (index, metric), value in done.items():
            outcome = self.outcomes[index]
            if value.get("ok"):
                outcome.summaries.update(value["summary"])
                outcome.extra.update(value["extra"])
                outcome.computed += 1
                if "sample" in value:
                    outcome.sample[metric] = value["sample"]
            elif "metric_error" in value:
                outcome.failed[metric] = value["metric_error"]
            elif outcome.error is None:
                outcome.error = value["error"]
        for outcome in self.outcomes:
            if outcome.error is None and outcome.failed:
                # A verdict over the survivors would re-weigh the composite and skip checks.
                outcome.error = failure_message(outcome.failed)
            if outcome.error is None and outcome.facts_after_decode is not None:
                _complete_facts(outcome, self.options, self.results)
            if outcome.error is None and outcome.alignment is not None:
                outcome.result = _pair_result(
                    outcome, self.specs, self.profile, self.results, self.sample
                )
        return BatchResult(self.outcomes, self, time.perf_counter() - self.started, report)


def _exception_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_message(failed: Mapping[str, str]) -> str:
    """The error of a pair whose metrics failed at run time: each metric and its cause."""
    causes = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
    return f"metric failed, no verdict (the next run computes it again): {causes}"


def _pair_result(
    outcome: PairOutcome,
    specs: list[MetricSpec],
    profile: str | Mapping[str, Any] | None,
    results: ResultStore,
    sample: SampleSpec | None = None,
) -> PairResult:
    summaries: dict[str, float] = {}
    for output, stats in outcome.summaries.items():
        summaries.update(summarize(output, np.asarray(stats, dtype=np.float64)))
    summaries.update(outcome.extra)
    summaries.update(outcome.alignment["facts"])  # type: ignore[index]
    for spec in specs:
        if spec.name in outcome.missing:
            continue
        for output in spec.outputs:
            n = summaries.get(f"{output}_n_frames", 0)
            if n and summaries.get(f"{output}_n_missing") == n:
                outcome.missing.setdefault(spec.name, _all_nan_reason(spec, outcome, int(n)))
    if "mse_mean" in summaries:
        summaries["psnr_of_mean_mse"] = psnr_from_mse(summaries["mse_mean"])
    summaries["composite_quality"], _ = composite_quality(summaries)
    sample_info = _sample_summaries(outcome, summaries, sample) if sample is not None else None
    return PairResult(
        original=outcome.input.original,
        compressed=outcome.input.compressed,
        original_key=outcome.original_key or "",
        compressed_key=outcome.compressed_key or "",
        summaries=summaries,
        per_frame=_LazyVectors(results, outcome.metric_keys),
        mapping=np.asarray(outcome.alignment["mapping"], dtype=np.int64),  # type: ignore[index]
        alignment={k: v for k, v in outcome.alignment.items() if k not in ("mapping", "facts")},  # type: ignore[union-attr]
        verdict=evaluate(summaries, profile, identical=_identical(summaries, outcome, sample)),
        missing=dict(outcome.missing),
        sample=sample_info,
    )


def _identical(
    summaries: Mapping[str, float], outcome: PairOutcome, sample: SampleSpec | None
) -> bool:
    """Whether the pair shows the same frames on the same timeline: MSE 0 on every frame of
    both sides at their own size, no drift, no frame a viewer could miss (decision 47)."""
    alignment = outcome.alignment or {}
    return (
        sample is None
        and summaries.get("mse_max") == 0.0
        and summaries.get("mse_n_missing") == 0.0
        and alignment.get("original_size") == alignment.get("compressed_size")
        and summaries.get("timing_drift") == 0.0
        and summaries.get("frame_count_change") == 0.0
    )


def _all_nan_reason(spec: MetricSpec, outcome: PairOutcome, n: int) -> str:
    """Why a metric has no value on any frame: what it needs, and what these frames are."""
    height, width = (outcome.alignment or {}).get("size", (0, 0))
    reason = "no frame could be measured (all NaN)"
    if spec.needs:
        reason += f": it needs {spec.needs}"
    return f"{reason}; this pair has {n} frames of {width}x{height} (as compared)"


class _LazyVectors(dict):  # type: ignore[type-arg]
    """Per-frame vectors read from the result store on first access (plots need them, tables
    don't, so a batch never holds every vector of every pair in memory)."""

    def __init__(self, results: ResultStore, metric_keys: Mapping[str, str]) -> None:
        super().__init__()
        self._results = results
        self._keys = dict(metric_keys)
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for key in self._keys.values():
            data = self._results.get(key, "metric")
            if data is None:
                continue
            for name, output in data["outputs"].items():
                values = np.asarray(output["per_frame"], dtype=np.float64)
                if "sample" in data:  # sampled: NaN at the frames not measured (decision 31)
                    design = data["sample"]["design"]
                    values = expand(values, design["positions"], design["population"])
                super().__setitem__(name, values)

    def __getitem__(self, name: str) -> np.ndarray:
        self._load()
        return super().__getitem__(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def __contains__(self, name: object) -> bool:
        self._load()
        return super().__contains__(name)

    def items(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().items()

    def keys(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().keys()

    def values(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().values()


@dataclass
class BatchResult:
    """What a batch run produced: one outcome per input row, plus run statistics."""

    outcomes: list[PairOutcome]
    plan: BatchPlan
    seconds: float
    #: where and how the graph ran: scheduler, dashboard link, task time per stage
    report: RunReport | None = None

    @property
    def stats(self) -> dict[str, Any]:
        hits = sum(o.hits for o in self.outcomes)
        computed = sum(o.computed for o in self.outcomes)
        frames = sum(
            int(o.result.summaries.get("original_frames", 0)) for o in self.outcomes if o.result
        )
        return {
            "pairs": len(self.outcomes),
            "errors": sum(1 for o in self.outcomes if o.error),
            "node_hits": hits,
            "node_misses": computed,
            "decode_tasks": self.plan.n_decode_tasks,
            "metric_tasks": self.plan.n_metric_tasks,
            # Task seconds the caches spared this run, as recorded when the stored results were
            # computed and the stored GIFs decoded (CPU-seconds of tasks, not wall-clock time).
            "saved_seconds": sum(o.saved_seconds for o in self.outcomes)
            + self.plan.decode_saved_seconds,
            "seconds": self.seconds,
            "pairs_per_s": len(self.outcomes) / self.seconds if self.seconds else math.nan,
            "frames_per_s": frames / self.seconds if self.seconds else math.nan,
        }

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "warn": 0, "fail": 0, "error": 0}
        for o in self.outcomes:
            counts["error" if o.error or o.result is None else o.result.status] += 1
        return counts


def _scan(path: str) -> GifLayout:
    from giflab_dask.decode import scan_gif

    return scan_gif(path)


def pair_facts(options: AlignOptions, original: Any, compressed: Any) -> dict[str, float]:
    """Pair-level values the verdict checks besides metric summaries.

    ``frame_count_change`` counts frames a viewer can tell apart (decision 47), known once both
    GIFs are decoded: it is left out while either is a :class:`PendingGif`.
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
        facts["frame_count_change"] = max(0, o_seen - c_seen) / o_seen
        facts["original_distinct_frames"] = float(o_seen)
        facts["compressed_distinct_frames"] = float(c_seen)
    return facts


def _complete_facts(outcome: PairOutcome, options: AlignOptions, results: ResultStore) -> None:
    """The pair facts that waited for the decodes, from the decoded entries; the alignment
    node is stored once complete (a stored node is never missing a fact)."""
    from giflab_dask.framestore import FrameStore

    assert outcome.facts_after_decode is not None and outcome.alignment is not None
    *gifs, node = outcome.facts_after_decode
    outcome.facts_after_decode = None
    stored = [
        FrameStore(gif.store_root).open(gif.key) if isinstance(gif, PendingGif) else gif
        for gif in gifs
    ]
    if any(gif is None for gif in stored):
        # No entry to count from (removed meanwhile): the check reports it unmeasured.
        outcome.alignment["facts"]["frame_count_change"] = math.nan
        return
    outcome.alignment["facts"] = pair_facts(options, *stored)
    if node is not None:
        try:
            results.put(node, "alignment", outcome.alignment)
        except CacheWriteError as exc:  # a run-time failure like a metric node's: retried
            outcome.error = failure_message({"alignment": str(exc)})


def plan_batch(
    pairs: Sequence[PairInput],
    *,
    metrics: Iterable[str | MetricSpec] | str | None = None,
    profile: str | Mapping[str, Any] | None = None,
    align_options: AlignOptions | None = None,
    store: FrameStore | None = None,
    results: ResultStore | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    sample: SampleSpec | int | None = None,
    _pilot_store: ResultStore | None = None,
) -> BatchPlan:
    """Look up existing nodes and build the graph of the missing ones (nothing is computed).

    ``sample`` (a :class:`~giflab_dask.sampling.SampleSpec`, or N for a uniform sample of N
    frames; default ``giflab.sampling.n``, null: every frame) measures a subset of the aligned
    frames and reports intervals for the means (DESIGN decision 31). An adaptive sample returns
    its pilot pass's plan; its ``compute()`` runs the pilot, then plans and runs the rest.
    """

    from giflab_dask.keys import gif_key, gif_keys

    load_profile(profile)  # eager: a bad profile fails before any work
    budget_bytes, pair_seconds = memory_budget(), max_pair_seconds()  # eager, too
    specs = resolve_metrics(metrics)
    sample = _resolve_sample(sample)
    options = align_options or AlignOptions.from_config()
    frame_store = store

    def frames() -> FrameStore:
        # Opened only when some pair needs frames: a run of pure lookups never imports zarr
        # (importing it was 0.5 s of a 0.6 s hot batch).
        nonlocal frame_store
        if frame_store is None:
            from giflab_dask.framestore import FrameStore

            frame_store = FrameStore()
        return frame_store

    results = results or ResultStore()
    if not use_cache:
        # Nodes still pass through a store (per-frame vectors are read back from it), but one
        # of this run's own, removed when the last result that reads from it is gone.
        results = _scratch_store()
    outcomes = [PairOutcome(p, error=p.error) for p in pairs]

    keys: dict[str, str | GiflabError] = {}
    layouts: dict[str, GifLayout | GiflabError] = {}

    def key_of(path: str) -> str:
        if path not in keys:
            try:
                keys[path] = gif_key(path)
            except GiflabError as exc:
                keys[path] = exc
        value = keys[path]
        if isinstance(value, GiflabError):
            raise value
        return value

    def layout_of(path: str, key: str) -> GifLayout:
        if key not in layouts:
            try:
                layouts[key] = _scan(path)
            except GiflabError as exc:
                layouts[key] = exc
        layout = layouts[key]
        if isinstance(layout, GiflabError):
            raise layout
        return layout

    # Pass 1: keys, lookups, and which GIFs the graph must decode.
    paths = (p for o in outcomes if o.error is None for p in (o.input.original, o.input.compressed))
    keys.update(gif_keys(paths))  # all at once: one stat-index transaction, not one per file
    from dask.delayed import Delayed

    derived_writes: dict[tuple[int, str], Delayed] = {}
    stored_gifs: dict[str, StoredGif | None] = {}
    to_build: list[tuple[int, list[MetricSpec]]] = []
    pending: dict[str, tuple[Path, Path]] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.error:
            continue
        try:
            o_key, c_key = key_of(outcome.input.original), key_of(outcome.input.compressed)
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        outcome.original_key, outcome.compressed_key = o_key, c_key
        outcome.metric_keys = {
            s.name: _metric_node_key(o_key, c_key, options, s, sample) for s in specs
        }
        stored_nodes: dict[str, dict[str, Any]] = {}
        if use_cache and not refresh:
            outcome.alignment = results.get(_alignment_node_key(o_key, c_key, options), "alignment")
            for spec in specs:
                data = results.get(outcome.metric_keys[spec.name], "metric")
                if data is not None:
                    stored_nodes[spec.name] = data
        missing_specs = [s for s in specs if s.name not in stored_nodes]
        for name, data in stored_nodes.items():
            outcome.hits += 1
            outcome.saved_seconds += float(data.get("compute_seconds", 0.0))
            outcome.summaries.update(_node_summaries(data))
            outcome.extra.update(data.get("pair_summary", {}))
            if "sample" in data:
                outcome.sample[name] = data["sample"]
        if use_cache and not refresh and sample is None and missing_specs:
            # A metric that is a function of a stored node (PSNR of MSE) reads no frame.
            pair_keys = (o_key, c_key)
            parents = _derivable(missing_specs, specs, pair_keys, options, results, stored_nodes)
            for spec in missing_specs:
                if spec.name in parents:
                    node = outcome.metric_keys[spec.name]
                    write_key = f"result-write-{node}-{root_token(results.root)}"
                    task = (_write_derived, str(results.root), node, spec, parents[spec.name])
                    derived_writes[(index, spec.name)] = Delayed(write_key, {write_key: task})
            missing_specs = [s for s in missing_specs if s.name not in parents]
        if outcome.alignment is not None and not missing_specs:
            continue  # lookups and derivations: no frame is read
        try:
            for path, key in ((outcome.input.original, o_key), (outcome.input.compressed, c_key)):
                if key not in stored_gifs:
                    # the frame store is the decode cache, whatever use_cache says
                    stored_gifs[key] = frames().open(key)
                if stored_gifs[key] is None:
                    layout_of(path, key)  # unreadable structure: an error row now
                    pending.setdefault(key, (Path(path), frames().root))
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        to_build.append((index, missing_specs))

    if sample is not None and sample.strategy == "adaptive" and _pilot_store is None:
        # The pilot's values decide the final frames: plan the pilot pass first.
        same = {"metrics": specs, "profile": profile, "align_options": options, "store": frames()}
        pilot_store = results
        need = _pairs_needing_pilot(to_build, outcomes, options, sample, pilot_store, refresh)
        if need:
            pilot_plan = plan_batch(
                need, **same, results=pilot_store, refresh=refresh, sample=sample.pilot()
            )
            pilot_plan.then = functools.partial(
                plan_batch, pairs, **same, results=results, use_cache=use_cache,
                refresh=refresh, sample=sample, _pilot_store=pilot_store,
            )  # fmt: skip
            return pilot_plan
        _pilot_store = pilot_store

    # Pass 2: the graph. One pair-metrics task per pair and time chunk reads, aligns and
    # measures its frames after both decodes of the pair (decision 32); a sampled pair's
    # tasks measure only its sampled frames (decision 36).
    writes: dict[tuple[int, str], Delayed] = dict(derived_writes)
    decode_keys: set[str] = set()  # the decode tasks in the graph (not of refused pairs)

    def gif_for(path: str, key: str) -> StoredGif | PendingGif:
        stored = stored_gifs.get(key)
        if stored is not None:
            return stored
        layout = layout_of(path, key)
        from giflab_dask.framestore import chunk_frames_for

        chunk = min(chunk_frames_for(layout.height, layout.width), layout.n_frames)
        return PendingGif(key, Path(path), layout, chunk, frames().root)

    def chunks_of(index: int) -> int:
        """How many pair-metrics tasks a pair needs (time chunks of its original)."""
        path, key = outcomes[index].input.original, outcomes[index].original_key or ""
        try:
            gif = stored_gifs.get(key) or layout_of(path, key)
        except GiflabError:
            return 0  # an error row, found again below
        n = gif.n_frames
        from giflab_dask.framestore import chunk_frames_for

        chunk = getattr(gif, "chunk_frames", None) or chunk_frames_for(gif.height, gif.width)
        return -(-n // min(chunk, n))

    groups = metric_groups(sum(chunks_of(index) for index, _ in to_build), len(specs))
    run = uuid.uuid4().hex  # names this plan's pair clocks (a pair's tasks share one)

    for index, missing_specs in to_build:
        outcome = outcomes[index]
        o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
        pair_pending = {k: pending[k] for k in (o_key, c_key) if k in pending}
        pair_decodes = None
        try:
            if pair_pending:
                memory = {
                    k: (decode_bytes(layout_of(str(path), k)), budget_bytes)
                    for k, (path, _) in pair_pending.items()
                }
                pair_decodes = PairDecodes.for_gifs(pair_pending, memory)
            o_gif = gif_for(outcome.input.original, o_key)
            c_gif = gif_for(outcome.input.compressed, c_key)
            # Refused before anything of the pair is decoded when a task cannot fit.
            what = f"{outcome.input.compressed} vs {outcome.input.original}"
            limits = pair_limits(
                what, missing_specs, o_gif, c_gif, f"{run}-{index}", budget_bytes, pair_seconds
            )
            if options.mode == "content":
                # Content alignment compares frames before the graph: decode those now.
                o_gif, c_gif = (
                    frames().ensure(outcome.input.original),
                    frames().ensure(outcome.input.compressed),
                )
            facts = frame_alignment(o_gif, c_gif, options)  # type: ignore[arg-type]
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        except Exception as exc:  # a bug must cost its pair, never the batch (decision 19)
            outcome.error = (
                f"aligning {outcome.input.compressed} with {outcome.input.original} failed: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        if outcome.alignment is None:
            outcome.alignment = {
                "mapping": facts.mapping.tolist(),
                "mode": facts.mode,
                "size": list(facts.size),
                "original_size": list(facts.original_size),
                "compressed_size": list(facts.compressed_size),
                "notes": facts.notes,
                "facts": pair_facts(options, o_gif, c_gif),
            }
            node = _alignment_node_key(o_key, c_key, options) if use_cache else None
            if "frame_count_change" not in outcome.alignment["facts"]:
                outcome.facts_after_decode = (o_gif, c_gif, node)
            elif node is not None:
                try:
                    results.put(node, "alignment", outcome.alignment)
                except CacheWriteError as exc:  # its metric nodes could not be stored either
                    outcome.failed["alignment"] = str(exc)  # a run-time failure: retried
                    continue
        target = str(results.root)
        if sample is not None:  # which frames to measure is decided here, per pair (decision 31)
            layout = functools.partial(layout_of, outcome.input.original, o_key)
            for spec, write in _sampled_writes(
                outcome, missing_specs, o_gif, c_gif, facts, sample, target, frames().root,
                pair_decodes, _pilot_store, layout, limits,
            ):  # fmt: skip
                writes[(index, spec.name)] = write
                decode_keys.update(pair_decodes.decodes.values() if pair_decodes else ())
            continue
        fused = _pair_writes(
            outcome, missing_specs, o_gif, c_gif, facts, target, frames().root, pair_decodes,
            groups=groups, limits=limits,
        )  # fmt: skip
        writes.update({(index, name): write for name, write in fused.items()})
        decode_keys.update(pair_decodes.decodes.values() if pair_decodes and fused else ())
    plan = BatchPlan(outcomes, specs, options, profile, results, writes, decode_keys, sample=sample)
    plan.decode_saved_seconds = sum(
        float(gif.attrs.get("decode_seconds", 0.0)) for gif in stored_gifs.values() if gif
    )
    return plan


def _scratch_store() -> ResultStore:
    """A result store in a fresh temporary folder, deleted with the store object."""
    import shutil
    import tempfile
    import weakref

    root = tempfile.mkdtemp(prefix="giflab-nocache-")
    store = ResultStore(root)
    weakref.finalize(store, shutil.rmtree, root, True)
    return store


# -- sampling (DESIGN decision 31): which aligned frames a sampled node measures --------------


def _resolve_sample(sample: SampleSpec | int | None) -> SampleSpec | None:
    if isinstance(sample, SampleSpec):
        return sample
    if sample is None:
        return SampleSpec.from_config()
    return SampleSpec.from_config(n=int(sample))


def _change_scores(layout: GifLayout) -> np.ndarray:
    """Per frame of a GIF: the bytes of its image data (what the encoder had to store)."""
    return np.array([f.lzw_end - f.lzw_offset for f in layout.frames], dtype=np.float64)


def _pairs_needing_pilot(
    to_build: Sequence[tuple[int, list[MetricSpec]]],
    outcomes: Sequence[PairOutcome],
    options: AlignOptions,
    sample: SampleSpec,
    pilot_store: ResultStore,
    refresh: bool,
) -> list[PairInput]:
    """The pairs whose adaptive nodes are missing and whose pilot nodes are too."""
    pilot = sample.pilot()
    need = []
    for index, missing_specs in to_build:
        o = outcomes[index]
        keys = [
            _metric_node_key(o.original_key or "", o.compressed_key or "", options, s, pilot)
            for s in missing_specs
        ]
        if refresh or any(pilot_store.get(k) is None for k in keys):
            need.append(o.input)
    return need


def _sampled_writes(
    outcome: PairOutcome,
    specs: Sequence[MetricSpec],
    original: StoredGif | PendingGif,
    compressed: StoredGif | PendingGif,
    facts: FrameAlignment,
    sample: SampleSpec,
    root: str,
    store_root: Path,
    pair_decodes: PairDecodes | None,
    pilot_store: ResultStore | None,
    layout: Callable[[], GifLayout],
    limits: TaskLimits | None = None,
) -> list[tuple[MetricSpec, Delayed]]:
    """The ``result-write`` tasks of one sampled pair: its design, then one task per metric
    over ``pair-metrics`` tasks that read and measure only the sampled frames."""
    from dask.base import tokenize

    from giflab_dask.sampling import adaptive_design, design_for, seed_for

    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    options = facts.options
    population = len(facts.mapping)
    base = sample.pilot() if sample.strategy == "adaptive" else sample
    scores = None
    if base.strategy == "keyframes" and base.n < population:
        scores = _change_scores(layout())
    shared = design_for(base, population, seed_for(o_key, c_key, base.label), scores)
    # Which frames each metric measures: the design's, less an adaptive pilot's known ones.
    plans: dict[str, tuple[SampleDesign, np.ndarray, dict[str, Any] | None]] = {}
    for spec in specs:
        design, known = shared, None
        if sample.strategy == "adaptive":
            assert pilot_store is not None
            data = pilot_store.get(_metric_node_key(o_key, c_key, options, spec, base), "metric")
            if data is None or "sample" not in data:
                outcome.failed[spec.name] = "adaptive sampling: its pilot sample is missing"
                continue
            pilot = SampleDesign.from_dict(data["sample"]["design"])
            values = np.stack(
                [
                    np.asarray(data["outputs"][o]["per_frame"], dtype=np.float64)
                    for o in spec.outputs
                ],
                axis=1,
            )
            seed = seed_for(o_key, c_key, sample.label, spec.name)
            design = adaptive_design(pilot, values, sample.n, sample.tolerance, seed)
            known = {
                "positions": pilot.positions.tolist(),
                "values": {o: data["outputs"][o]["per_frame"] for o in spec.outputs},
            }
        todo = np.setdiff1d(design.positions, (known or {}).get("positions", []))
        plans[spec.name] = (design, todo.astype(np.int64), known)
    # Metrics measuring the same frames share pair-metrics tasks (one group per design and
    # kind: temporal metrics also read the frame before each sampled one).
    groups: dict[tuple[bool, bytes], list[MetricSpec]] = {}
    for spec in specs:
        if spec.name in plans:
            groups.setdefault((spec.temporal, plans[spec.name][1].tobytes()), []).append(spec)
    sides, refs, decode_dsk = _pair_inputs(original, compressed, pair_decodes)
    roots = root_token(store_root, root)
    step = original.chunk_frames
    out = []
    for (temporal, _), group in groups.items():
        todo = plans[group[0].name][1]
        metrics = tuple(BoundMetric.of(s) for s in group)
        jobs = []
        for part in np.split(todo, np.flatnonzero(np.diff(todo // step)) + 1) if len(todo) else []:
            frames, keep = part, None
            if temporal:
                frames = np.union1d(part, part[part > 0] - 1)
                keep = np.searchsorted(frames, part)
            job = _ChunkJob(
                *sides, int(frames[0]), int(frames[-1]) + 1, False, facts.mapping[frames],
                options.background, facts.size, options.resize, metrics, frames, keep,
                limits or TaskLimits(),
            )  # fmt: skip
            jobs.append(job)
        where = [(j.frames, j.mapping) for j in jobs]
        token = tokenize(sides, options, facts.mode, facts.size, metrics, roots, where)
        dsk = dict(decode_dsk)
        for i, job in enumerate(jobs):
            dsk[(f"pair-metrics-{token}", i)] = (_pair_chunk, job, *refs)
        chunk_keys = [k for k in dsk if isinstance(k, tuple)]
        for spec in group:
            design, todo, known = plans[spec.name]
            record = {
                "spec": sample.to_dict(),
                "design": design.to_dict(),
                "computed": todo.tolist(),
                "known": known,
            }
            key = outcome.metric_keys[spec.name]
            task = (_write_sampled_node, root, key, spec, list(refs), chunk_keys, record)
            out.append((spec, _write_delayed(f"result-write-{key}-{roots}", task, dsk)))
    return out


def _write_sampled_node(
    root: str,
    key: str,
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``result-write`` task of a sampled node: merge, summarise, estimate, persist.

    The stored per-frame vectors hold one value per sampled position (``sample.design``
    names them); ``sample.mean_se``/``mean_df`` carry each output's standard error.
    """
    from giflab_dask.reduce import summarize_sample
    from giflab_dask.sampling import estimate_mean

    started = time.perf_counter()
    gathered = _gather_chunks(spec, decoded, chunks)
    if isinstance(gathered, dict):
        return gathered
    matrix, measured = gathered
    design = SampleDesign.from_dict(record["design"])
    computed = np.searchsorted(design.positions, np.asarray(record["computed"], dtype=np.int64))
    known = record.get("known") or {"positions": [], "values": {}}
    known_at = np.searchsorted(design.positions, np.asarray(known["positions"], dtype=np.int64))
    vectors: dict[str, np.ndarray] = {}
    for j, name in enumerate(spec.outputs):
        merged = np.full(len(design.positions), np.nan)
        if len(computed):
            merged[computed] = matrix[:, j]
        if len(known_at):
            merged[known_at] = np.asarray(known["values"][name], dtype=np.float64)
        vectors[name] = merged
    weights = design.weights
    stats = {
        name: summarize_sample(v, weights, design.positions, design.population)
        for name, v in vectors.items()
    }
    estimates = {name: estimate_mean(v, design) for name, v in vectors.items()}
    pair_summary = spec.resolve_pair_summary()
    extra = {}
    if pair_summary is not None:  # on the sampled frames, unweighted (decision 31)
        stacked = np.stack([vectors[name] for name in spec.outputs], axis=-1)
        extra = {k: float(v) for k, v in pair_summary(stacked).items()}
    info = {
        **record["spec"],
        "design": design.to_dict(),
        "mean_se": {name: e.se for name, e in estimates.items()},
        "mean_df": {name: e.df for name, e in estimates.items()},
    }
    data = {
        "metric": spec.name,
        "outputs": {
            name: {"per_frame": vectors[name].tolist(), "summary": stats[name].tolist()}
            for name in spec.outputs
        },
        "pair_summary": extra,
        "sample": info,
        "compute_seconds": measured + time.perf_counter() - started,
    }
    ResultStore(root).put(key, "metric", data)
    return {"ok": True, "summary": _node_summaries(data), "extra": extra, "sample": info}


def _sample_summaries(
    outcome: PairOutcome, summaries: dict[str, float], sample: SampleSpec
) -> dict[str, Any]:
    """Add the means' intervals and ``sampled_frames`` to a sampled pair's summaries; return
    what :attr:`PairResult.sample` holds."""
    from giflab_dask import config
    from giflab_dask.reduce import mean_intervals

    confidence = float(config.get("sampling.confidence"))
    errors: dict[str, tuple[float, int]] = {}
    positions: dict[str, list[int]] = {}
    population = int(summaries.get("original_frames", 0))
    for metric, info in outcome.sample.items():
        positions[metric] = list(info["design"]["positions"])
        population = int(info["design"]["population"])
        for output, se in info["mean_se"].items():
            errors[output] = (float(se), int(info["mean_df"][output]))
    summaries.update(mean_intervals(summaries, errors, confidence))
    measured = set().union(*positions.values()) if positions else set()
    summaries["sampled_frames"] = float(len(measured))
    return {
        **sample.to_dict(),
        "confidence": confidence,
        "population": population,
        "frames": len(measured),
        "positions": positions,
    }


def validate_batch(
    pairs: Sequence[PairInput],
    *,
    metrics: Iterable[str | MetricSpec] | str | None = None,
    profile: str | Mapping[str, Any] | None = None,
    align_options: AlignOptions | None = None,
    store: FrameStore | None = None,
    results: ResultStore | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    sample: SampleSpec | int | None = None,
    **compute_kwargs: Any,
) -> BatchResult:
    """Validate a batch in one graph and one compute; every row gets a result or an error.

    ``sample``: measure a subset of the frames (see :func:`plan_batch`; default: every frame).
    """
    plan = plan_batch(
        pairs,
        metrics=metrics,
        profile=profile,
        align_options=align_options,
        store=store,
        results=results,
        use_cache=use_cache,
        refresh=refresh,
        sample=sample,
    )
    return plan.compute(**compute_kwargs)


# -- one pair ---------------------------------------------------------------------------------


@dataclass
class LazyPairResult:
    """The uncomputed graph of one pair (a batch of one): ``compute()`` gives its PairResult."""

    plan: BatchPlan

    def dask_objects(self) -> list[Delayed]:
        return self.plan.dask_objects()

    def compute(self, **compute_kwargs: Any) -> PairResult:
        outcome = self.plan.compute(**compute_kwargs).outcomes[0]
        if outcome.failed:
            raise MeasurementError(outcome.error or failure_message(outcome.failed))
        if outcome.error:
            raise GiflabError(outcome.error)
        assert outcome.result is not None
        result = outcome.result
        result.per_frame = dict(result.per_frame.items())  # a pair's caller wants its vectors
        return result


def _as_path(gif: GifLike | StoredGif) -> str:
    from giflab_dask.framestore import StoredGif

    if isinstance(gif, StoredGif):
        raise GiflabError("validate_pair takes GIF paths (their content key finds the store)")
    return str(Path(gif))


def validate_pair_lazy(
    original: GifLike,
    compressed: GifLike,
    **kwargs: Any,
) -> LazyPairResult:
    """The graph of one pair before compute (keyword arguments as :func:`plan_batch`)."""
    from giflab_dask.keys import gif_key

    pair = PairInput(1, _as_path(original), _as_path(compressed))
    for path in (pair.original, pair.compressed):
        gif_key(path)  # eager: a missing or unreadable file is an error now, not a row
    plan = plan_batch([pair], **kwargs)
    if plan.outcomes[0].error:
        raise GiflabError(plan.outcomes[0].error)
    return LazyPairResult(plan)


def validate_pair(
    original: GifLike,
    compressed: GifLike,
    *,
    metrics: Iterable[str | MetricSpec] | str | None = None,
    profile: str | Mapping[str, Any] | None = None,
    align_options: AlignOptions | None = None,
    store: FrameStore | None = None,
    results: ResultStore | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    sample: SampleSpec | int | None = None,
    **compute_kwargs: Any,
) -> PairResult:
    """Validate one pair: summaries, per-frame vectors, the frame mapping and the verdict.

    Results persist in the result store: validating the same pair again is a lookup.
    ``sample``: measure a subset of the frames (see :func:`plan_batch`; default: every frame).
    """
    return validate_pair_lazy(
        original,
        compressed,
        metrics=metrics,
        profile=profile,
        align_options=align_options,
        store=store,
        results=results,
        use_cache=use_cache,
        refresh=refresh,
        sample=sample,
    ).compute(**compute_kwargs)
