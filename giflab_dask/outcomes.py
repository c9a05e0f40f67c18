"""A planned batch, its run, and one outcome per pair shaped into its
:class:`~giflab_dask.results.PairResult`.

The planner (:mod:`giflab_dask.pipeline`) fills a :class:`PairOutcome` with what the result
store already holds and gives a :class:`BatchPlan`; :meth:`BatchPlan.compute` runs the graph,
folds the ``result-write`` tasks' values into the outcomes (:func:`record_writes`) and turns
each into summaries, lazily read per-frame vectors and a verdict (:func:`pair_result`).
:class:`BatchResult` is the batch's outcomes with the run's statistics.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.errors import GiflabError, MeasurementError
from giflab_dask.inputs import PairInput
from giflab_dask.reduce import composite_quality, psnr_from_mse, summarize
from giflab_dask.results import PairResult
from giflab_dask.resultstore import ResultStore
from giflab_dask.sampling import expand
from giflab_dask.verdicts import evaluate

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.align import AlignOptions
    from giflab_dask.diagnostics import RunReport
    from giflab_dask.metrics import MetricSpec
    from giflab_dask.options import ValidateOptions
    from giflab_dask.progress import BatchProgress
    from giflab_dask.sampling import SampleSpec

__all__ = [
    "BatchPlan",
    "BatchResult",
    "LazyPairResult",
    "PairOutcome",
    "failure_message",
    "pair_result",
    "record_alignments",
    "record_writes",
    "stored_nodes",
]


@dataclass(slots=True)
class PairOutcome:
    """One pair of a batch: its input row and, once computed, its result or error.

    ``alignment``, ``summaries`` and ``extra`` are the planner's working state: once the pair
    has its ``result`` (which holds all of it) they are dropped, since a huge batch keeps
    every outcome in memory.
    """

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
    stored_alignment: bool = False  # its alignment node was found at planning


def failure_message(failed: Mapping[str, str]) -> str:
    """The error of a pair whose metrics failed at run time: each metric and its cause."""
    causes = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
    return f"metric failed, no verdict (the next run computes it again): {causes}"


def _exception_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def record_writes(outcomes: list[PairOutcome], done: Iterable[tuple[tuple[int, str], Any]]) -> None:
    """Fold each ``result-write``'s value (or the exception that ended it) into its pair's
    outcome: summaries of a stored node, a metric's run-time failure, or the pair's error."""
    for (index, metric), value in done:
        if isinstance(value, BaseException):
            value = {"ok": False, "metric_error": _exception_text(value)}
        outcome = outcomes[index]
        if "alignment" in value:  # the pair's first write also stored its alignment node
            record_alignments(outcomes, [(index, value["alignment"])])
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


def record_alignments(outcomes: list[PairOutcome], done: Iterable[tuple[int, Any]]) -> None:
    """Fold each ``alignment-write``'s value into its pair: the complete pair facts, a decode
    that failed (the pair's error), or a node that could not be stored (a run-time failure:
    no verdict, and the next run retries)."""
    for index, value in done:
        if isinstance(value, BaseException):
            value = {"ok": False, "metric_error": _exception_text(value)}
        outcome = outcomes[index]
        if value.get("ok"):
            assert outcome.alignment is not None
            outcome.alignment["facts"] = value["facts"]
        elif "metric_error" in value:
            outcome.failed["alignment"] = value["metric_error"]
        elif outcome.error is None:
            outcome.error = value["error"]


def stored_nodes(
    outcomes: list[PairOutcome],
    done: Iterable[tuple[tuple[int, str], Any]],
    align: AlignOptions,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The nodes this run stored (key -> (kind, summary)), for the result index: each metric
    node its ``result-write`` stored, each alignment node of a pair that finished without
    error and had none stored before."""
    from giflab_dask.resultstore import alignment_node_key

    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for (index, metric), value in done:
        if isinstance(value, dict) and value.get("ok") and "node" in value:
            entries[outcomes[index].metric_keys[metric]] = ("metric", value["node"])
    for outcome in outcomes:
        if outcome.error is None and outcome.alignment is not None and not outcome.stored_alignment:
            o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
            entries[alignment_node_key(o_key, c_key, align)] = ("alignment", outcome.alignment)
    return entries


