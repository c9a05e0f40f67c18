"""A huge batch in windows: planned and computed ``giflab.batch.window-pairs`` pairs at a time.

The client's memory grows with what one graph holds: the plan (~6 KiB a pair) and dask's state
for the graph (~19 KiB a pair, docs/design.md 63), besides the results it keeps (~6 KiB a
pair). :func:`run_windows` plans and computes consecutive windows of the input, one after the
other, each an ordinary :class:`~giflab_dask.outcomes.BatchPlan` whose graph is dropped once it
has run, and folds their results into one :class:`~giflab_dask.outcomes.BatchResult`: every
outcome in input order, the counts and statistics of the whole batch, phases that add up to
its clock, one run report, one progress bar (local schedulers). A GIF shared by pairs of two
windows is decoded by the first and found in the frame store by the next; an interrupted batch
keeps the nodes of every window that ran (nodes are stored as they finish).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from giflab_dask import config
from giflab_dask.diagnostics import PHASES, RunReport
from giflab_dask.errors import ConfigError
from giflab_dask.outcomes import BatchPlan, BatchResult
from giflab_dask.progress import BatchProgress

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from giflab_dask.cluster import SchedulerSession
    from giflab_dask.inputs import PairInput

__all__ = ["merge_results", "run_windows", "split", "window_size"]

#: The keyword arguments of a compute that choose where it runs (the windows share one session).
WHERE = ("scheduler", "address", "num_workers")


def window_size() -> int | None:
    """``giflab.batch.window-pairs``: the most pairs planned and computed at once (None: the
    whole batch is one graph)."""
    value = config.get("batch.window-pairs")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"giflab.batch.window-pairs must be a whole number of pairs (at least 1) or null; "
            f"got {value!r}"
        )
    return value


def split(pairs: Sequence[PairInput], size: int) -> list[Sequence[PairInput]]:
    """``pairs`` in consecutive windows of at most ``size``, of equal sizes give or take one
    (no small last window: a window of a few pairs would split its metrics into more tasks)."""
    count = max(1, math.ceil(len(pairs) / size))
    bounds = [len(pairs) * i // count for i in range(count + 1)]
    return [pairs[a:b] for a, b in itertools.pairwise(bounds)]


def _unguarded(plan: BatchPlan | None) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


class _Where:
    """The scheduler session the windows share: opened when the first window has something to
    compute (a hot batch starts no cluster), closed after the last; and the one progress bar."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        session: Callable[[], AbstractContextManager[SchedulerSession]],
        progress: bool,
    ) -> None:
        self.stack, self.session, self.progress = stack, session, progress
        self.opened: SchedulerSession | None = None
        self.bar: BatchProgress | None = None
        self._label = ""

    def label(self, text: str) -> None:
        """Which window runs, shown on the bar (totals grow as windows are planned)."""
        self._label = text
        if self.bar is not None:
            self.bar.label = text

    def open(self) -> SchedulerSession:
        if self.opened is None:
            self.opened = self.stack.enter_context(self.session())
            if self.progress and not self.opened.distributed:
                self.bar = self.stack.enter_context(BatchProgress(0))
                self.bar.label = self._label
        return self.opened

    @property
    def client(self) -> Any:
        return None if self.opened is None else self.opened.client

    def shown(self) -> bool | BatchProgress:
        """What a window's compute takes as ``progress``: the shared bar locally, a bar of its
        own on a cluster (distributed's bar follows one set of futures)."""
        return self.bar if self.bar is not None else self.progress


