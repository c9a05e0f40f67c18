"""Bounded work per pair: a memory budget for every task and a time limit per pair.

Before a pair's tasks exist, the working memory of its ``gif-decode`` and ``pair-metrics``
tasks is estimated from the frame sizes and the metric set (:func:`pair_task_bytes`,
:func:`decode_bytes`, from per-pixel figures measured by ``benchmarks/bench_budget.py``); a
pair whose largest task cannot fit in ``giflab.limits.memory-budget`` becomes an error row
(:class:`~giflab_dask.errors.MemoryBudgetError`) and nothing of it is decoded. While running,
tasks of one process reserve their estimate from that budget (:func:`reserve`), so concurrent
tasks wait instead of summing past it. A pair's ``pair-metrics`` tasks share a clock
(:class:`PairClock`): past ``giflab.limits.max-pair-seconds`` of task time the pair is an
error row (:class:`~giflab_dask.errors.PairTimeLimitError`). One huge or hostile pair thus
fails alone instead of taking a worker (and the batch) down with it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from giflab_dask.errors import ConfigError, MemoryBudgetError, PairTimeLimitError

if TYPE_CHECKING:
    from giflab_dask.decode import GifLayout
    from giflab_dask.metrics import BoundMetric, MetricSpec

__all__ = [
    "BYTES_PER_PIXEL",
    "MARGIN",
    "PairClock",
    "TaskLimits",
    "check_pair",
    "decode_bytes",
    "kernel_bytes_per_pixel",
    "machine_memory",
    "max_pair_seconds",
    "measure_in_groups",
    "memory_budget",
    "pair_limits",
    "pair_task_bytes",
    "reserve",
]

#: Working memory of each built-in kernel, bytes per pixel of one frame (every kernel loops per
#: frame, so it follows the frame, not the block): the peak-RSS rise over the inputs at
#: 1024x1024 and 2048x2048, the largest of a fresh process per kernel
#: (``benchmarks/bench_budget.py``) and of one process running them all in turn
#: (``test_no_kernel_needs_more_than_its_figure``: freed memory has raised glibc's mmap
#: threshold there, as in a long-running worker, and chist, texture and sharpness need more).
BYTES_PER_PIXEL: dict[str, float] = {
    "mse": 1.0,
    "rmse": 1.0,
    "psnr": 1.0,
    "psnr_normalized": 1.0,
    "ssim": 8.0,
    "ms_ssim": 29.0,
    "fsim": 29.0,
    "gmsd": 7.0,
    "chist": 18.0,
    "edge_similarity": 51.0,
    "texture_similarity": 22.0,
    "sharpness_similarity": 23.0,
    "temporal_consistency": 18.0,
    "deltae": 106.0,
    "banding": 11.0,
    "ssimulacra2": 65.0,  # numba backend, as every figure here (numpy's needs several times more)
}
#: A metric not in the table (a user's own) is assumed to need as much as the hungriest one.
UNKNOWN_BYTES_PER_PIXEL = max(BYTES_PER_PIXEL.values())
#: Headroom over the measured figures (allocator slack, Python objects, run-to-run spread).
MARGIN = 1.15


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup's limit if lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            total = min(total, int(Path(limit_file).read_text().strip()))
    return int(total)


def memory_budget() -> int | None:
    """``giflab.limits.memory-budget`` in bytes: a byte count, a share such as ``"50%"`` of
    :func:`machine_memory`, or None (no budget)."""
    from giflab_dask import config

    raw = config.get("limits.memory-budget")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            share = float(raw.strip()[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 < share <= 1:
            raise ConfigError(
                f"giflab.limits.memory-budget as a share must be between 0% and 100%, got {raw!r}"
            )
        return int(share * machine_memory())
    value = config.parse_bytes(raw, key="limits.memory-budget")
    if value is None or value <= 0:
        raise ConfigError(
            "giflab.limits.memory-budget must be a positive byte count ('12 GB'), a share of "
            f"the machine's memory ('50%') or null, got {raw!r}"
        )
    return value


def max_pair_seconds() -> float | None:
    """``giflab.limits.max-pair-seconds``: task seconds a pair's metrics may take (None: any)."""
    from giflab_dask import config

    raw = config.get("limits.max-pair-seconds")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(
            f"giflab.limits.max-pair-seconds must be a positive number of seconds or null, "
            f"got {raw!r}"
        )
    return seconds


def kernel_bytes_per_pixel(spec: MetricSpec) -> float:
    """A metric's kernel working memory per pixel of one frame (:data:`BYTES_PER_PIXEL`)."""
    return BYTES_PER_PIXEL.get(spec.name, UNKNOWN_BYTES_PER_PIXEL)


