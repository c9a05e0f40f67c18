"""Planning a batch: one graph per batch, persisted nodes as the result cache.

:func:`plan_batch` runs on the client, in named phases:

1. **keys** (:func:`_find_keys`): every input file is hashed to its content key (a file that
   cannot be read becomes an error row here, before any graph);
2. **lookups** (:func:`_look_up_nodes`): each pair's alignment node and metric nodes
   (:mod:`giflab_dask.resultstore.keys`) are looked up in the result store; a pair whose nodes all
   exist needs no task at all;
3. **derivations** (:func:`_derive_from_stored`): a missing metric that is a function of a
   stored node (PSNR of MSE) is written from it without reading a frame;
4. **decodes** (:func:`_find_frames`): which GIFs are in the frame store and which the graph
   must decode (their block structure is scanned now: a file that is not a GIF is an error
   row);
5. **graph** (:func:`_build_graph`): per pair, the frame alignment, the pair's memory and time
   limits, and its tasks (:mod:`giflab_dask.graph.build`): one ``gif-decode`` per distinct GIF
   not yet stored, one ``pair-metrics`` per time chunk of the original that reads, aligns and
   measures it, one ``result-write`` per missing metric node. An interrupted batch keeps every
   finished node, and the rerun computes only the rest. A pair's alignment node is stored by
   its first ``result-write`` (an ``alignment-write`` when no metric of it is left), after the
   pair's decodes, which count the frames its facts need.

:meth:`BatchPlan.compute` runs the graph in one ``dask.compute`` and shapes each pair's
outcome (:mod:`giflab_dask.outcomes`). A decode failure is carried in-band (its pair becomes an
error row, the others finish), and so is a metric that fails at run time (a kernel that raises,
memory, a node that cannot be written): nothing of it is stored, so the next run computes it
again, and its pair gets no verdict but an error naming the metric and the cause, while the
pair's other metrics are stored. Only a metric missing by nature of the input (every frame NaN:
too small, no gradient region) leaves a verdict over the others. Anything else that fails a
task is retried write by write (:func:`giflab_dask.cluster.execute`), so the failure is pinned
on its pair and metric.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from giflab_dask.align import AlignOptions, frame_alignment, pair_facts
from giflab_dask.budget import decode_bytes, max_pair_seconds, memory_budget, pair_limits
from giflab_dask.cluster import planning_client, scheduler_context
from giflab_dask.errors import GiflabError
from giflab_dask.graph.build import (
    PairDecodes,
    PairGraph,
    decode_task_key,
    derived_write,
    metric_groups,
)
from giflab_dask.graph.files import FileWork
from giflab_dask.graph.tasks import AlignmentJob, node_summaries
from giflab_dask.inputs import PairInput
from giflab_dask.metrics import BoundMetric, MetricSpec, get_metric
from giflab_dask.options import ValidateOptions
from giflab_dask.outcomes import BatchPlan, BatchResult, LazyPairResult, PairOutcome
from giflab_dask.planning import Planning
from giflab_dask.results import PairResult
from giflab_dask.resultstore import ResultStore, alignment_node_key, metric_node_key
from giflab_dask.sampled_plan import pairs_needing_pilot, sampled_writes
from giflab_dask.sampling import SampleSpec
from giflab_dask.windows import WHERE, run_windows, window_size

if TYPE_CHECKING:
    import numpy as np
    from dask.delayed import Delayed

    from giflab_dask.budget import TaskLimits
    from giflab_dask.framestore import FrameStore, StoredGif

# The plan, its options and what it produces live in their own modules (outcomes, options);
# they are importable from here too, where they were first defined.
__all__ = [
    "BatchPlan",
    "BatchResult",
    "LazyPairResult",
    "PairOutcome",
    "ValidateOptions",
    "plan_batch",
    "validate_batch",
    "validate_pair",
    "validate_pair_lazy",
]

GifLike = str | os.PathLike[str]


# -- planning: the phases, in order -----------------------------------------------------------


def _find_keys(st: Planning) -> None:
    """Phase 1, keys: each pair's content keys and the keys of the nodes it needs; a file that
    cannot be read is its pair's error row."""
    from giflab_dask.keys import gif_keys

    paths = (p for _, o in st.pairs() for p in (o.input.original, o.input.compressed))
    # all at once: one stat-index transaction, and the files it does not know hashed together
    st.keys.update(gif_keys(paths, hasher=st.files.hash))
    align, sample = st.options.align, st.options.sample
    for _, outcome in st.pairs():
        try:
            o_key = st.key_of(outcome.input.original)
            c_key = st.key_of(outcome.input.compressed)
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        outcome.original_key, outcome.compressed_key = o_key, c_key
        outcome.metric_keys = {
            s.name: metric_node_key(o_key, c_key, align, s, sample) for s in st.options.metrics
        }