def run_windows(
    pairs: Sequence[PairInput],
    plan: Callable[[Sequence[PairInput], Any], BatchPlan],
    session: Callable[[], AbstractContextManager[SchedulerSession]],
    *,
    size: int,
    client: Any = None,
    eager: bool = False,
    progress: bool = False,
    guard: Callable[[BatchPlan | None], AbstractContextManager[Any]] = _unguarded,
    **compute_kwargs: Any,
) -> BatchResult:
    """Plan and compute ``pairs`` in windows of at most ``size`` pairs, in order; one result.

    ``plan(window, client)`` plans a window (``client``: the session's ``distributed.Client``
    once open, else the given ``client``); ``session()`` opens where the windows compute
    (:func:`giflab_dask.cluster.scheduler_context`), on the first window with work, or before
    planning when ``eager`` (a cluster's workers hash and scan the files). ``guard(plan)`` is
    entered around each window's compute, and ``guard(None)`` around its planning (the CLI's
    Ctrl-C message). Other keyword arguments go to each window's :meth:`BatchPlan.compute`.
    """
    windows = split(pairs, size)
    results: list[BatchResult] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        settle = stack.enter_context(_settled())
        where = _Where(stack, session, progress)
        if eager:
            where.open()
        for number, window in enumerate(windows, 1):
            where.label(f"window {number}/{len(windows)}")
            with guard(None):
                planned = plan(window, where.client or client)
            kwargs: dict[str, Any] = {}
            if planned.dask_objects() or planned.then is not None:
                kwargs = {**compute_kwargs, **where.open().compute_kwargs}
            with guard(planned):
                result = planned.compute(progress=where.shown(), **kwargs)
            result.plan.release()  # its graph (and dask's state for it) is not needed again
            results.append(result)
            settle()
    return merge_results(results, started)


@contextlib.contextmanager
def _settled() -> Iterator[Callable[[], None]]:
    """A function to call after each window: collects the window's garbage, then freezes what
    is left (the outcomes kept to the end) out of the collector's sight until the batch ends.

    Each window's plan and graph outlive the young generations, so without it a full
    collection follows every window or two, and each goes over every outcome kept so far:
    the batch's client time would grow with N squared (docs/design.md, 68). Left alone when
    the collector is off or the process froze objects of its own (``gc.freeze``)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield lambda: None
        return

    def settle() -> None:
        gc.collect()  # goes over what is not frozen: this window's objects, not earlier ones
        gc.freeze()

    try:
        yield settle
    finally:
        gc.unfreeze()


def merge_results(results: Sequence[BatchResult], started: float) -> BatchResult:
    """The windows' results as one batch's: outcomes in order, task counts, seconds saved (a
    GIF an earlier window decoded is not a saving of a later one), phases, the run report.

    Phases are summed; the client's time between windows (folding each into the whole) counts
    as ``write``, so the phases add up to the batch's clock, taken from ``started``."""
    decoded: set[str] = set()
    saved = 0.0
    for result in results:
        plan = result.plan
        saved += sum(s for key, s in plan.found_decodes.items() if key not in decoded)
        decoded |= plan.decode_keys
    last = results[-1].plan
    merged = BatchPlan(
        [o for r in results for o in r.plan.outcomes],
        last.options,
        {},
        decoded,
        started=started,
        planned=started,
        decode_saved_seconds=saved,
        released=sum(r.plan.n_metric_tasks for r in results),
    )
    for result in results:
        for prefix, (n, seconds) in result.plan.planning_tasks.items():
            tasks, total = merged.planning_tasks.get(prefix, (0, 0.0))
            merged.planning_tasks[prefix] = (tasks + n, total + seconds)
    seconds = time.perf_counter() - started
    phases = {p: sum(r.phases.get(p, 0.0) for r in results) for p in PHASES}
    phases["write"] = max(0.0, seconds - phases["plan"] - phases["compute"])
    report = merge_reports([r.report for r in results if r.report is not None])
    return BatchResult(merged.outcomes, merged, seconds, report, phases)


def merge_reports(reports: Sequence[RunReport]) -> RunReport | None:
    """One report of the windows' computes: where they ran (the first that ran anything),
    the scheduler's seconds, tasks and task-seconds per prefix, activities, failed tasks."""
    if not reports:
        return None
    ran = [r for r in reports if r.prefixes or r.seconds] or list(reports)
    merged = RunReport(ran[0].scheduler, ran[0].dashboard_link, 0.0)
    for report in reports:
        merged.seconds += report.seconds
        merged.failed += report.failed
        for prefix, (n, seconds) in report.prefixes.items():
            tasks, total = merged.prefixes.get(prefix, (0, 0.0))
            merged.prefixes[prefix] = (tasks + n, total + seconds)
        for label, seconds in report.activities.items():
            merged.activities[label] = merged.activities.get(label, 0.0) + seconds
    return merged
