"""Where a batch runs: the scheduler choice, the config that reaches workers, running the graph.

Schedulers, resolved in this order (docs/design.md, "Where a batch runs"):

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

Running. :func:`execute` computes the writes, shows progress on stderr
(:mod:`giflab_dask.progress`) and returns a :class:`~giflab_dask.diagnostics.RunReport`; on a
cluster every task is in a ``distributed.span`` ``("giflab-batch", <stage>)``. What a run
measures about itself (stage names, activities, the run summary) is
:mod:`giflab_dask.diagnostics`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask

from giflab_dask import config
from giflab_dask.diagnostics import (
    RunReport,
    StageSpans,
    TaskTimer,
    activity_totals,
    flush_worker_metrics,
    span_times,
)
from giflab_dask.errors import ConfigError
from giflab_dask.progress import BatchProgress, distributed_progress

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

__all__ = [
    "INSTALL_HINT",
    "SCHEDULERS",
    "SchedulerSession",
    "apply_config",
    "config_snapshot",
    "execute",
    "planning_client",
    "scheduler_context",
    "send_config",
]

#: The stages whose tasks are a batch's outputs (a layer each in its graph).
WRITES = ("result-write", "alignment-write")
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


def planning_client(scheduler: Any = None, address: str | None = None) -> Any:
    """The ``distributed.Client`` a batch will run on, when it is already running (one given
    as ``scheduler``, or the active one when nothing else is chosen): planning hashes and scans
    the batch's files on its workers. None when the batch runs locally or on a cluster that
    :func:`scheduler_context` has yet to start or connect to."""
    kind, target = _resolve(scheduler, address)
    return target if kind == "client" else None


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
#: MiB-sized frame buffer is a fresh mmap and page faults (docs/clusters.md has the cost).
#: Memory per task is bounded by the chunk size, so there is little for the trim to return.
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


def execute(
    writes: Sequence[Delayed],
    *,
    progress: bool | BatchProgress = False,
    frames_total: int = 0,
    **compute_kwargs: Any,
) -> tuple[list[Any], RunReport]:
    """Compute ``writes`` on the chosen scheduler: one value per write, or the exception that
    prevented it (a failed write never hides the others' results).

    ``progress`` shows progress on stderr (a :class:`BatchProgress` already shown: this graph
    joins its bar, under the local schedulers); ``frames_total`` (the frame measurements the writes
    make, ``BatchPlan.frame_measurements``) lets the local schedulers show it in frames.

    ``scheduler``, ``address`` and ``num_workers`` pick the scheduler as
    :func:`scheduler_context` does; other keyword arguments go to dask's scheduler function
    (or ``Client.get`` on a cluster). The writes' graphs are run as one graph, as built (no
    optimization: stage names stay readable on the dashboard): ``dask.compute`` over many
    ``Delayed`` converts and repacks per object, in time quadratic in their number.
    """
    scheduler = compute_kwargs.pop("scheduler", None)
    address = compute_kwargs.pop("address", None)
    workers = compute_kwargs.pop("num_workers", None)
    for ignored in ("optimize_graph", "traverse"):
        compute_kwargs.pop(ignored, None)
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


def _execute_local(
    writes: Sequence[Delayed],
    progress: bool | BatchProgress,
    kwargs: dict[str, Any],
    frames_total: int = 0,
) -> tuple[list[Any], dict[str, tuple[int, float]], dict[str, float]]:
    from dask.base import get_scheduler, named_schedulers
    from dask.multiprocessing import get as processes_get

    # dask's scheduler function, not its name: resolving a name imports distributed to look
    # for a Client, which scheduler_context has already done.
    name = kwargs.get("scheduler")
    if isinstance(name, str) and name in named_schedulers:
        kwargs["scheduler"] = named_schedulers[name]
    processes = kwargs.get("scheduler") is processes_get
    if processes and "initializer" not in kwargs and "pool" not in kwargs:
        # The pool's processes start fresh: hand them this process's giflab configuration.
        kwargs["initializer"] = functools.partial(apply_config, config_snapshot())
    timer = TaskTimer()
    before = activity_totals()
    with contextlib.ExitStack() as stack:
        if not processes:  # there tasks travel in batches: in-flight time is not task time
            stack.enter_context(timer.callback)
        # under processes the frame counter grows in the pool's processes: count tasks
        frames = 0 if processes else frames_total
        if isinstance(progress, BatchProgress):  # a windowed batch's one bar, already shown
            progress.add_graph(frames)
        elif progress:
            stack.enter_context(BatchProgress(frames))
        schedule = get_scheduler(scheduler=kwargs.pop("scheduler", None), collections=writes)
        graph, keys = one_graph(writes)
        values: list[Any]
        try:
            values = list(schedule(graph, keys, **kwargs))
        except Exception:
            # Finished nodes are already stored; rebuild the rest write by write, so a failure
            # is pinned on its own pair and metric rather than failing the batch.
            values = []
            for key in keys:
                try:
                    (value,) = schedule(graph.cull({key}), [key], **kwargs)
                except Exception as exc:
                    value = exc
                values.append(value)
    prefixes = {p: (int(n), s) for p, (n, s) in timer.prefixes.items()}
    activities: dict[str, float] = {}
    if not processes:  # tasks ran in this process: its activity totals grew by theirs
        after = activity_totals()
        activities = {k: v - before.get(k, 0.0) for k, v in after.items() if v > before.get(k, 0)}
    return values, prefixes, activities


def one_graph(writes: Sequence[Delayed]) -> tuple[HighLevelGraph, list[Any]]:
    """The graph of ``writes`` and their keys. A batch's writes share one graph
    (:class:`~giflab_dask.graph.build.BatchGraph`), taken once; other writes' graphs are merged.
    Culled when the writes are some of those their graph holds, so only what they need runs."""
    from dask.highlevelgraph import HighLevelGraph

    graphs = {id(g): g for g in (w.__dask_graph__() for w in writes)}
    graph = (
        HighLevelGraph.merge(*graphs.values()) if len(graphs) > 1 else next(iter(graphs.values()))
    )
    if not isinstance(graph, HighLevelGraph):
        graph = HighLevelGraph.from_collections(uuid.uuid4().hex, graph, ())
    keys = [w.key for w in writes]
    held = sum(len(layer) for name, layer in graph.layers.items() if _stage(name) in WRITES)
    if len(set(keys)) < held:
        graph = graph.cull(set(keys))
    return graph, keys


def _stage(layer: str) -> str:
    """The stage of a batch graph's layer (``result-write-<batch id>``)."""
    return layer.rsplit("-", 1)[0]


