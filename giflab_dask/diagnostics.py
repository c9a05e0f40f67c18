"""What a batch run measures about itself: stage names, task time per stage, frames measured.

Tasks carry their stage in their key prefix (``gif-hash``, ``gif-scan``, ``gif-decode``,
``gif-frames``, ``align-frames-*``, ``<metric>-frame``, ``<metric>-summary``, ``result-write``,
``alignment-write``; :func:`stage_of`). Inside a task, :func:`activity` times the stages that
share it (reading and aligning inside ``pair-metrics``, summaries inside ``result-write``) and
:func:`count_frames` counts frame measurements for progress. :class:`TaskTimer` (local
schedulers) and :class:`StageSpans` with :func:`span_times` (a ``distributed`` cluster) collect
task time per prefix; :class:`RunReport` holds one run's figures, which :func:`run_summary` and
:func:`format_summary` combine with the batch statistics and the client's phases (plan,
compute, write).

Nothing here chooses or starts a scheduler (that is :mod:`giflab_dask.cluster`), and nothing
here imports ``distributed``: on a worker it is already imported, and :func:`activity` uses it
from ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ACTIVITY_STAGES",
    "PHASES",
    "STAGES",
    "FinishedBatch",
    "RunReport",
    "StageSpans",
    "TaskTimer",
    "activity",
    "activity_totals",
    "count_frames",
    "flush_worker_metrics",
    "format_summary",
    "frames_measured",
    "key_prefix",
    "run_summary",
    "span_times",
    "stage_of",
]


#: Pipeline stages by task-key prefix (see :func:`stage_of`), in data-flow order.
STAGES = ("scan", "decode", "read", "align", "metric", "summary", "write", "other")
#: What the client does in a run, in order; their seconds add up to the run's: planning (keys,
#: lookups, the graph), computing (scheduler start-up and the tasks, until the graph's last
#: value) and writing (the values folded into each pair's result and verdict).
PHASES = ("plan", "compute", "write")


def key_prefix(key: Any) -> str:
    """``dask.utils.key_split`` without its cache, whose 100,000 keys would outlive a huge
    batch's graph (and their strings with them)."""
    from dask.utils import key_split

    name = key[0] if isinstance(key, tuple) and key else key  # key_split recurses cached
    return key_split.__wrapped__(name)  # type: ignore[no-any-return]


def stage_of(prefix: str) -> str:
    """The pipeline stage of a task-key prefix (``dask.utils.key_split`` of its key)."""
    if prefix in ("gif-hash", "gif-scan"):  # planning's tasks on a cluster's files
        return "scan"
    if prefix == "gif-decode":
        return "decode"
    if prefix in ("gif-frames", "gif-alpha"):
        return "read"
    if prefix.startswith("align-"):
        return "align"
    if prefix.endswith("-frame") or prefix == "pair-metrics":
        return "metric"
    if prefix.endswith("-summary"):
        return "summary"
    if prefix in ("result-write", "alignment-write"):
        return "write"
    return "other"  # array plumbing between stages: getitem, take, rechunk, block ids


# -- activities: the stages inside a task ----------------------------------------------------

#: Activities that tasks time (:func:`activity`), by the stage they belong to, and the stage
#: of the task that runs them: a ``pair-metrics`` task reads, aligns and measures, a
#: ``result-write`` task summarizes and writes. Kernels are timed as ``<metric>-frame``.
ACTIVITY_STAGES = {"read": ("read", "metric"), "align": ("align", "metric"),
                   "summary": ("summary", "write")}  # fmt: skip
_activity_lock = threading.Lock()
_activity_seconds: defaultdict[str, float] = defaultdict(float)


@contextlib.contextmanager
def activity(label: str) -> Iterator[None]:
    """Time part of a task as ``label`` (``read``, ``align``, ``<metric>-frame``, ...).

    On a ``distributed`` worker the time goes to ``context_meter``, so the dashboard's Fine
    Performance Metrics show it as an activity of the task's prefix (and the run report splits
    the task's stage by it); in this process it also adds to a per-process total that the local
    schedulers' run report reads (:func:`activity_totals`).
    """
    started = time.perf_counter()
    metrics = sys.modules.get("distributed.metrics")  # imported on every worker, never here
    meter = metrics.context_meter.meter(label) if metrics is not None else contextlib.nullcontext()
    try:
        with meter:
            yield
    finally:
        elapsed = time.perf_counter() - started
        with _activity_lock:
            _activity_seconds[label] += elapsed