def pair_task_bytes(
    specs: Sequence[MetricSpec],
    *,
    frames: int,
    original: tuple[int, int],
    compressed: tuple[int, int],
    size: tuple[int, int],
    alpha: bool,
) -> int:
    """Estimated peak bytes of one ``pair-metrics`` task over ``frames`` frames.

    Reading holds each side's frames (RGB, plus alpha) and a decompressed chunk as large;
    preparing adds both sides composited and resized to ``size``; measuring holds the prepared
    blocks, the luma of each of their frames (shared by the kernels of a block) and one
    kernel's working memory for one frame (kernels run one after another).
    """
    per_frame = 4 if alpha else 3
    read = frames * per_frame * (original[0] * original[1] + compressed[0] * compressed[1])
    prepared = 2 * frames * (3 + 1) * size[0] * size[1]
    kernel = max((kernel_bytes_per_pixel(s) for s in specs), default=0.0) * size[0] * size[1]
    return int(MARGIN * max(2 * read, read + prepared, prepared + kernel))


def decode_bytes(layout: GifLayout) -> int:
    """Estimated peak bytes of decoding ``layout`` into the frame store: two chunk buffers
    (RGB and alpha) and one compressed chunk in flight, the canvas, a disposal-3 copy of it,
    and the palette indices of the largest frame (Pillow's image and its numpy copy)."""
    from giflab_dask.framestore import chunk_frames_for

    screen = layout.height * layout.width
    chunk = min(chunk_frames_for(layout.height, layout.width), layout.n_frames)
    decoded = max((f.width * f.height for f in layout.frames), default=0)
    return int(MARGIN * (3 * chunk * 4 * screen + 2 * 4 * screen + 2 * decoded))


def _format(nbytes: float) -> str:
    from dask.utils import format_bytes

    return format_bytes(int(nbytes))


def check_pair(
    what: str,
    specs: Sequence[MetricSpec],
    task_bytes: int,
    decodes: Sequence[tuple[Path | str, int]],
    budget: int | None,
) -> None:
    """Raise :class:`MemoryBudgetError` naming ``what`` when a task of the pair cannot fit."""
    if budget is None:
        return
    advice = (
        "raise it (dask.config.set({'giflab.limits.memory-budget': '...'}) or "
        "DASK_GIFLAB__LIMITS__MEMORY_BUDGET) if the machine has the memory"
    )
    for path, nbytes in decodes:
        if nbytes > budget:
            raise MemoryBudgetError(
                f"{path}: decoding needs an estimated {_format(nbytes)}, more than "
                f"giflab.limits.memory-budget = {_format(budget)}; {advice}"
            )
    if task_bytes > budget:
        hungry = max(specs, key=kernel_bytes_per_pixel)
        raise MemoryBudgetError(
            f"{what}: measuring needs an estimated {_format(task_bytes)} per task, more than "
            f"giflab.limits.memory-budget = {_format(budget)}; {advice}, or leave out the "
            f"metric needing most ({hungry.name}, {kernel_bytes_per_pixel(hungry):.0f} bytes "
            "per pixel)"
        )


# -- while running --------------------------------------------------------------------------


class _Reservations:
    """Bytes reserved by this process's running tasks; a task waits until its estimate fits.

    Tasks are admitted in the order they asked (tickets), so a large task is not starved by
    smaller ones that keep fitting beside the running ones.
    """

    def __init__(self) -> None:
        self.in_use = 0
        self.cond = threading.Condition()
        self.issued = 0  # tickets handed out
        self.serving = 0  # the ticket admitted next
        self.abandoned: set[int] = set()

    def _skip_abandoned(self) -> None:
        """Pass over the turns of tasks that stopped waiting (the lock is held); wake all."""
        while self.serving in self.abandoned:
            self.abandoned.remove(self.serving)
            self.serving += 1
        self.cond.notify_all()

    @contextlib.contextmanager
    def reserve(self, nbytes: int, budget: int | None) -> Iterator[None]:
        if budget is None or nbytes <= 0:
            yield
            return
        if nbytes > budget:
            raise MemoryBudgetError(
                f"a task needs an estimated {_format(nbytes)}, more than "
                f"giflab.limits.memory-budget = {_format(budget)}"
            )
        with self.cond:
            ticket = self.issued
            self.issued += 1
            try:
                # A task alone always runs: its estimate fits the budget by the check above.
                self.cond.wait_for(
                    lambda: (
                        self.serving == ticket
                        and (self.in_use == 0 or self.in_use + nbytes <= budget)
                    )
                )
            except BaseException:  # interrupted while waiting: its turn must not block others
                self.abandoned.add(ticket)
                self._skip_abandoned()
                raise
            self.in_use += nbytes
            self.serving += 1
            self._skip_abandoned()
        try:
            yield
        finally:
            with self.cond:
                self.in_use -= nbytes
                self.cond.notify_all()


_RESERVATIONS = _Reservations()


