"""The functions a batch's tasks run on the workers, in the order a pair flows through them.

``gif-decode`` (:func:`decode_task`) fills the frame store; ``alignment-write``
(:func:`write_alignment`) completes a pair's alignment node with the facts its decodes count
and stores it; ``pair-metrics`` (:func:`pair_chunk`) reads, aligns and measures one time chunk
of a pair; ``result-write`` (:func:`write_from_chunks`, :func:`write_derived`,
:func:`write_sampled_node`) summarises one metric of a pair and stores its node. Each takes
and returns plain values (paths, arrays, dicts), so a worker needs neither the planner nor the
client's objects.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from giflab_dask.budget import PairClock, TaskLimits, measure_in_groups, reserve
from giflab_dask.errors import (
    CacheWriteError,
    GiflabError,
    MemoryBudgetError,
    PairTimeLimitError,
)
from giflab_dask.metrics import BoundMetric, MetricSpec
from giflab_dask.resultstore import open_result_store
from giflab_dask.resultstore.documents import summary_of
from giflab_dask.sampling import SampleDesign

__all__ = [
    "ERROR",
    "SECONDS",
    "AlignmentJob",
    "ChunkJob",
    "Side",
    "decode_task",
    "gather_chunks",
    "measure_chunk",
    "node_summaries",
    "pair_chunk",
    "persist_node",
    "read_frames",
    "write_alignment",
    "write_derived",
    "write_from_chunks",
    "write_sampled_node",
    "write_with_alignment",
]

#: Key of the per-metric task seconds in a ``pair-metrics`` task's result.
SECONDS = "__seconds__"
#: Key of a ``pair-metrics`` task's result when the pair is refused (memory, time).
ERROR = "__error__"


# -- gif-decode -------------------------------------------------------------------------------


def decode_task(
    path: str, key: str, root: str, memory: tuple[int, int | None] = (0, None)
) -> dict[str, Any]:
    """The ``gif-decode`` task: decode into the frame store (or find it there); never raises,
    so a GIF that cannot be decoded becomes its pairs' error rows, not the batch's failure.

    ``memory``: the decode's estimated bytes and the memory budget it is reserved from.
    """
    from giflab_dask.framestore import open_frame_store
    from giflab_dask.keys import GifSource

    try:
        with reserve(*memory):
            stored = open_frame_store(root).ensure(GifSource(Path(path), key))
    except GiflabError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{path}: {type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "entry": str(stored.path),
        "has_alpha": stored.has_alpha,
        "distinct_frames": stored.distinct_frames,
    }


# -- alignment-write --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignmentJob:
    """A pair's alignment node as planned: its mapping, sizes and the pair facts known before
    the decodes (``document``), the distinct frames of each side already stored (``seen``,
    None for a side this graph decodes), and where it is stored (``node`` None: not stored)."""

    root: str
    node: str | None
    document: Mapping[str, Any]
    seen: tuple[int | None, int | None]


def write_alignment(
    job: AlignmentJob, o_decoded: dict[str, Any] | None, c_decoded: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``alignment-write`` task (or the first ``result-write`` of the pair, which also does
    this): the pair's alignment node, its frame-count facts completed from the decodes, stored.
    Returns the complete facts, or why there are none: a decode that failed (the pair's error)
    or a node that could not be stored (a run-time failure, retried by the next run)."""
    from giflab_dask.align import frame_count_facts

    decoded = (o_decoded, c_decoded)
    failed = [d["error"] for d in decoded if d is not None and not d["ok"]]
    if failed:
        return {"ok": False, "error": "; ".join(failed)}
    o_seen, c_seen = (
        d["distinct_frames"] if d is not None else n for d, n in zip(decoded, job.seen, strict=True)
    )
    facts = dict(job.document["facts"])
    if o_seen is not None and c_seen is not None:
        facts.update(frame_count_facts(o_seen, c_seen))
    if job.node is not None:
        try:
            open_result_store(job.root).put(job.node, "alignment", {**job.document, "facts": facts})
        except CacheWriteError as exc:
            return {"ok": False, "metric_error": str(exc)}
    return {"ok": True, "facts": facts}


# -- pair-metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """Where a task finds one GIF's frames: a stored entry, or what its decode task returns."""

    key: str
    entry: str | None  # the stored entry's folder; None while this graph decodes the GIF
    has_alpha: bool = False

    def locate(self, decoded: dict[str, Any] | None) -> tuple[str, bool] | None:
        """(entry folder, has alpha), or None when its decode failed."""
        if self.entry is not None:
            return self.entry, self.has_alpha
        if decoded is None or not decoded["ok"]:
            return None
        # The decode knows whether any frame was transparent: opaque GIFs read no alpha.
        return decoded["entry"], bool(decoded["has_alpha"])


