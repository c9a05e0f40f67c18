"""The validation graph: one graph per batch, persisted nodes as the result cache.

For a batch of pairs (DESIGN decisions 7 and 8):

1. every input file is hashed to its content key and its block structure scanned (cheap; a file
   that is not a GIF becomes an error row here, before any graph);
2. for every pair the client looks up its nodes in the result store: the alignment node and one
   node per metric, keyed by ``tokenize(original key, compressed key, alignment options, metric
   spec, schema version)``; a pair whose nodes all exist needs no task at all;
3. for the missing nodes one graph is built: each distinct GIF that is not yet in the frame
   store gets one ``gif-decode-<key>`` task (however many pairs use it), frames are read in
   chunks (``gif-frames-<key>``), aligned (``align-frames``), measured (``<metric>-frame``),
   reduced (``<metric>-summary``) and written (``result-write``) node by node, so an
   interrupted batch keeps every finished node and the rerun computes only the rest;
4. one ``dask.compute`` runs it; the verdict of each pair is evaluated from its summaries.

A decode failure is carried in-band (its pair becomes an error row, the others finish); a kernel
that raises aborts the shared compute, after which the remaining work is retried pair by pair
and metric by metric so the failure is pinned on its metric, reported as missing with its reason.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.align import AlignedPair, AlignOptions, align, display_times
from giflab_dask.errors import GiflabError
from giflab_dask.inputs import PairInput
from giflab_dask.metrics import MetricSpec, per_frame, resolve_metrics
from giflab_dask.reduce import composite_quality, psnr_from_mse, summarize, summary_array
from giflab_dask.results import PairResult
from giflab_dask.resultstore import ResultStore, node_key
from giflab_dask.verdicts import evaluate, load_profile

if TYPE_CHECKING:
    import dask.array as da
    from dask.delayed import Delayed

    from giflab_dask.decode import GifLayout
    from giflab_dask.framestore import FrameStore, StoredGif

__all__ = [
    "BatchPlan",
    "BatchResult",
    "PairOutcome",
    "plan_batch",
    "validate_batch",
    "validate_pair",
    "validate_pair_lazy",
]

GifLike = str | os.PathLike[str]


# -- GIFs whose frames come from a decode task in the graph -----------------------------------


def _decode_task(path: str, key: str, root: str) -> dict[str, Any]:
    """The ``gif-decode`` task: decode into the frame store (or find it there); never raises."""
    from giflab_dask.framestore import FrameStore
    from giflab_dask.keys import GifSource

    try:
        stored = FrameStore(root).ensure(GifSource(Path(path), key))
    except GiflabError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{path}: {type(exc).__name__}: {exc}"}
    return {"ok": True, "entry": str(stored.path), "has_alpha": stored.has_alpha}


def _decode_barrier(*results: dict[str, Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``gif-decoded`` task of a pair: its GIFs' ``gif-decode`` results, by content key.

    The pair's frame reads wait for it so no GIF's frames are read (and held) while the other
    GIF of the pair is still decoding: without it the scheduler reads one GIF through before
    the other is decoded, and memory grows with the frame count. (One barrier for the whole
    batch was worse: hanging every read off one task let the scheduler run many pairs'
    alignments ahead of their metrics.)
    """
    return dict(zip(keys, results, strict=True))


def _read_chunk(
    decoded: dict[str, dict[str, Any]],
    key: str,
    array: str,
    start: int,
    stop: int,
    shape: tuple[int, ...],
    fill: int,
) -> np.ndarray:
    """Frames ``[start, stop)`` of a decoded entry; a failed decode reads as ``fill``."""
    entry = decoded[key]
    if not entry["ok"] or (array == "alpha" and not entry["has_alpha"]):
        return np.full(shape, fill, dtype=np.uint8)
    from giflab_dask.framestore import open_entry_array

    return np.asarray(open_entry_array(entry["entry"], array)[start:stop])


@dataclass(frozen=True, eq=False)
class DecodeBarrier:
    """The batch's ``gif-decode`` tasks and the ``gif-decoded`` task that waits for all."""

    key: str
    dsk: Mapping[Any, Any]

    @classmethod
    def for_gifs(cls, pending: Mapping[str, tuple[Path, Path]]) -> DecodeBarrier:
        """``pending`` maps content key -> (GIF path, frame store root)."""
        from dask.base import tokenize

        keys = sorted(pending)
        barrier = f"gif-decoded-{tokenize(keys)}"
        dsk: dict[Any, Any] = {
            f"gif-decode-{k}": (_decode_task, str(pending[k][0]), k, str(pending[k][1]))
            for k in keys
        }
        dsk[barrier] = (
            apply_kw, _decode_barrier, [f"gif-decode-{k}" for k in keys], {"keys": keys}
        )  # fmt: skip
        return cls(barrier, dsk)