def _look_up_nodes(st: Planning) -> None:
    """Phase 2, lookups: each pair's stored alignment and metric nodes (none with
    ``use_cache`` off or ``refresh``), counted as hits; what is left is to compute. The whole
    batch is one bulk lookup (:meth:`ResultStore.lookup`: the result index, then the nodes
    it lacks fetched together); metric nodes come back without their per-frame vectors."""
    specs = st.options.metrics
    found: dict[str, dict[str, Any]] = {}
    if st.options.looks_up:
        nodes: dict[str, str] = {}
        for _, outcome in st.pairs():
            nodes[_alignment_key(st, outcome)] = "alignment"
            nodes.update(dict.fromkeys(outcome.metric_keys.values(), "metric"))
        found, _ = st.results.lookup(nodes)
    for index, outcome in st.pairs():
        stored: dict[str, dict[str, Any]] = {}
        if st.options.looks_up:
            outcome.alignment = found.get(_alignment_key(st, outcome))
            outcome.stored_alignment = outcome.alignment is not None
            for spec in specs:
                data = found.get(outcome.metric_keys[spec.name])
                if data is not None:
                    stored[spec.name] = data
        for name, data in stored.items():
            outcome.hits += 1
            outcome.saved_seconds += float(data.get("compute_seconds", 0.0))
            outcome.summaries.update(node_summaries(data))
            outcome.extra.update(data.get("pair_summary", {}))
            if "sample" in data:
                outcome.sample[name] = data["sample"]
        st.stored[index] = stored
        st.missing[index] = [s for s in specs if s.name not in stored]


def _alignment_key(st: Planning, outcome: PairOutcome) -> str:
    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    return alignment_node_key(o_key, c_key, st.options.align)


def _derive_from_stored(st: Planning) -> None:
    """Phase 3, derivations: a missing metric that is a function of a stored node (PSNR of
    MSE) gets a write from that node's vector; no frame is read for it."""
    if not st.options.looks_up or st.options.sample is not None:
        return
    root = str(st.results.root)
    for index, outcome in st.pairs():
        missing = st.missing[index]
        if not missing:
            continue
        parents = _derivable(st, outcome, missing, st.stored[index])
        for spec in missing:
            if spec.name in parents:
                node = outcome.metric_keys[spec.name]
                st.derived[(index, spec.name)] = derived_write(
                    st.graph, root, node, spec, parents[spec.name]
                )
        st.missing[index] = [s for s in missing if s.name not in parents]


def _derivable(
    st: Planning,
    outcome: PairOutcome,
    specs: Sequence[MetricSpec],
    found: Mapping[str, Mapping[str, Any]],
) -> dict[str, np.ndarray]:
    """Which of ``specs`` can be derived from a stored node, with that node's per-frame
    vector: the parent as requested in this batch, else at its registered parameters."""
    import numpy as np

    keys = (outcome.original_key or "", outcome.compressed_key or "")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        parent = spec.derive_from
        if parent is None or spec.derive is None:
            continue
        if parent in found:  # found in summary form: its vector is in its document
            data: Mapping[str, Any] | None = st.results.get(outcome.metric_keys[parent], "metric")
        elif parent in outcome.metric_keys:
            continue  # in this batch and not found by its lookup: nothing to derive from
        else:
            parent_spec = next((s for s in st.options.metrics if s.name == parent), None)
            try:
                parent_spec = parent_spec or get_metric(parent)
            except GiflabError:
                continue
            node = metric_node_key(*keys, st.options.align, parent_spec)
            data = st.results.get(node, "metric")
        output = (data or {}).get("outputs", {}).get(parent)
        if output is not None:
            out[spec.name] = np.asarray(output["per_frame"], dtype=np.float64)
    return out