def activity_totals() -> dict[str, float]:
    """Seconds per activity label timed in this process so far."""
    with _activity_lock:
        return dict(_activity_seconds)


_frames_measured = [0]


def count_frames(n: int) -> None:
    """Record ``n`` frame measurements (frames x metrics) finished by a ``pair-metrics`` task,
    so progress can be shown in frames within long tasks' pairs: in this process
    (:func:`frames_measured`) and, on a ``distributed`` worker, as the task's ``frames``
    metric (Fine Performance Metrics on the dashboard)."""
    metrics = sys.modules.get("distributed.metrics")
    if metrics is not None:
        metrics.context_meter.digest_metric("frames-measured", n, "frames")
    with _activity_lock:
        _frames_measured[0] += n


def frames_measured() -> int:
    """Frame measurements recorded in this process so far (:func:`count_frames`)."""
    with _activity_lock:
        return _frames_measured[0]


# -- one run's figures ----------------------------------------------------------------------


@dataclass
class RunReport:
    """How one compute went: where it ran, how long, and the task time of every stage."""

    scheduler: str
    dashboard_link: str | None
    seconds: float
    #: prefix -> (tasks, task-seconds): time spent running tasks of that key prefix, summed
    #: over workers (on a cluster from the scheduler's task groups; under threads and sync
    #: from the time each task was in flight; not measured under processes)
    prefixes: dict[str, tuple[int, float]] = field(default_factory=dict)
    failed: int = 0
    #: activity -> seconds timed inside tasks (:func:`activity`: ``read``, ``align``,
    #: ``<metric>-frame``, ``summary``), summed over workers; empty under processes
    activities: dict[str, float] = field(default_factory=dict)

    @property
    def stages(self) -> dict[str, tuple[int, float]]:
        """stage -> (tasks, task-seconds). Stages run inside another stage's tasks (reading
        and aligning in ``pair-metrics``, summaries in ``result-write``) get their measured
        activity time, taken from that stage, and no tasks of their own."""
        out: dict[str, list[float]] = {}
        for prefix, (n, seconds) in self.prefixes.items():
            entry = out.setdefault(stage_of(prefix), [0, 0.0])
            entry[0] += n
            entry[1] += seconds
        for label, (stage, within) in ACTIVITY_STAGES.items():
            seconds = min(self.activities.get(label, 0.0), out.get(within, [0, 0.0])[1])
            if seconds > 0:
                out[within][1] -= seconds
                out.setdefault(stage, [0, 0.0])[1] += seconds
        return {s: (int(out[s][0]), out[s][1]) for s in STAGES if s in out}


# -- collecting task time per prefix -----------------------------------------------------


class TaskTimer:
    """Task-seconds per key prefix under dask's local schedulers (a dask Callback)."""

    def __init__(self) -> None:
        from dask.callbacks import Callback

        self._started: dict[Any, float] = {}
        self.prefixes: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.callback = Callback(pretask=self._pretask, posttask=self._posttask)

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        self._started[key] = time.perf_counter()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        started = self._started.pop(key, None)
        if started is not None:
            entry = self.prefixes[key_prefix(key)]
            entry[0] += 1
            entry[1] += time.perf_counter() - started


class StageSpans:
    """A ``span`` annotation per task: ``(*outer, "giflab-batch", <stage>)``.

    dask evaluates a callable annotation on the scheduler for every task of the graph, so each
    task lands in the span of its stage without touching the graph (``distributed.span`` is the
    same annotation with a fixed value).
    """

    def __init__(self, names: tuple[str, ...], ids: tuple[str, ...]) -> None:
        self.names = names
        self.ids = ids
        self.stage_ids = {stage: str(uuid.uuid4()) for stage in STAGES}

    def __call__(self, key: Any) -> dict[str, tuple[str, ...]]:
        stage = stage_of(key_prefix(key))
        return {"name": (*self.names, stage), "ids": (*self.ids, self.stage_ids[stage])}