@dataclass(frozen=True, eq=False)
class ChunkJob:
    """What one ``pair-metrics`` task measures: original frames ``[start, stop)`` of a pair."""

    original: Side
    compressed: Side
    start: int
    stop: int
    previous: bool  # frame start - 1 is read too (temporal metrics compare with it)
    mapping: np.ndarray  # the compressed frame of each original frame read
    background: tuple[int, int, int]
    size: tuple[int, int]
    method: str
    metrics: tuple[BoundMetric, ...]
    # A sampled pair's job: these original frames (sorted) instead of [start, stop), and the
    # rows of the results to keep (temporal metrics also read the frame before each sampled one).
    frames: np.ndarray | None = None
    keep: np.ndarray | None = None
    limits: TaskLimits = field(default_factory=TaskLimits)  # memory budget and time limit


def read_frames(
    where: tuple[str, bool], index: slice | np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB frames (and alpha, if the entry has it) at ``index`` of a stored entry.

    Each chunk holding a wanted frame is read once: a compressed GIF with more frames than its
    original is sampled, never read whole; frames shown more than once are read once.
    """
    from giflab_dask.framestore import read_frames as read_array

    entry, has_alpha = where
    rgb = read_array(entry, "frames", index)
    return rgb, (read_array(entry, "alpha", index) if has_alpha else None)


def pair_chunk(
    job: ChunkJob, o_decoded: dict[str, Any] | None, c_decoded: dict[str, Any] | None
) -> dict[str, np.ndarray | str] | None:
    """The ``pair-metrics`` task: read both GIFs' frames of one chunk, composite and resize
    them, and run every requested kernel; returns each metric's ``(t, k)`` values (or its
    error text), or None when a decode of the pair failed (its ``result-write`` says why).

    Only these small vectors leave the task: frames never travel between workers. A pair over
    its memory budget or time limit gives ``{ERROR: reason}``: an error row.
    """
    o_where, c_where = job.original.locate(o_decoded), job.compressed.locate(c_decoded)
    if o_where is None or c_where is None:
        return None
    clock = PairClock(job.limits)
    try:
        clock.check()  # another task of the pair may have used its time up
        with reserve(job.limits.memory, job.limits.budget):
            clock.last = time.perf_counter()  # waiting for memory is not the pair's time
            return measure_chunk(job, o_where, c_where, clock)
    except (MemoryBudgetError, PairTimeLimitError) as exc:  # the pair is an error row
        return {ERROR: str(exc)}


def measure_chunk(
    job: ChunkJob, o_where: tuple[str, bool], c_where: tuple[str, bool], clock: PairClock
) -> dict[str, np.ndarray | str]:
    """:func:`pair_chunk` once both GIFs are stored and the task's memory is reserved."""
    from giflab_dask.align import prepare_block
    from giflab_dask.diagnostics import activity, count_frames

    lo = job.start - 1 if job.previous else job.start
    index = job.frames if job.frames is not None else slice(lo, job.stop)
    started = time.perf_counter()
    try:
        with activity("read"):
            o_rgb, o_alpha = read_frames(o_where, index)
            c_rgb, c_alpha = read_frames(c_where, job.mapping)
        with activity("align"):
            prep = functools.partial(
                prepare_block, background=job.background, size=job.size, method=job.method
            )
            original, compressed = prep(o_rgb, o_alpha), prep(c_rgb, c_alpha)
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
    out[SECONDS] = seconds  # type: ignore[assignment]
    return out


# -- result-write -----------------------------------------------------------------------------


def node_summaries(data: Mapping[str, Any]) -> dict[str, list[float]]:
    """Output name -> its summary statistics, from a metric node's document."""
    return {name: output["summary"] for name, output in data["outputs"].items()}


def write_from_chunks(
    root: str,
    key: str,
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
) -> dict[str, Any]:
    """The ``result-write`` task: one metric node of one pair from its ``pair-metrics``
    chunks (summaries included), persisted unless a decode failed or the kernel raised."""
    started = time.perf_counter()
    gathered = gather_chunks(spec, decoded, chunks)
    if isinstance(gathered, dict):
        return gathered
    matrix, measured = gathered
    return persist_node(root, key, spec, matrix, measured, started)