def apply_kw(func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return func(*args, **kwargs)


@dataclass(frozen=True)
class PendingGif:
    """A GIF not yet in the frame store: same interface as StoredGif, frames from the graph."""

    key: str
    path: Path
    layout: GifLayout
    chunk_frames: int
    store_root: Path
    barrier: DecodeBarrier

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
        # or no global colour table to paint the background under a partial first frame.
        layout = self.layout
        first = layout.frames[0]
        partial = (first.left, first.top, first.width, first.height) != (
            0,
            0,
            self.width,
            self.height,
        )
        return (
            layout.declares_transparency
            or any(f.disposal == 2 for f in layout.frames)
            or (partial and layout.global_palette is None)
        )

    @property
    def decode_key(self) -> str:
        return f"gif-decode-{self.key}"

    def _array(self, array: str, channels: tuple[int, ...], fill: int, tag: str = "") -> da.Array:
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph

        name = f"gif-{array}-{self.key}-{tag}" if tag else f"gif-{array}-{self.key}"
        n, h, w, c = self.n_frames, self.height, self.width, self.chunk_frames
        bounds = [(s, min(s + c, n)) for s in range(0, n, c)]
        dsk: dict[Any, Any] = dict(self.barrier.dsk)
        zeros = (0,) * len(channels)
        for i, (start, stop) in enumerate(bounds):
            shape = (stop - start, h, w, *channels)
            dsk[(name, i, 0, 0, *zeros)] = (
                _read_chunk, self.barrier.key, self.key, array, start, stop, shape, fill
            )  # fmt: skip
        chunks = (tuple(b - a for a, b in bounds), (h,), (w,), *((ch,) for ch in channels))
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        meta = np.empty((0,) * (3 + len(channels)), dtype=np.uint8)
        return da.Array(graph, name, chunks, dtype=np.uint8, meta=meta)

    def frames(self, tag: str = "") -> da.Array:
        return self._array("frames", (3,), 0, tag)

    def alpha(self, tag: str = "") -> da.Array | None:
        return self._array("alpha", (), 255, tag) if self.may_have_alpha else None


# -- nodes ------------------------------------------------------------------------------------


def _metric_node_key(o_key: str, c_key: str, options: AlignOptions, spec: MetricSpec) -> str:
    return node_key("metric", o_key, c_key, options, spec)


def _alignment_node_key(o_key: str, c_key: str, options: AlignOptions) -> str:
    return node_key("alignment", o_key, c_key, options)


def _concat(chunks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in chunks])


def _write_metric_node(
    root: str,
    key: str,
    spec: MetricSpec,
    decoded: dict[str, dict[str, Any]] | None,
    pending: Sequence[str],
    vector_chunks: Sequence[Sequence[np.ndarray]],
    stats: Sequence[np.ndarray],
) -> dict[str, Any]:
    """The ``result-write`` task: persist one metric node of one pair (unless a decode failed).

    ``decoded`` is the ``gif-decoded`` map (None when both GIFs were already stored) and
    ``pending`` the content keys of this pair's GIFs that were decoded in this graph;
    ``vector_chunks`` and ``stats`` follow ``spec.outputs``.
    """
    failed = [decoded[k]["error"] for k in pending if decoded and not decoded[k]["ok"]]
    if failed:
        return {"ok": False, "error": "; ".join(failed)}
    vectors = {
        name: _concat(chunks) for name, chunks in zip(spec.outputs, vector_chunks, strict=True)
    }
    pair_summary = spec.resolve_pair_summary()
    extra = {}
    if pair_summary is not None:
        matrix = np.stack([vectors[name] for name in spec.outputs], axis=-1)
        extra = {k: float(v) for k, v in pair_summary(matrix).items()}
    data = {
        "metric": spec.name,
        "outputs": {
            name: {
                "per_frame": vectors[name].tolist(),
                "summary": np.asarray(summary, dtype=np.float64).tolist(),
            }
            for name, summary in zip(spec.outputs, stats, strict=True)
        },
        "pair_summary": extra,
    }
    ResultStore(root).put(key, "metric", data)
    return {"ok": True, "summary": _node_summaries(data), "extra": extra}


