"""Progress of a running batch on stderr: stages and frames done, rate, ETA.

On a terminal one line is redrawn in place (``\\r``); anywhere else (a log file, a pipe, CI) a
plain line is written every ``giflab.progress-interval`` seconds (10), so a long run leaves a
readable log of a few lines instead of thousands of redraws. Frames are
counted as frame measurements (frames x metrics): :func:`giflab_dask.diagnostics.count_frames`
counts them as ``pair-metrics`` tasks finish, against the plan's total
(``BatchPlan.frame_measurements``). Under the ``processes`` scheduler tasks count in other
processes, so the rate is of tasks there.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from dask.callbacks import Callback

from giflab_dask import config
from giflab_dask.diagnostics import frames_measured, key_prefix, stage_of

#: Seconds between redraws on a terminal.
TTY_INTERVAL = 0.5
#: Stages shown, in data-flow order (the others run inside these stages' tasks).
SHOWN_STAGES = ("decode", "metric", "write")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def progress_line(
    stages: dict[str, tuple[int, int]],
    frames: tuple[int, int],
    elapsed: float,
) -> str:
    """One line: each stage's tasks done/total, frame measurements (frames x metrics) done/total,
    their rate (tasks' without a frame count), ETA and time so far.

    >>> progress_line({"decode": (2, 2), "metric": (3, 6)}, (300, 600), 10.0)
    'decode 2/2 · metric 3/6 · frames×metrics 300/600 (50%) · 30/s · ETA 10 s · 10 s'
    """
    parts = [f"{stage} {done}/{total}" for stage, (done, total) in stages.items() if total]
    done, total = frames
    if total <= 0:  # no frame count (the processes scheduler): the rate is of tasks
        done = sum(d for d, _ in stages.values())
        total = sum(t for _, t in stages.values())
    else:
        parts.append(f"frames×metrics {done}/{total} ({done / total:.0%})")
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate > 0:
        rate_text = f"{rate:.0f}/s" if rate >= 10 else f"{rate:.1f}/s"
        parts.append(rate_text if rate >= 0.1 else f"{rate * 60:.1f}/min")
    if 0 < done < total and rate > 0:
        parts.append(f"ETA {_duration((total - done) / rate)}")
    parts.append(_duration(elapsed))
    return " · ".join(parts)


class _Display:
    """Writes progress lines: redrawn on a terminal, every ``interval`` seconds otherwise."""

    def __init__(self, stream: TextIO | None, tty: bool | None, interval: float | None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        if interval is None:
            interval = TTY_INTERVAL if tty else float(config.get("progress-interval"))
        self.interval = interval
        self._drawn = 0  # characters of the line on screen (terminal)

    def show(self, line: str) -> None:
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
            line = line if len(line) <= width else line[: width - 1] + "…"
            self.stream.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.stream.write(f"progress: {line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class BatchProgress(Callback):
    """A dask callback showing a batch's progress under the local schedulers.

    ``frames_total``: frame measurements the graph will make (0: show tasks). Use as a context
    manager around ``dask.compute``; several computes inside one block add up (a failed graph
    is rerun write by write). The graphs of a batch run in windows are one bar: each window's
    graph is announced with :meth:`add_graph`, and ``label`` says which window runs.
    """

    def __init__(
        self,
        frames_total: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__()
        self.frames_total = frames_total
        self.display = _Display(stream, tty, interval)
        self._totals: Counter[str] = Counter()
        self._done: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._frames_before = 0
        self._counted = False  # the tasks of the graph announced last are in the totals
        self.label = ""

    def __enter__(self) -> BatchProgress:
        self._started = time.perf_counter()
        self._frames_before = frames_measured()
        super().__enter__()
        self._thread = threading.Thread(target=self._tick, name="giflab-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        super().__exit__(*args)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.display.tty:
            self.display.show(self.line())
        self.display.close()

    def _tick(self) -> None:
        while not self._stop.wait(self.display.interval):
            self.display.show(self.line())

    def add_graph(self, frames_total: int) -> None:
        """Another graph of the same batch follows (its next window): its tasks and
        ``frames_total`` frame measurements join the totals when it starts."""
        with self._lock:
            self.frames_total += frames_total
            self._counted = False

    def line(self) -> str:
        with self._lock:
            stages = {s: (self._done[s], self._totals[s]) for s in SHOWN_STAGES}
        frames = (frames_measured() - self._frames_before, self.frames_total)
        line = progress_line(stages, frames, time.perf_counter() - self._started)
        return f"{self.label} · {line}" if self.label else line

    def _start_state(self, dsk: Any, state: Any) -> None:
        pending = [*state["ready"], *state["waiting"]]
        with self._lock:
            if not self._counted:  # not again for the write-by-write rerun of a failed graph
                self._counted = True
                self._totals.update(stage_of(key_prefix(k)) for k in pending)
                self._totals.update(stage_of(key_prefix(k)) for k in state["cache"])
                self._done.update(stage_of(key_prefix(k)) for k in state["cache"])

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        with self._lock:
            stage = stage_of(key_prefix(key))
            if self._done[stage] < self._totals[stage]:
                self._done[stage] += 1


def log_futures(
    futures: Sequence[Any],
    *,
    stream: TextIO | None = None,
    interval: float | None = None,
) -> None:
    """Wait for ``futures`` (distributed), writing a line of results written so far every
    ``interval`` seconds (default ``giflab.progress-interval``): for a log, where distributed's
    own bar would redraw many times a second."""
    display = _Display(stream, False, interval)
    started = shown = time.perf_counter()
    remaining = list(futures)
    while remaining:
        time.sleep(0.1)  # polled: the futures' client need not be the default one
        remaining = [f for f in remaining if not f.done()]
        now = time.perf_counter()
        if remaining and now - shown >= display.interval:
            done = len(futures) - len(remaining)
            display.show(progress_line({"write": (done, len(futures))}, (0, 0), now - started))
            shown = now


def distributed_progress(client: Any, futures: list[Any]) -> None:
    """Wait for ``futures`` on ``client``'s cluster with progress on stderr: distributed's bar
    on a terminal, :func:`log_futures` lines anywhere else."""
    from distributed.diagnostics.progressbar import TextProgressBar

    if not sys.stderr.isatty():  # a log: a line every few seconds, not a redraw per update
        log_futures(futures)
        return
    # distributed draws its console bar on stdout; stdout is for results, so it goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        TextProgressBar(futures, scheduler=client.scheduler.address, complete=True)
        sys.stderr.write("\n")
