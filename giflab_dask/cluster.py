"""Where a batch runs: the scheduler choice, config that reaches workers, progress, run summary.

Schedulers (DESIGN decision 9), resolved in this order:

1. an explicit ``address`` (``--address``): connect a ``distributed.Client`` to that scheduler;
2. an explicit ``scheduler``: ``threads``, ``processes``, ``sync``, ``local-cluster`` (a new
   ``distributed.LocalCluster`` with its dashboard on 127.0.0.1, closed afterwards), an address
   such as ``tcp://10.0.0.5:8786``, a ``distributed.Client``, or anything ``dask.compute``
   takes as ``scheduler=``;
3. dask's own ``scheduler`` setting (``dask.config.set(scheduler=...)``): left to dask;
4. an active ``distributed.Client`` (a notebook's ``client = Client(...)``): used as it is;
5. ``DASK_SCHEDULER_ADDRESS`` (dask's ``scheduler-address`` setting): connect to it;
6. ``giflab.scheduler`` (default ``threads``): any value of 2.

``threads``, ``processes`` and ``sync`` never import ``distributed``; the others need the
distributed extra and say so (``pip install 'giflab-dask[distributed]'``) when it is missing.

Configuration that reaches workers. Cache roots travel inside the graph (every task that
touches a store gets its root as an argument). Everything else a task reads from ``giflab.*``
(frame-store chunking, compression, verification, lock timeout, size bound) is sent along
explicitly, because ``dask.config`` set in the client after workers started never reaches them:
to the ``processes`` pool as its initializer, and to a cluster as a worker plugin
(``giflab-config``), which the scheduler also hands to workers that join or restart later.
Two clients with different ``giflab.framestore`` tunables on one cluster: the last one to
start a batch wins (cache roots are unaffected).

Monitoring. Tasks carry the stage names of DESIGN decision 17 as key prefixes (``gif-decode``,
``gif-frames``, ``align-frames-*``, ``<metric>-frame``, ``<metric>-summary``, ``result-write``)
and, on a cluster, every task is in a ``distributed.span`` ``("giflab-batch", <stage>)``.
:func:`execute` shows progress on stderr (:mod:`giflab_dask.progress`: redrawn on a terminal,
a line every few seconds in a log; ``distributed``'s bar on a cluster's terminal), and returns
a :class:`RunReport` with the task time per stage, which :func:`run_summary` and
:func:`format_summary` combine with the batch statistics.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import re
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask

from giflab_dask import config
from giflab_dask.errors import ConfigError

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.pipeline import BatchResult

__all__ = [
    "INSTALL_HINT",
    "SCHEDULERS",
    "RunReport",
    "SchedulerSession",
    "activity",
    "execute",
    "format_summary",
    "run_summary",
    "scheduler_context",
    "stage_of",
]

#: Scheduler names ``giflab.scheduler`` and ``--scheduler`` take (besides an address).
SCHEDULERS = ("threads", "processes", "sync", "local-cluster")
INSTALL_HINT = "pip install 'giflab-dask[distributed]'"
#: Where a LocalCluster serves its dashboard (another free port if this one is taken).
DEFAULT_DASHBOARD = "127.0.0.1:8787"
PLUGIN_NAME = "giflab-config"

_LOCAL = {
    "threads": "threads",
    "threading": "threads",
    "processes": "processes",
    "multiprocessing": "processes",
    "sync": "sync",
    "synchronous": "sync",
    "single-threaded": "sync",
}
_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$|^[\w.-]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$")

#: Pipeline stages by task-key prefix (see :func:`stage_of`), in data-flow order.
STAGES = ("decode", "read", "align", "metric", "summary", "write", "other")


def stage_of(prefix: str) -> str:
    """The pipeline stage of a task-key prefix (``dask.utils.key_split`` of its key)."""
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
    if prefix == "result-write":
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


# -- distributed, optional ------------------------------------------------------------------


def _import_distributed(what: str) -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs dask.distributed, which is not installed; install it with "
            f"{INSTALL_HINT} (threads, processes and sync work without it)"
        ) from exc
    return distributed


def _active_client() -> Any:
    """The default ``distributed.Client`` if one is running in this process, else None."""
    if sys.modules.get("distributed") is None:  # never imported: no client can exist
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _is_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def _env_address() -> str | None:
    import os

    return os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)


# -- the scheduler session ------------------------------------------------------------------


@dataclass
class SchedulerSession:
    """What :func:`scheduler_context` yields: how to compute, and what runs it.

    ``compute_kwargs`` go to ``dask.compute`` (or :meth:`BatchPlan.compute`); ``client`` is the
    ``distributed.Client`` on a cluster (None locally); ``dashboard_link`` its dashboard.
    """

    kind: str  # threads | processes | sync | local-cluster | address | client | dask
    description: str
    compute_kwargs: dict[str, Any] = field(default_factory=dict)
    client: Any = None
    dashboard_link: str | None = None

    @property
    def distributed(self) -> bool:
        return self.client is not None


def _resolve(scheduler: Any, address: str | None) -> tuple[str, Any]:
    """(kind, target) by the order in the module docstring."""
    if address:
        return "address", str(address)
    if scheduler is not None:
        return _named(scheduler, source="scheduler")
    if dask.config.get("scheduler", None) is not None:
        return _named(dask.config.get("scheduler"), source="dask.config scheduler")
    client = _active_client()
    if client is not None:
        return "client", client
    env = _env_address()
    if env:
        return "address", str(env)
    return _named(config.get("scheduler") or config.shipped("scheduler"), source="giflab.scheduler")


def _named(value: Any, *, source: str) -> tuple[str, Any]:
    if _is_client(value):
        return "client", value
    if not isinstance(value, str):
        return "dask", value  # a get function or an Executor: dask.compute takes it as is
    name = value.strip()
    if name.lower() in _LOCAL:
        return _LOCAL[name.lower()], None
    if name.lower() in ("local-cluster", "localcluster"):
        return "local-cluster", None
    if name.lower() in ("distributed", "dask.distributed"):
        client = _active_client()
        if client is None:
            _import_distributed(f"{source}={name!r}")
            raise ConfigError(f"{source}={name!r} but no distributed.Client is active")
        return "client", client
    if _ADDRESS.match(name):
        return "address", name
    raise ConfigError(
        f"{source} must be one of {', '.join(SCHEDULERS)} or a scheduler address such as "
        f"tcp://127.0.0.1:8786; got {value!r}"
    )


def _echo_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def scheduler_context(
    scheduler: Any = None,
    workers: int | None = None,
    address: str | None = None,
    *,
    dashboard_address: str = DEFAULT_DASHBOARD,
    echo: Callable[[str], None] | None = _echo_stderr,
    timeout: float | None = None,
) -> Iterator[SchedulerSession]:
    """Choose the scheduler (see the module docstring) for the duration of the block.

    ``workers``: threads or processes of a local scheduler, or workers of a new LocalCluster
    (each with ``cores // workers`` threads, at least one); a running cluster keeps its own.
    A LocalCluster or a client connected here is closed on exit; an active client is not.
    ``echo`` receives the dashboard link (stderr by default; None: silent). ``timeout``: seconds
    to wait for a scheduler (default: ``distributed.comm.timeouts.connect``).

    >>> with scheduler_context("local-cluster", workers=2) as s:  # doctest: +SKIP
    ...     result = plan_batch(pairs).compute(**s.compute_kwargs)
    """
    if workers is not None and int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    kind, target = _resolve(scheduler, address)
    say = echo or (lambda _message: None)
    connect = {} if timeout is None else {"timeout": timeout}
    if kind in ("threads", "processes", "sync"):
        kwargs: dict[str, Any] = {"scheduler": kind}
        if workers and kind != "sync":
            kwargs["num_workers"] = int(workers)
        count = "" if kind == "sync" else f" ({kwargs.get('num_workers', 'all cores')})"
        yield SchedulerSession(kind, f"{kind}{count}", kwargs)
        return
    if kind == "dask":
        kwargs = {"scheduler": target}
        if workers:
            kwargs["num_workers"] = int(workers)
        yield SchedulerSession(kind, f"dask scheduler {target!r}", kwargs)
        return
    if workers is not None and kind in ("client", "address"):
        raise ConfigError(
            "workers sizes a new local scheduler or LocalCluster; "
            f"the running cluster at {_describe_target(kind, target)} keeps its own workers"
        )
    if kind == "client":
        link = _dashboard_link(target)
        yield SchedulerSession("client", _describe_client(target),
                               {"scheduler": target}, target, link)  # fmt: skip
        return
    distributed = _import_distributed(
        "the local-cluster scheduler" if kind == "local-cluster" else f"connecting to {target}"
    )
    with contextlib.ExitStack() as stack:
        if kind == "local-cluster":
            cluster = stack.enter_context(_local_cluster(distributed, workers, dashboard_address))
            client = stack.enter_context(
                distributed.Client(cluster, set_as_default=False, **connect)
            )
            description = _describe_client(client)
        else:
            try:
                client = distributed.Client(target, set_as_default=False, **connect)
            except OSError as exc:
                raise ConfigError(f"cannot connect to a Dask scheduler at {target}: {exc}") from exc
            stack.callback(client.close)
            description = _describe_client(client)
        link = _dashboard_link(client)
        say(f"dask dashboard: {link}" if link else "dask dashboard: none (install bokeh>=3.1)")
        yield SchedulerSession(kind, description, {"scheduler": client}, client, link)


def _describe_client(client: Any) -> str:
    cluster = getattr(client, "cluster", None)
    label = type(cluster).__name__ if cluster is not None else "cluster"
    try:
        try:
            info = client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed < 2025.1 lists every worker anyway
            info = client.scheduler_info()
        workers = info["workers"].values()
        threads = sum(int(w.get("nthreads", 0)) for w in workers)
        return f"{label} {info['address']} ({len(workers)} workers, {threads} threads)"
    except Exception:  # a description is never worth failing over
        return f"{label} {getattr(client.scheduler, 'address', '?')}"


def _describe_target(kind: str, target: Any) -> str:
    return str(target) if kind == "address" else str(target.scheduler.address)


#: dask settings for starting worker processes (see :func:`_local_cluster`; docs/clusters.md
#: shows the same for ``dask worker``): distributed's nannies start workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's adaptive mmap threshold, so every
#: MiB-sized frame buffer is a fresh mmap and page faults; measured here, reading frame chunks
#: took 2.5-3x and decoding 1.3x the CPU time. Memory per task is bounded by the chunk size,
#: so there is little for the trim to return anyway.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def _local_cluster(distributed: Any, workers: int | None, dashboard_address: str) -> Iterator[Any]:
    import warnings

    from dask.system import CPU_COUNT

    kwargs: dict[str, Any] = {}
    if workers:
        # dask's count honours CPU affinity and cgroup quotas (os.cpu_count() would count the
        # host's cores in a container, and oversubscribe every worker).
        n = int(workers)
        kwargs = {"n_workers": n, "threads_per_worker": max(1, CPU_COUNT // n)}
    with warnings.catch_warnings(), dask.config.set(WORKER_CONFIG):
        # "Port 8787 is already in use": distributed then serves the dashboard on a free port,
        # and the link printed below says which.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = distributed.LocalCluster(
            host="127.0.0.1", dashboard_address=dashboard_address, processes=True, **kwargs
        )
    try:
        yield cluster
    finally:
        cluster.close()


def _dashboard_link(client: Any) -> str | None:
    try:
        return str(client.dashboard_link)
    except (KeyError, AttributeError, TypeError):
        return None  # no dashboard service (bokeh is not installed on the scheduler)


# -- config that reaches workers ------------------------------------------------------------


def config_snapshot() -> dict[str, Any]:
    """The client's whole ``giflab`` configuration, as workers should see it."""
    return copy.deepcopy(dict(dask.config.get("giflab")))


def apply_config(settings: Mapping[str, Any]) -> None:
    """Make ``settings`` this process's ``giflab`` configuration (on a worker)."""
    dask.config.set({"giflab": copy.deepcopy(dict(settings))})


def _config_plugin_class() -> type:
    cls = globals().get("_GiflabConfigPlugin")
    if cls is not None:
        return cls
    from distributed.diagnostics.plugin import WorkerPlugin

    class _GiflabConfigPlugin(WorkerPlugin):  # type: ignore[misc]
        """Sets the client's ``giflab`` configuration on every worker, present and future."""

        idempotent = False  # a newer batch's configuration replaces the older one

        def __init__(self, settings: Mapping[str, Any]) -> None:
            self.settings = dict(settings)

        def setup(self, worker: Any) -> None:
            apply_config(self.settings)

    _GiflabConfigPlugin.__module__ = __name__
    _GiflabConfigPlugin.__qualname__ = "_GiflabConfigPlugin"
    globals()["_GiflabConfigPlugin"] = _GiflabConfigPlugin
    return _GiflabConfigPlugin


def __getattr__(name: str) -> Any:
    # Workers unpickle the plugin class by name; it is built on first use because it needs
    # distributed, which this module does not import for local schedulers.
    if name == "_GiflabConfigPlugin":
        return _config_plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def send_config(client: Any, settings: Mapping[str, Any] | None = None) -> None:
    """Register the ``giflab`` configuration (default: this process's) on the cluster's workers."""
    plugin = _config_plugin_class()(config_snapshot() if settings is None else settings)
    client.register_plugin(plugin, name=PLUGIN_NAME)


# -- running the graph ----------------------------------------------------------------------


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


def execute(
    writes: Sequence[Delayed],
    *,
    progress: bool = False,
    frames_total: int = 0,
    **compute_kwargs: Any,
) -> tuple[list[Any], RunReport]:
    """Compute ``writes`` on the chosen scheduler: one value per write, or the exception that
    prevented it (a failed write never hides the others' results).

    ``progress`` shows progress on stderr; ``frames_total`` (the frame measurements the writes
    make, ``BatchPlan.frame_measurements``) lets the local schedulers show it in frames.

    ``scheduler``, ``address`` and ``num_workers`` pick the scheduler as
    :func:`scheduler_context` does; other keyword arguments go to ``dask.compute`` (or
    ``Client.compute`` on a cluster). ``optimize_graph`` defaults to False (stage names stay
    readable on the dashboard; nothing is optimized twice).
    """
    scheduler = compute_kwargs.pop("scheduler", None)
    address = compute_kwargs.pop("address", None)
    workers = compute_kwargs.pop("num_workers", None)
    compute_kwargs.setdefault("optimize_graph", False)
    if not writes:  # every node was stored: nothing to run, no cluster to start
        return [], RunReport("nothing to compute", None, 0.0)
    with scheduler_context(scheduler, workers, address) as session:
        kwargs = {**session.compute_kwargs, **compute_kwargs}
        started = time.perf_counter()
        if session.distributed:
            values, prefixes, activities = _execute_distributed(
                session.client, writes, progress, kwargs
            )
        else:
            values, prefixes, activities = _execute_local(writes, progress, kwargs, frames_total)
        seconds = time.perf_counter() - started
    failed = sum(isinstance(v, BaseException) for v in values)
    report = RunReport(
        session.description, session.dashboard_link, seconds, prefixes, failed, activities
    )
    return values, report


class _TaskTimer:
    """Task-seconds per key prefix under dask's local schedulers (a dask Callback)."""

    def __init__(self) -> None:
        from dask.callbacks import Callback

        self._started: dict[Any, float] = {}
        self.prefixes: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.callback = Callback(pretask=self._pretask, posttask=self._posttask)

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        self._started[key] = time.perf_counter()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        from dask.utils import key_split

        started = self._started.pop(key, None)
        if started is not None:
            entry = self.prefixes[key_split(key)]
            entry[0] += 1
            entry[1] += time.perf_counter() - started


def _execute_local(
    writes: Sequence[Delayed], progress: bool, kwargs: dict[str, Any], frames_total: int = 0
) -> tuple[list[Any], dict[str, tuple[int, float]], dict[str, float]]:
    from dask.base import named_schedulers
    from dask.multiprocessing import get as processes_get

    # dask's scheduler function, not its name: resolving a name imports distributed to look
    # for a Client (0.5 s of every run; scheduler_context has already looked for one).
    name = kwargs.get("scheduler")
    if isinstance(name, str) and name in named_schedulers:
        kwargs["scheduler"] = named_schedulers[name]
    processes = kwargs.get("scheduler") is processes_get
    if processes and "initializer" not in kwargs and "pool" not in kwargs:
        # The pool's processes start fresh: hand them this process's giflab configuration.
        kwargs["initializer"] = functools.partial(apply_config, config_snapshot())
    timer = _TaskTimer()
    before = activity_totals()
    with contextlib.ExitStack() as stack:
        if not processes:  # there tasks travel in batches: in-flight time is not task time
            stack.enter_context(timer.callback)
        if progress:
            from giflab_dask.progress import BatchProgress

            # under processes the frame counter grows in the pool's processes: count tasks
            stack.enter_context(BatchProgress(0 if processes else frames_total))
        values: list[Any]
        try:
            values = list(dask.compute(*writes, **kwargs)) if writes else []
        except Exception:
            # Finished nodes are already stored; rebuild the rest write by write, so a failure
            # is pinned on its own pair and metric (DESIGN decision 19).
            values = []
            for write in writes:
                try:
                    (value,) = dask.compute(write, **kwargs)
                except Exception as exc:
                    value = exc
                values.append(value)
    prefixes = {p: (int(n), s) for p, (n, s) in timer.prefixes.items()}
    activities: dict[str, float] = {}
    if not processes:  # tasks ran in this process: its activity totals grew by theirs
        after = activity_totals()
        activities = {k: v - before.get(k, 0.0) for k, v in after.items() if v > before.get(k, 0)}
    return values, prefixes, activities


class _StageSpans:
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
        from dask.utils import key_split

        stage = stage_of(key_split(key))
        return {"name": (*self.names, stage), "ids": (*self.ids, self.stage_ids[stage])}


def _span_prefixes(dask_scheduler: Any, span_id: str) -> dict[str, Any]:
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


async def _send_worker_metrics(dask_worker: Any) -> None:
    """Run on each worker: report its metrics now rather than at the next heartbeat."""
    await dask_worker.heartbeat()


def _execute_distributed(
    client: Any, writes: Sequence[Delayed], progress: bool, kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, tuple[int, float]], dict[str, float]]:
    import distributed

    kwargs.pop("scheduler", None)
    send_config(client)
    with distributed.span("giflab-batch") as batch_id:
        outer = dask.get_annotations()["span"]
        with dask.annotate(span=_StageSpans(tuple(outer["name"]), tuple(outer["ids"]))):
            try:
                futures = client.compute(list(writes), **kwargs) if writes else []
            except Exception:
                futures = None
            if futures is None:
                # The graph as a whole could not be submitted (e.g. a kernel that does not
                # serialize): submit write by write, so the failure is pinned on its metric.
                futures = []
                for write in writes:
                    try:
                        futures.append(client.compute(write, **kwargs))
                    except Exception as exc:
                        futures.append(exc)
    pending = [f for f in futures if not isinstance(f, BaseException)]
    if progress and pending:
        _distributed_progress(client, pending)
    # Waits for every write; the ones that failed are skipped here and asked for below.
    gathered = iter(client.gather(pending, errors="skip"))
    values: list[Any] = []
    for future in futures:
        if isinstance(future, BaseException):
            values.append(future)
        elif future.status == "finished":
            values.append(next(gathered))
        elif future.status == "error":
            values.append(future.exception())
        else:
            values.append(RuntimeError(f"task {future.key} was {future.status}"))
    del futures, pending
    # Activity times reach the scheduler with heartbeats: send them now (if that fails, the
    # last heartbeat's worth is missing from the report).
    with contextlib.suppress(Exception):
        client.run(_send_worker_metrics)
    try:
        times = client.run_on_scheduler(_span_prefixes, span_id=batch_id)
    except Exception:  # stage times are a nicety; never fail a finished batch over them
        times = {"prefixes": {}, "activities": {}}
    return values, times["prefixes"], times["activities"]