def _find_frames(st: Planning) -> None:
    """Phase 4, decodes: for each pair with work left, which of its GIFs are in the frame
    store and which the graph decodes (their blocks scanned now, all at once: an unreadable
    structure is an error row before any graph)."""
    # lookups and derivations read no frame
    reading = [(i, o) for i, o in st.pairs() if o.alignment is None or st.missing[i]]
    # the frame store is the decode cache, whatever use_cache says; one bulk open of every
    # entry the batch reads (on an object store, the manifests fetched concurrently)
    wanted = [key for _, o in reading for _, key in _sides(o) if key not in st.stored_gifs]
    opened = st.frames().open_many(wanted) if wanted else {}
    candidates = []
    for index, outcome in reading:
        missing = st.missing[index]
        try:
            for path, key in _sides(outcome):
                if key not in st.stored_gifs:
                    st.stored_gifs[key] = _opened(opened, key)
                if st.stored_gifs[key] is None:
                    st.pending.setdefault(key, (Path(path), st.frames().root))
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        candidates.append((index, missing))
    unscanned = [k for k in st.pending if k not in st.layouts]
    layouts = st.files.scan([str(st.pending[k][0]) for k in unscanned])
    st.layouts.update(zip(unscanned, layouts, strict=True))
    for index, missing in candidates:
        outcome = st.outcomes[index]
        try:
            for path, key in _sides(outcome):
                if key in st.pending:
                    st.layout_of(path, key)
        except GiflabError as exc:
            outcome.error = str(exc)
            continue
        st.to_build.append((index, missing))


def _opened(opened: Mapping[str, StoredGif | GiflabError | None], key: str) -> StoredGif | None:
    """An entry from ``open_many``, raising the error its ``open`` raised."""
    stored = opened[key]
    if isinstance(stored, GiflabError):
        raise stored
    return stored


def _sides(outcome: PairOutcome) -> tuple[tuple[str, str], tuple[str, str]]:
    """(path, content key) of a pair's original and compressed GIF."""
    return (
        (outcome.input.original, outcome.original_key or ""),
        (outcome.input.compressed, outcome.compressed_key or ""),
    )


def _pilot_first(st: Planning, pairs: Sequence[PairInput]) -> BatchPlan | None:
    """An adaptive sample's pilot pass, when some pair lacks it: the pilot's values decide
    the final frames, so its plan comes first and its ``then`` plans the final pass."""
    options, sample = st.options, st.options.sample
    if sample is None or sample.strategy != "adaptive" or st.pilot_store is not None:
        return None
    pilot_store = st.results
    need = pairs_needing_pilot(
        st.to_build, st.outcomes, options.align, sample, pilot_store, options.refresh
    )
    if not need:
        st.pilot_store = pilot_store
        return None
    shared = replace(options, store=st.frames(), results=pilot_store)
    client = st.files.client
    pilot = _plan(need, replace(shared, use_cache=True, sample=sample.pilot()), None, client)
    pilot.then = functools.partial(_plan, pairs, shared, pilot_store, client)
    return pilot


def _build_graph(st: Planning) -> BatchPlan:
    """Phase 5, graph: each pair's alignment, limits and tasks; the plan of the batch."""
    options = st.options
    budget, pair_seconds = memory_budget(), max_pair_seconds()
    groups = metric_groups(sum(st.chunks_of(i) for i, _ in st.to_build), len(options.metrics))
    run = uuid.uuid4().hex  # names this plan's pair clocks (a pair's tasks share one)
    bound = {s.name: BoundMetric.of(s) for s in options.metrics} if st.to_build else {}
    writes: dict[tuple[int, str], Delayed] = dict(st.derived)
    decode_keys: set[str] = set()  # the decode tasks in the graph (not of refused pairs)
    for index, missing in st.to_build:
        prepared = _prepare_pair(st, index, missing, (budget, pair_seconds), f"{run}-{index}")
        if prepared is None:
            continue
        graph, pair_decodes, alignment = prepared
        outcome = st.outcomes[index]
        if options.sample is not None:  # which frames to measure is decided here, per pair
            o_key = outcome.original_key or ""
            layout = functools.partial(st.layout_of, outcome.input.original, o_key)
            sample, pilot = options.sample, st.pilot_store
            sampled = sampled_writes(outcome, missing, graph, sample, pilot, layout)
            pair_writes = {spec.name: write for spec, write in sampled}
        else:
            # the alignment node is stored by the pair's first result-write: no task of its own
            pair_writes, measured = graph.fused_writes(
                outcome.metric_keys, missing, groups, bound, alignment
            )
            outcome.frame_measurements += measured
            alignment = None if pair_writes else alignment
        if alignment is not None:
            st.alignment_writes[index] = graph.alignment_write(alignment)
        writes.update({(index, name): write for name, write in pair_writes.items()})
        if pair_decodes is not None and (pair_writes or alignment is not None):
            decode_keys.update(pair_decodes.decodes.values())
    plan = BatchPlan(st.outcomes, replace(options, store=st.frame_store), writes, decode_keys)
    plan.alignment_writes = st.alignment_writes
    found = {k: gif for k, gif in st.stored_gifs.items() if gif}
    root = st.frames().root if found else ""
    plan.found_decodes = {
        decode_task_key(k, root): float(gif.attrs.get("decode_seconds", 0.0))
        for k, gif in found.items()
    }
    plan.decode_saved_seconds = sum(plan.found_decodes.values())
    return plan