def _node_summaries(data: Mapping[str, Any]) -> dict[str, list[float]]:
    return {name: output["summary"] for name, output in data["outputs"].items()}


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
    missing: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    computed: int = 0
    result: PairResult | None = None


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

    def dask_objects(self) -> list[Delayed]:
        return list(self.writes.values())

    @property
    def n_decode_tasks(self) -> int:
        return len(self.decode_keys)

    @property
    def n_metric_tasks(self) -> int:
        return len(self.writes)

    def compute(self, *, progress: bool = False, **compute_kwargs: Any) -> BatchResult:
        """Run the graph and assemble one outcome per pair.

        ``scheduler`` (threads, processes, sync, local-cluster, an address, a Client),
        ``address`` and ``num_workers`` choose where it runs (:mod:`giflab_dask.cluster`;
        default: an active Client, else ``giflab.scheduler``); ``progress`` shows a progress
        bar on stderr; other keyword arguments go to ``dask.compute``. The run's
        :class:`~giflab_dask.cluster.RunReport` (stage times) is ``result.report``.
        """
        from giflab_dask.cluster import execute

        items = list(self.writes.items())
        # Finished nodes are stored as they finish; a write that failed is pinned on its own
        # pair and metric, and the others keep their results (DESIGN decision 19).
        values, report = execute([w for _, w in items], progress=progress, **compute_kwargs)
        done: dict[tuple[int, str], dict[str, Any]] = {}
        for (ident, _), value in zip(items, values, strict=True):
            if isinstance(value, BaseException):
                value = {"ok": False, "metric_error": f"{type(value).__name__}: {value}"}
            done[ident] = value
        for (index, metric), value in done.items():
            outcome = self.outcomes[index]
            if value.get("ok"):
                outcome.summaries.update(value["summary"])
                outcome.extra.update(value["extra"])
                outcome.computed += 1
            elif "metric_error" in value:
                outcome.missing[metric] = value["metric_error"]
            elif outcome.error is None:
                outcome.error = value["error"]
        for outcome in self.outcomes:
            if outcome.error is None and outcome.alignment is not None:
                outcome.result = _pair_result(outcome, self.specs, self.profile, self.results)
        result = BatchResult(self.outcomes, self, time.perf_counter() - self.started)
        result.report = report  # type: ignore[attr-defined]
        return result


def _pair_result(
    outcome: PairOutcome,
    specs: list[MetricSpec],
    profile: str | Mapping[str, Any] | None,
    results: ResultStore,
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
                outcome.missing.setdefault(spec.name, "no frame could be measured (all NaN)")
    if "mse_mean" in summaries:
        summaries["psnr_of_mean_mse"] = psnr_from_mse(summaries["mse_mean"])
    summaries["composite_quality"], _ = composite_quality(summaries)
    return PairResult(
        original=outcome.input.original,
        compressed=outcome.input.compressed,
        original_key=outcome.original_key or "",
        compressed_key=outcome.compressed_key or "",
        summaries=summaries,
        per_frame=_LazyVectors(results, outcome.metric_keys),
        mapping=np.asarray(outcome.alignment["mapping"], dtype=np.int64),  # type: ignore[index]
        alignment={k: v for k, v in outcome.alignment.items() if k not in ("mapping", "facts")},  # type: ignore[union-attr]
        verdict=evaluate(summaries, profile),
        missing=dict(outcome.missing),
    )


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
            data = self._results.get(key)
            if data is None:
                continue
            for name, output in data["outputs"].items():
                super().__setitem__(name, np.asarray(output["per_frame"], dtype=np.float64))

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
    """Pair-level values the verdict checks besides metric summaries."""
    o_total = display_times(original.durations_ms, options).sum()
    c_total = display_times(compressed.durations_ms, options).sum()
    return {
        "timing_drift": float(abs(c_total - o_total) / o_total) if o_total else float("nan"),
        "frame_count_change": float(max(0, original.n_frames - compressed.n_frames))
        / original.n_frames,
        "original_frames": float(original.n_frames),
        "compressed_frames": float(compressed.n_frames),
    }


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
) -> BatchPlan:
    """Look up existing nodes and build the graph of the missing ones (nothing is computed)."""

    from giflab_dask.framestore import FrameStore, chunk_frames_for
    from giflab_dask.keys import gif_key

    load_profile(profile)  # eager: a bad profile fails before any work
    specs = resolve_metrics(metrics)
    options = align_options or AlignOptions.from_config()
    store = store or FrameStore()
    results = results or ResultStore()
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
        outcome.metric_keys = {s.name: _metric_node_key(o_key, c_key, options, s) for s in specs}
        stored_nodes: dict[str, dict[str, Any]] = {}
        if use_cache and not refresh:
            outcome.alignment = results.get(_alignment_node_key(o_key, c_key, options))
            for spec in specs:
                data = results.get(outcome.metric_keys[spec.name])
                if data is not None:
                    stored_nodes[spec.name] = data
        missing_specs = [s for s in specs if s.name not in stored_nodes]
        for data in stored_nodes.values():
            outcome.hits += 1
            outcome.summaries.update(_node_summaries(data))
            outcome.extra.update(data.get("pair_summary", {}))
        if outcome.alignment is not None and not missing_specs:
            continue  # a pure lookup: no frame is read, no task is built
        try:
            for path, key in ((outcome.input.original, o_key), (outcome.input.compressed, c_key)):
                if key not in stored_gifs:
                    # the frame store is the decode cache, whatever use_cache says
                    stored_gifs[key] = store.open(key)
                if stored_gifs[key] is None:
                    layout_of(path, key)  # unreadable structure: an error row now
                    pending.setdefault(key, (Path(path), store.root))
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        to_build.append((index, missing_specs))

    # Pass 2: the graph. A pair's frame reads wait for both of its decodes (_decode_barrier);
    # each pair reads its own copy of a shared GIF (tag), so the pairs' subgraphs stay apart.
    writes: dict[tuple[int, str], Delayed] = {}
    decode_keys = {f"gif-decode-{k}" for k in pending}

    def gif_for(path: str, key: str, barrier: DecodeBarrier | None) -> StoredGif | PendingGif:
        stored = stored_gifs.get(key)
        if stored is not None:
            return stored
        layout = layout_of(path, key)
        chunk = min(chunk_frames_for(layout.height, layout.width), layout.n_frames)
        assert barrier is not None
        return PendingGif(key, Path(path), layout, chunk, store.root, barrier)

    for index, missing_specs in to_build:
        outcome = outcomes[index]
        o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
        pair_pending = {k: pending[k] for k in (o_key, c_key) if k in pending}
        barrier = DecodeBarrier.for_gifs(pair_pending) if pair_pending else None
        try:
            o_gif = gif_for(outcome.input.original, o_key, barrier)
            c_gif = gif_for(outcome.input.compressed, c_key, barrier)
            if options.mode == "content":
                # Content alignment compares frames before the graph: decode those now.
                o_gif, c_gif = (
                    store.ensure(outcome.input.original),
                    store.ensure(outcome.input.compressed),
                )
            # Each pair reads its own copy of a shared original (tag): shared read tasks made
            # the scheduler hold a chunk in memory until every pair using it had its turn.
            pair = align(o_gif, c_gif, options, tag=f"p{index}")  # type: ignore[arg-type]
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        if outcome.alignment is None:
            outcome.alignment = {
                "mapping": pair.mapping.tolist(),
                "mode": pair.mode,
                "size": list(pair.size),
                "original_size": list(pair.original_size),
                "compressed_size": list(pair.compressed_size),
                "notes": pair.notes,
                "facts": pair_facts(options, o_gif, c_gif),
            }
            if use_cache:
                results.put(
                    _alignment_node_key(o_key, c_key, options), "alignment", outcome.alignment
                )
        target = str(results.root) if use_cache else _scratch_root()
        for spec in missing_specs:
            writes[(index, spec.name)] = _write_task(
                target, outcome.metric_keys[spec.name], spec, pair, barrier, list(pair_pending)
            )
    return BatchPlan(outcomes, specs, options, profile, results, writes, decode_keys)