def _execute_distributed(
    client: Any, writes: Sequence[Delayed], progress: bool | BatchProgress, kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, tuple[int, float]], dict[str, float]]:
    import distributed

    kwargs.pop("scheduler", None)
    send_config(client)
    with distributed.span("giflab-batch") as batch_id:
        outer = dask.get_annotations()["span"]
        with dask.annotate(span=StageSpans(tuple(outer["name"]), tuple(outer["ids"]))):
            graph, keys = one_graph(writes)
            try:
                futures = client.get(graph, keys, sync=False, **kwargs) if writes else []
            except Exception:
                futures = None
            if futures is None:
                # The graph as a whole could not be submitted (e.g. a kernel that does not
                # serialize): submit write by write, so the failure is pinned on its metric.
                futures = []
                for key in keys:
                    try:
                        futures += client.get(graph.cull({key}), [key], sync=False, **kwargs)
                    except Exception as exc:
                        futures.append(exc)
    pending = [f for f in futures if not isinstance(f, BaseException)]
    if progress and pending:
        distributed_progress(client, pending)
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
        client.run(flush_worker_metrics)
    try:
        times = client.run_on_scheduler(span_times, span_id=batch_id)
    except Exception:  # stage times are a nicety; never fail a finished batch over them
        times = {"prefixes": {}, "activities": {}}
    return values, times["prefixes"], times["activities"]