def reserve(nbytes: int, budget: int | None) -> contextlib.AbstractContextManager[None]:
    """Hold ``nbytes`` of ``budget`` (this process's) while the block runs; wait for room."""
    return _RESERVATIONS.reserve(nbytes, budget)


@dataclass(frozen=True)
class TaskLimits:
    """What a ``pair-metrics`` task is allowed (read on the client: config set there does not
    reach cluster workers): its estimate against the budget, and its pair's clock."""

    memory: int = 0
    budget: int | None = None
    pair: str = ""  # the pair's clock, shared by its tasks in one process
    what: str = ""  # the pair, as error messages name it
    max_seconds: float | None = None
    #: frames measured per kernel call: the clock is read between calls
    group_pixels: int = 1 << 22


class PairClock:
    """Task seconds spent on one pair's metrics in this process (its tasks may run on several
    threads at once: each adds what it spent as it goes)."""

    _used: ClassVar[dict[str, float]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, limits: TaskLimits) -> None:
        self.limits = limits
        self.last = time.perf_counter()

    def tick(self) -> float:
        """Add the seconds since the last tick to the pair's total; return the total."""
        now = time.perf_counter()
        with self._lock:
            total = self._used.get(self.limits.pair, 0.0) + now - self.last
            self._used[self.limits.pair] = total
        self.last = now
        return total

    def check(self) -> None:
        """Tick, and raise :class:`PairTimeLimitError` when the pair is over its limit."""
        total = self.tick()
        limit = self.limits.max_seconds
        if limit is not None and total > limit:
            raise PairTimeLimitError(
                f"{self.limits.what}: measuring took more than giflab.limits.max-pair-seconds "
                f"= {limit:g} s of task time ({total:.1f} s); raise it "
                "(DASK_GIFLAB__LIMITS__MAX_PAIR_SECONDS) if the pair is expected to take longer"
            )


def measure_in_groups(
    metrics: Sequence[BoundMetric],
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    previous: bool,
    clock: PairClock,
    meter: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[str, np.ndarray | str]:
    """:func:`~giflab_dask.metrics.measure_block` on groups of frames of at most
    ``group_pixels`` pixels, reading the pair's clock before each kernel call
    (:class:`PairTimeLimitError` once it is over); the values are those of one call on the
    whole block. Without a time limit it is that one call."""
    from giflab_dask.metrics import measure_block

    lead = 1 if previous else 0
    t = len(original) - lead
    if clock.limits.max_seconds is None or t <= 0:
        return measure_block(metrics, original, compressed, previous=previous, meter=meter)
    step = max(1, clock.limits.group_pixels // max(1, original.shape[1] * original.shape[2]))
    parts: dict[str, list[np.ndarray]] = {m.spec.name: [] for m in metrics}
    out: dict[str, np.ndarray | str] = {}
    for g0 in range(0, t, step):
        # A group after the first starts with the frame before it (temporal kernels need it).
        back = 1 if (g0 > 0 or previous) else 0
        lo, hi = g0 + lead - back, min(g0 + step, t) + lead
        todo = [m for m in metrics if m.spec.name not in out]  # a kernel that raised is done
        got = measure_block(
            todo, original[lo:hi], compressed[lo:hi], previous=bool(back), meter=meter,
            check=clock.check,
        )  # fmt: skip
        for name, value in got.items():
            if isinstance(value, str):
                out[name] = value
            else:
                parts[name].append(value)
    clock.check()
    for name, chunks in parts.items():
        if name not in out:
            out[name] = np.concatenate(chunks)
    return {m.spec.name: out[m.spec.name] for m in metrics}


def pair_limits(
    what: str,
    specs: Sequence[MetricSpec],
    original: Any,
    compressed: Any,
    pair: str,
    budget: int | None,
    max_seconds: float | None,
) -> TaskLimits:
    """Check that one pair's tasks fit the memory budget (raising :class:`MemoryBudgetError`
    naming ``what``, before anything of it is decoded) and give its tasks' limits.

    ``original`` and ``compressed`` are StoredGif or PendingGif (a GIF the graph decodes).
    """
    size = (min(original.height, compressed.height), min(original.width, compressed.width))
    alpha = any(getattr(g, "has_alpha", False) or getattr(g, "may_have_alpha", False)
                for g in (original, compressed))  # fmt: skip
    frames = min(original.chunk_frames, original.n_frames) + any(s.temporal for s in specs)
    memory = pair_task_bytes(
        specs,
        frames=frames,
        original=(original.height, original.width),
        compressed=(compressed.height, compressed.width),
        size=size,
        alpha=alpha,
    )
    decodes = [
        (gif.path, decode_bytes(gif.layout))
        for gif in (original, compressed)
        if hasattr(gif, "layout")
    ]
    check_pair(what, specs, memory, decodes, budget)
    return TaskLimits(memory, budget, pair, what, max_seconds)