def _write_task(
    root: str,
    key: str,
    spec: MetricSpec,
    pair: AlignedPair,
    barrier: DecodeBarrier | None,
    pending: list[str],
) -> Delayed:
    """The ``result-write-<key>`` task with its per-frame and summary layers beneath it.

    Built as one raw task referencing the arrays' keys (not ``dask.delayed`` over collections,
    which would finalize and cull every array graph again for every task).
    """
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    vectors = per_frame(spec, pair)
    summaries = [
        summary_array(v, name=f"{spec.name}-summary-{tokenize(name, v.name)}")
        for name, v in vectors.items()
    ]
    write_key = f"result-write-{key}"
    task = (
        _write_metric_node,
        root,
        key,
        spec,
        barrier.key if barrier is not None and pending else None,
        list(pending),
        [list(v.__dask_keys__()) for v in vectors.values()],
        [s.__dask_keys__()[0] for s in summaries],
    )
    graph = HighLevelGraph.from_collections(
        write_key, {write_key: task}, dependencies=[*vectors.values(), *summaries]
    )
    return Delayed(write_key, graph)


def _scratch_root() -> str:
    """With the cache off, nodes still pass through a store: a per-run scratch folder."""
    import tempfile

    return tempfile.mkdtemp(prefix="giflab-nocache-")


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
    **compute_kwargs: Any,
) -> BatchResult:
    """Validate a batch in one graph and one compute; every row gets a result or an error."""
    plan = plan_batch(
        pairs,
        metrics=metrics,
        profile=profile,
        align_options=align_options,
        store=store,
        results=results,
        use_cache=use_cache,
        refresh=refresh,
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
    **compute_kwargs: Any,
) -> PairResult:
    """Validate one pair: summaries, per-frame vectors, the frame mapping and the verdict.

    Results persist in the result store: validating the same pair again is a lookup.
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
    ).compute(**compute_kwargs)