def pair_result(
    outcome: PairOutcome,
    specs: list[MetricSpec],
    profile: str | Mapping[str, Any] | None,
    results: ResultStore,
    sample: SampleSpec | None = None,
) -> PairResult:
    """The result of a pair whose nodes are all stored: summaries, pair facts, the composite
    quality and the verdict; per-frame vectors are read from ``results`` when first used."""
    summaries: dict[str, float] = {}
    for output, stats in outcome.summaries.items():
        summaries.update(summarize(output, np.asarray(stats, dtype=np.float64)))
    # keys read from documents are new strings per pair: one shared copy of each
    for key, value in (*outcome.extra.items(), *outcome.alignment["facts"].items()):  # type: ignore[index]
        summaries[sys.intern(key)] = value
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
    sample_info = sample_summaries(outcome, summaries, sample) if sample is not None else None
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
    both sides at their own size, no drift, no frame a viewer could miss."""
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


def sample_summaries(
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


class _LazyVectors(dict):  # type: ignore[type-arg]
    """Per-frame vectors read from the result store on first access (plots need them, tables
    don't, so a batch never holds every vector of every pair in memory)."""

    __slots__ = ("_keys", "_loaded", "_results")

    def __init__(self, results: ResultStore, metric_keys: Mapping[str, str]) -> None:
        super().__init__()
        self._results = results
        self._keys = metric_keys  # the outcome's, not changed once planned
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
                if "sample" in data:  # sampled: NaN at the frames not measured
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
    seconds: float  # wall clock from the start of planning to the last pair's result
    #: where and how the graph ran: scheduler, dashboard link, task time per stage
    report: RunReport | None = None
    #: ``seconds`` split by what the client was doing: planning (keys, lookups, the graph),
    #: computing (from the plan to the graph's last value: scheduler start-up, the tasks) and
    #: writing (folding the values into each pair's result and verdict)
    phases: dict[str, float] = field(default_factory=dict)

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
            **{f"{phase}_seconds": t for phase, t in self.phases.items()},
            "pairs_per_s": len(self.outcomes) / self.seconds if self.seconds else math.nan,
            "frames_per_s": frames / self.seconds if self.seconds else math.nan,
        }

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "warn": 0, "fail": 0, "error": 0}
        for o in self.outcomes:
            counts["error" if o.error or o.result is None else o.result.status] += 1
        return counts