def _prepare_pair(
    st: Planning,
    index: int,
    missing: Sequence[MetricSpec],
    limits: tuple[int | None, float | None],
    clock: str,
) -> tuple[PairGraph, PairDecodes | None, AlignmentJob | None] | None:
    """One pair's decode tasks, limits and frame alignment, and what its alignment node's
    write needs (None: nothing to write); None (its error recorded) when the pair is refused
    or cannot be aligned."""
    outcome = st.outcomes[index]
    try:
        pair_decodes, o_gif, c_gif, task_limits = _pair_inputs(st, outcome, missing, limits, clock)
        facts = frame_alignment(o_gif, c_gif, st.options.align)  # type: ignore[arg-type]
    except GiflabError as exc:
        outcome.error = str(exc)
        return None
    except Exception as exc:  # a bug must cost its pair, never the batch
        outcome.error = (
            f"aligning {outcome.input.compressed} with {outcome.input.original} failed: "
            f"{type(exc).__name__}: {exc}"
        )
        return None
    target = str(st.results.root)
    graph = PairGraph.of(
        st.graph, o_gif, c_gif, facts, target, st.frames().root, pair_decodes, task_limits
    )  # fmt: skip
    alignment = None
    if outcome.alignment is None:
        alignment = _alignment_job(st, outcome, graph, o_gif, c_gif)
    return graph, pair_decodes, alignment


def _pair_inputs(
    st: Planning,
    outcome: PairOutcome,
    missing: Sequence[MetricSpec],
    limits: tuple[int | None, float | None],
    clock: str,
) -> tuple[PairDecodes | None, Any, Any, TaskLimits]:
    """A pair's decode tasks, its two GIFs (stored or pending) and its tasks' limits; refused
    (:class:`~giflab_dask.errors.MemoryBudgetError`) before anything of it is decoded when a
    task cannot fit."""
    budget, pair_seconds = limits
    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    pair_pending = {k: st.pending[k] for k in (o_key, c_key) if k in st.pending}
    pair_decodes = None
    if pair_pending:
        memory = {
            k: (decode_bytes(st.layout_of(str(path), k)), budget)
            for k, (path, _) in pair_pending.items()
        }
        pair_decodes = PairDecodes.for_gifs(pair_pending, memory)
    o_gif = st.gif_for(outcome.input.original, o_key)
    c_gif = st.gif_for(outcome.input.compressed, c_key)
    what = f"{outcome.input.compressed} vs {outcome.input.original}"
    task_limits = pair_limits(what, missing, o_gif, c_gif, clock, budget, pair_seconds)
    if st.options.align.mode == "content":
        # Content alignment compares frames before the graph: decode those now.
        o_gif = st.frames().ensure(outcome.input.original)
        c_gif = st.frames().ensure(outcome.input.compressed)
    return pair_decodes, o_gif, c_gif, task_limits


def _alignment_job(
    st: Planning, outcome: PairOutcome, graph: PairGraph, o_gif: Any, c_gif: Any
) -> AlignmentJob | None:
    """Record a pair's alignment (mapping, sizes, pair facts) and give what a task needs to
    store its node (completing the facts that wait for the decodes); None when nothing is left
    to do (facts complete and the result store off)."""
    options, facts = st.options, graph.facts
    outcome.alignment = {
        "mapping": facts.mapping.tolist(),
        "mode": facts.mode,
        "size": list(facts.size),
        "original_size": list(facts.original_size),
        "compressed_size": list(facts.compressed_size),
        "notes": facts.notes,
        "facts": pair_facts(options.align, o_gif, c_gif),
    }
    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    node = alignment_node_key(o_key, c_key, options.align) if options.use_cache else None
    if node is None and "frame_count_change" in outcome.alignment["facts"]:
        return None
    seen = (getattr(o_gif, "distinct_frames", None), getattr(c_gif, "distinct_frames", None))
    return AlignmentJob(graph.root, node, outcome.alignment, seen)