def _distributed_progress(client: Any, futures: list[Any]) -> None:
    from distributed.diagnostics.progressbar import TextProgressBar

    if not sys.stderr.isatty():  # a log: a line every few seconds, not a redraw per update
        from giflab_dask.progress import log_futures

        log_futures(futures)
        return
    # distributed draws its console bar on stdout; stdout is for results, so it goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        TextProgressBar(futures, scheduler=client.scheduler.address, complete=True)
        sys.stderr.write("\n")


# -- the run summary ------------------------------------------------------------------------


def run_summary(result: BatchResult) -> dict[str, Any]:
    """Pairs/s, frames/s, cache hits and task time per stage of a finished batch."""
    stats = dict(result.stats)
    report = result.report
    keys = {k for o in result.outcomes for k in (o.original_key, o.compressed_key) if k}
    decoded = int(stats.get("decode_tasks", 0))
    summary: dict[str, Any] = {
        "pairs": stats["pairs"],
        "errors": stats["errors"],
        "seconds": stats["seconds"],
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
        summary["compute_seconds"] = report.seconds
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
    computing = summary.get("compute_seconds")
    if where and computing:
        where = f" ({computing:.1f} s computing){where}"
    lines = [
        f"run: {summary['pairs']} pairs in {summary['seconds']:.1f} s{where}: "
        f"{rate(summary['pairs_per_s'])} pairs/s, {rate(summary['frames_per_s'])} frames/s",
        f"cache: {summary['result_hits']} stored results reused, "
        f"{summary['result_misses']} computed; {summary['frame_store_hits']} of "
        f"{summary['gifs']} GIFs already in the frame store, {summary['decoded']} decoded; "
        f"time saved {summary.get('saved_seconds', 0.0):.1f} s of task time",
    ]
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