@dataclass
class BatchPlan:
    """The graph of a batch before compute: which nodes exist, and the tasks for the rest."""

    outcomes: list[PairOutcome]
    #: the batch's options, its stores resolved (``options.results`` is the store written to)
    options: ValidateOptions
    writes: dict[tuple[int, str], Delayed]  # (pair index, metric) -> result-write task
    decode_keys: set[str]
    #: perf_counter at the start of planning and at its end (the run's clock starts with it)
    started: float = field(default_factory=time.perf_counter)
    planned: float | None = None
    # Adaptive sampling: this plan is the pilot pass, and ``then()`` plans the final pass.
    then: Callable[[], BatchPlan] | None = None
    #: Recorded decode seconds of the GIFs whose frames came from the frame store.
    decode_saved_seconds: float = 0.0
    #: the same per GIF, by the key its ``gif-decode`` task would have had (a windowed batch
    #: does not count as saved a GIF one of its earlier windows decoded)
    found_decodes: dict[str, float] = field(default_factory=dict)
    #: pair index -> the ``alignment-write`` of its alignment node
    alignment_writes: dict[int, Delayed] = field(default_factory=dict)
    #: seconds of an adaptive sample's pilot pass by phase (plan, compute), for the final pass
    earlier: dict[str, float] = field(default_factory=dict)
    #: task prefix -> (tasks, task-seconds) of the files planning hashed and scanned on a
    #: cluster's workers (``gif-hash``, ``gif-scan``), added to the run report's prefixes
    planning_tasks: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: writes counted in ``n_metric_tasks`` whose graph :meth:`release` dropped
    released: int = 0

    @property
    def specs(self) -> list[MetricSpec]:
        return list(self.options.metrics)

    @property
    def results(self) -> ResultStore:
        assert self.options.results is not None
        return self.options.results

    @property
    def sample(self) -> SampleSpec | None:
        return self.options.sample

    @property
    def profile(self) -> str | Mapping[str, Any] | None:
        return self.options.profile

    def dask_objects(self) -> list[Delayed]:
        return [*self.writes.values(), *self.alignment_writes.values()]

    @property
    def n_decode_tasks(self) -> int:
        return len(self.decode_keys)

    @property
    def n_metric_tasks(self) -> int:
        return len(self.writes) + self.released

    def release(self) -> None:
        """Drop the graph once it has run (a window of a huge batch), keeping its counts: the
        graph is most of a plan's memory."""
        self.released += len(self.writes)
        self.writes, self.alignment_writes, self.then = {}, {}, None

    @property
    def frame_measurements(self) -> int:
        """Frames x metrics the graph measures: the total of ``diagnostics.frames_measured``'s
        count when it has run (progress within long pairs)."""
        return sum(o.frame_measurements for o in self.outcomes)

    def compute(
        self, *, progress: bool | BatchProgress = False, **compute_kwargs: Any
    ) -> BatchResult:
        """Run the graph and assemble one outcome per pair.

        ``scheduler`` (threads, processes, sync, local-cluster, an address, a Client),
        ``address`` and ``num_workers`` choose where it runs (:mod:`giflab_dask.cluster`;
        default: an active Client, else ``giflab.scheduler``); ``progress`` shows a progress
        bar on stderr; other keyword arguments go to ``dask.compute``. The run's
        :class:`~giflab_dask.diagnostics.RunReport` (stage times) is ``result.report``.
        """
        from giflab_dask.cluster import execute

        def run(writes: list[Delayed]) -> tuple[list[Any], RunReport]:
            total = self.frame_measurements
            return execute(writes, progress=progress, frames_total=total, **compute_kwargs)

        if self.then is not None:  # adaptive sampling: the pilot pass first
            run(self.dask_objects())
            ran = time.perf_counter()
            final = self.then()
            # the final pass's clock and phases include the pilot's
            final.earlier = {
                "plan": self._planned() - self.started + final._planned() - ran,
                "compute": ran - self._planned(),
            }
            final.started = self.started
            return final.compute(progress=progress, **compute_kwargs)
        # Finished nodes are stored as they finish; a write that failed is pinned on its own
        # pair and metric, and the others keep their results.
        items = list(self.writes.items())
        aligned = list(self.alignment_writes.items())
        values, report = run([w for _, w in items] + [w for _, w in aligned])
        ran = time.perf_counter()
        report.prefixes.update(self.planning_tasks)
        done = list(zip((ident for ident, _ in items), values[: len(items)], strict=True))
        record_writes(self.outcomes, done)
        rest = values[len(items) :]
        record_alignments(self.outcomes, zip((i for i, _ in aligned), rest, strict=True))
        for outcome in self.outcomes:
            self._finish(outcome)
        if self.options.use_cache:  # the result index: what this run stored, in one segment
            self.results.record(stored_nodes(self.outcomes, done, self.options.align))
        for outcome in self.outcomes:
            if outcome.result is not None:
                outcome.alignment, outcome.summaries, outcome.extra = None, {}, {}
        finished = time.perf_counter()
        phases = {
            "plan": self.earlier.get("plan", self._planned() - self.started),
            "compute": self.earlier.get("compute", 0.0) + ran - self._planned(),
            "write": finished - ran,
        }
        return BatchResult(self.outcomes, self, finished - self.started, report, phases)

    def _planned(self) -> float:
        return self.started if self.planned is None else self.planned

    def _finish(self, outcome: PairOutcome) -> None:
        """A pair's error and its result, once its writes have run."""
        if outcome.error is None and outcome.failed:
            # A verdict over the survivors would re-weigh the composite and skip checks.
            outcome.error = failure_message(outcome.failed)
        if outcome.error is None and outcome.alignment is not None:
            outcome.result = pair_result(
                outcome, self.specs, self.profile, self.results, self.sample
            )


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