def _plan(
    pairs: Sequence[PairInput],
    options: ValidateOptions,
    pilot_store: ResultStore | None,
    client: Any = None,
) -> BatchPlan:
    """:func:`plan_batch` with its options built; ``pilot_store`` holds an adaptive sample's
    pilot nodes once its pilot pass has run; ``client``: a ``distributed.Client`` whose workers
    hash and scan the files (None: here)."""
    started = time.perf_counter()  # the run's clock covers planning: a summary must not hide it
    options = replace(options, results=options.result_store())
    st = Planning(options, [PairOutcome(p, error=p.error) for p in pairs], pilot_store)
    st.frame_store = options.store
    st.files = FileWork(client)
    _find_keys(st)
    _look_up_nodes(st)
    _derive_from_stored(st)
    _find_frames(st)
    plan = _pilot_first(st, pairs) or _build_graph(st)
    plan.started, plan.planned = started, time.perf_counter()
    plan.planning_tasks = st.files.tasks
    return plan


# -- the public functions ---------------------------------------------------------------------


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
    options: ValidateOptions | None = None,
    client: Any = None,
) -> BatchPlan:
    """Look up existing nodes and build the graph of the missing ones (nothing is computed).

    ``sample`` (a :class:`~giflab_dask.sampling.SampleSpec`, or N for a uniform sample of N
    frames; default ``giflab.sampling.n``, null: every frame) measures a subset of the aligned
    frames and reports intervals for the means. An adaptive sample returns its pilot pass's
    plan; its ``compute()`` runs the pilot, then plans and runs the rest. ``options`` (a
    :class:`ValidateOptions`) replaces the other keywords. ``client``: a
    ``distributed.Client`` whose workers hash and scan the files planning does not know yet
    (default: the active client, if any; else they are read here).
    """
    options = ValidateOptions.given(
        options, metrics=metrics, profile=profile, align_options=align_options, store=store,
        results=results, use_cache=use_cache, refresh=refresh, sample=sample,
    )  # fmt: skip
    return _plan(pairs, options, None, client or planning_client())


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
    options: ValidateOptions | None = None,
    **compute_kwargs: Any,
) -> BatchResult:
    """Validate a batch in one graph and one compute; every row gets a result or an error.

    ``sample``: measure a subset of the frames (see :func:`plan_batch`; default: every frame).
    A batch of more than ``giflab.batch.window-pairs`` pairs is planned and computed in
    windows of that many (:mod:`giflab_dask.windows`), with the same result.
    """
    options = ValidateOptions.given(
        options, metrics=metrics, profile=profile, align_options=align_options, store=store,
        results=results, use_cache=use_cache, refresh=refresh, sample=sample,
    )  # fmt: skip
    client = planning_client(compute_kwargs.get("scheduler"), compute_kwargs.get("address"))
    size = window_size()
    if size is None or len(pairs) <= size:
        return _plan(pairs, options, None, client).compute(**compute_kwargs)
    where = {k: compute_kwargs.pop(k, None) for k in WHERE}
    session = functools.partial(
        scheduler_context, where["scheduler"], where["num_workers"], where["address"]
    )
    return run_windows(
        pairs,
        lambda window, c: _plan(window, options, None, c),
        session,
        size=size,
        client=client,
        **compute_kwargs,
    )


# -- one pair ---------------------------------------------------------------------------------


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
    options: ValidateOptions | None = None,
    **compute_kwargs: Any,
) -> PairResult:
    """Validate one pair: summaries, per-frame vectors, the frame mapping and the verdict.

    Results persist in the result store: validating the same pair again is a lookup.
    ``sample``: measure a subset of the frames (see :func:`plan_batch`; default: every frame).
    """
    # Through validate_pair_lazy's plan_batch: a missing file is reported before the options.
    lazy = validate_pair_lazy(
        original, compressed, metrics=metrics, profile=profile, align_options=align_options,
        store=store, results=results, use_cache=use_cache, refresh=refresh, sample=sample,
        options=options,
    )  # fmt: skip
    return lazy.compute(**compute_kwargs)