def span_times(dask_scheduler: Any, span_id: str) -> dict[str, Any]:
    """Run on the scheduler: tasks and compute seconds per prefix within one span tree, and
    the seconds of each of our activities (:func:`activity`) that workers reported."""
    spans = dask_scheduler.extensions["spans"].spans
    span = spans.get(span_id)
    out: dict[str, list[float]] = {}
    if span is None:
        return {"prefixes": {}, "activities": {}}
    for group in span.traverse_groups():
        entry = out.setdefault(group.prefix.name, [0, 0.0])
        entry[0] += len(group)
        entry[1] += group.all_durations.get("compute", 0.0)
    activities: dict[str, float] = defaultdict(float)
    for key, value in span.cumulative_worker_metrics.items():
        # ("execute", <prefix>, <activity>, <unit>): ours are the stages and <metric>-frame
        if len(key) == 4 and key[0] == "execute" and key[3] == "seconds":
            label = key[2]
            if isinstance(label, str) and (label in ACTIVITY_STAGES or label.endswith("-frame")):
                activities[label] += value
    return {"prefixes": {p: (int(n), s) for p, (n, s) in out.items()},
            "activities": dict(activities)}  # fmt: skip


async def flush_worker_metrics(dask_worker: Any) -> None:
    """Run on each worker: report its metrics now rather than at the next heartbeat."""
    await dask_worker.heartbeat()


# -- the run summary ------------------------------------------------------------------------


class FinishedBatch(Protocol):
    """What :func:`run_summary` reads of a finished batch (``pipeline.BatchResult``)."""

    @property
    def stats(self) -> Mapping[str, Any]: ...
    @property
    def report(self) -> RunReport | None: ...
    @property
    def outcomes(self) -> Sequence[Any]: ...


def run_summary(result: FinishedBatch) -> dict[str, Any]:
    """Pairs/s, frames/s, cache hits and task time per stage of a finished batch."""
    stats = dict(result.stats)
    report = result.report
    keys = {k for o in result.outcomes for k in (o.original_key, o.compressed_key) if k}
    decoded = int(stats.get("decode_tasks", 0))
    summary: dict[str, Any] = {
        "pairs": stats["pairs"],
        "errors": stats["errors"],
        "seconds": stats["seconds"],  # from the start of planning: plan + compute + write
        **{f"{p}_seconds": stats[f"{p}_seconds"] for p in PHASES if f"{p}_seconds" in stats},
        "pairs_per_s": stats["pairs_per_s"],
        "frames_per_s": stats["frames_per_s"],
        "result_hits": stats["node_hits"],
        "result_misses": stats["node_misses"],
        "gifs": len(keys),
        "frame_store_hits": max(0, len(keys) - decoded),
        "decoded": decoded,
        "saved_seconds": stats.get("saved_seconds", 0.0),
    }
    if report is not None:
        summary["scheduler"] = report.scheduler
        summary["dashboard"] = report.dashboard_link
        summary["graph_seconds"] = report.seconds  # the scheduler's part of compute
        summary["failed_tasks"] = report.failed
        summary["stage_seconds"] = {s: t for s, (_, t) in report.stages.items()}
        summary["stage_tasks"] = {s: n for s, (n, _) in report.stages.items()}
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """The run summary as a few lines for people."""

    def rate(x: float) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.1f}"

    where = summary.get("scheduler")
    where = f" on {where}" if where and summary.get("result_misses") else ""
    lines = [
        f"run: {summary['pairs']} pairs in {summary['seconds']:.1f} s{where}: "
        f"{rate(summary['pairs_per_s'])} pairs/s, {rate(summary['frames_per_s'])} frames/s",
        f"cache: {summary['result_hits']} stored results reused, "
        f"{summary['result_misses']} computed; {summary['frame_store_hits']} of "
        f"{summary['gifs']} GIFs already in the frame store, {summary['decoded']} decoded; "
        f"time saved {summary.get('saved_seconds', 0.0):.1f} s of task time",
    ]
    phases = [(p, summary.get(f"{p}_seconds")) for p in PHASES]
    if all(t is not None for _, t in phases):
        lines.append("client: " + ", ".join(f"{p} {t:.1f} s" for p, t in phases))
    stages = summary.get("stage_seconds") or {}
    if stages:
        total = sum(stages.values()) or 1.0
        tasks = summary.get("stage_tasks", {})
        parts = [
            f"{stage} {seconds:.2f} s ({seconds / total:.0%}"
            + (f", {tasks[stage]} tasks)" if tasks.get(stage) else ", in other tasks)")
            for stage, seconds in stages.items()
        ]
        lines.append("task time by stage: " + "; ".join(parts))
    elif summary.get("scheduler", "").startswith("processes"):
        lines.append("task time by stage: not measured under the processes scheduler")
    return "\n".join(lines)