def write_with_alignment(
    alignment: AlignmentJob,
    root: str,
    key: str,
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
) -> dict[str, Any]:
    """A pair's first ``result-write``: its alignment node first (:func:`write_alignment`),
    then the metric's node (:func:`write_from_chunks`); the alignment's result rides along
    under ``"alignment"``."""
    aligned = write_alignment(alignment, *decoded)
    return {**write_from_chunks(root, key, spec, decoded, chunks), "alignment": aligned}


def gather_chunks(
    spec: MetricSpec,
    decoded: Sequence[dict[str, Any] | None],
    chunks: Sequence[dict[str, np.ndarray | str] | None],
) -> tuple[np.ndarray, float] | dict[str, Any]:
    """One metric's ``(t, k)`` values from its ``pair-metrics`` chunks, in order, with their
    measured task seconds; or the write's result when a decode failed or the kernel raised."""
    failed = [d["error"] for d in decoded if d is not None and not d["ok"]]
    failed += [c[ERROR] for c in chunks if c is not None and ERROR in c][:1]  # type: ignore[misc]
    if failed:
        return {"ok": False, "error": "; ".join(failed)}
    values = [chunk[spec.name] for chunk in chunks if chunk is not None]
    errors = [v for v in values if isinstance(v, str)]
    if errors:
        return {"ok": False, "metric_error": errors[0]}
    measured = sum(
        cast("dict[str, float]", chunk.get(SECONDS, {})).get(spec.name, 0.0)
        for chunk in chunks
        if chunk is not None
    )
    k = len(spec.outputs)
    if not values:
        return np.empty((0, k)), measured
    matrix = np.concatenate([np.asarray(v, dtype=np.float64).reshape(len(v), k) for v in values])
    return matrix, measured


def persist_node(
    root: str, key: str, spec: MetricSpec, matrix: np.ndarray, measured: float, started: float
) -> dict[str, Any]:
    """Summarise a metric's ``(T, k)`` per-frame matrix and store the node."""
    from giflab_dask.diagnostics import activity
    from giflab_dask.reduce import summarize_values

    with activity("summary"):
        vectors = {name: matrix[:, j] for j, name in enumerate(spec.outputs)}
        stats = [summarize_values(vectors[name]) for name in spec.outputs]
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
    open_result_store(root).put(key, "metric", data)
    node = summary_of("metric", data)  # for the result index, written once the batch is done
    return {"ok": True, "summary": node_summaries(data), "extra": extra, "node": node}


def write_derived(root: str, key: str, spec: MetricSpec, parent: np.ndarray) -> dict[str, Any]:
    """The ``result-write`` task of a metric derived from a stored node's per-frame vector
    (PSNR from MSE, ``MetricSpec.derive``): no frame is read."""
    started = time.perf_counter()
    derive = spec.resolve_derive()
    assert derive is not None
    matrix = np.asarray(derive(parent, **spec.params), dtype=np.float64).reshape(len(parent), -1)
    return persist_node(root, key, spec, matrix, 0.0, started)


def write_sampled_node(
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
    started = time.perf_counter()
    gathered = gather_chunks(spec, decoded, chunks)
    if isinstance(gathered, dict):
        return gathered
    matrix, measured = gathered
    design = SampleDesign.from_dict(record["design"])
    vectors = _sampled_vectors(spec, design, matrix, record)
    data, info = _sampled_document(spec, design, vectors, record)
    data["compute_seconds"] = measured + time.perf_counter() - started
    open_result_store(root).put(key, "metric", data)
    summary, extra = node_summaries(data), data["pair_summary"]
    return {
        "ok": True,
        "summary": summary,
        "extra": extra,
        "sample": info,
        "node": summary_of("metric", data),
    }


def _sampled_vectors(
    spec: MetricSpec, design: SampleDesign, matrix: np.ndarray, record: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Each output's value at every sampled position: this run's frames merged with those an
    adaptive pilot already measured."""
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
    return vectors


def _sampled_document(
    spec: MetricSpec,
    design: SampleDesign,
    vectors: Mapping[str, np.ndarray],
    record: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sampled node's document (weighted summaries, the means' standard errors) and its
    ``sample`` record."""
    from giflab_dask.reduce import summarize_sample
    from giflab_dask.sampling import estimate_mean

    stats = {
        name: summarize_sample(v, design.weights, design.positions, design.population)
        for name, v in vectors.items()
    }
    estimates = {name: estimate_mean(v, design) for name, v in vectors.items()}
    pair_summary = spec.resolve_pair_summary()
    extra = {}
    if pair_summary is not None:  # on the sampled frames, unweighted
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
    }
    return data, info
