"""Planning's work on input files: content hashes and block scans, here or on a cluster.

Planning needs each new GIF's content key (:mod:`giflab_dask.keys`) and, for a GIF not yet in
the frame store, its block structure (:func:`giflab_dask.decode.scan_gif`: frame count, size,
durations). On a ``distributed`` cluster that is already running, :class:`FileWork` runs them
as ``gif-hash`` and ``gif-scan`` tasks on the workers, close to the data and in parallel, a
batch of files per task; locally they run here, each file once. Only small values travel:
digests, layouts, or the errors that name the files.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from giflab_dask.errors import GifDecodeError, GiflabError

if TYPE_CHECKING:
    from giflab_dask.decode import GifLayout, Limits

__all__ = ["FILES_PER_TASK", "FileWork", "hash_task", "scan_task"]

#: Files per ``gif-hash``/``gif-scan`` task: each task costs the scheduler about a millisecond,
#: a tiny file's hash tens of microseconds and its scan a few hundred.
FILES_PER_TASK = 100

T = TypeVar("T")


def hash_task(paths: Sequence[str]) -> tuple[list[str | GifDecodeError], float]:
    """The ``gif-hash`` task: each file's digest (or the error naming it), and its seconds."""
    from giflab_dask.keys import hash_files

    started = time.perf_counter()
    return hash_files(paths), time.perf_counter() - started


def scan_task(paths: Sequence[str], limits: Limits) -> tuple[list[GifLayout | GiflabError], float]:
    """The ``gif-scan`` task: each GIF's block structure (or the error naming it), and its
    seconds. ``limits`` are the client's (``giflab.limits``)."""
    started = time.perf_counter()
    return scan_files(paths, limits), time.perf_counter() - started


def scan_files(paths: Sequence[str], limits: Limits | None = None) -> list[GifLayout | GiflabError]:
    """:func:`~giflab_dask.decode.scan_gif` of each file (its structure: planning keeps no
    colour table), or the error naming it."""
    from giflab_dask.decode import scan_gif

    out: list[GifLayout | GiflabError] = []
    for path in paths:
        try:
            out.append(scan_gif(path, limits, colour_tables=False))
        except GiflabError as exc:
            out.append(exc)
    return out


@dataclass
class FileWork:
    """Where one plan hashes and scans files: here (``client`` None) or as tasks on the
    workers of ``client``'s cluster; ``tasks`` counts those tasks and their seconds by key
    prefix, for the run report."""

    client: Any = None
    tasks: dict[str, tuple[int, float]] = field(default_factory=dict)
    _config_sent: bool = False

    def hash(self, paths: Sequence[Path]) -> list[str | GifDecodeError]:
        """Each file's digest, or the error naming it (the hasher of ``keys.gif_keys``)."""
        from giflab_dask.keys import hash_files

        if self.client is None:
            return hash_files(paths)
        return self._map("gif-hash", hash_task, [str(p) for p in paths])

    def scan(self, paths: Sequence[str]) -> list[GifLayout | GiflabError]:
        """Each GIF's block structure, or the error naming it."""
        from giflab_dask.decode import Limits

        limits = Limits.from_config()
        if self.client is None:
            return scan_files(paths, limits)
        return self._map("gif-scan", scan_task, list(paths), limits)

    def _map(
        self, prefix: str, func: Callable[..., tuple[list[T], float]], items: list[str], *args: Any
    ) -> list[T]:
        """``func`` over batches of ``items`` as tasks named ``<prefix>-<run>-<i>``."""
        if not items:
            return []
        if not self._config_sent:  # the tasks read giflab.limits, as the batch's tasks do
            from giflab_dask.cluster import send_config

            send_config(self.client)
            self._config_sent = True
        run = uuid.uuid4().hex
        batches = [items[i : i + FILES_PER_TASK] for i in range(0, len(items), FILES_PER_TASK)]
        futures = [
            self.client.submit(func, batch, *args, key=f"{prefix}-{run}-{i}", pure=False)
            for i, batch in enumerate(batches)
        ]
        out: list[T] = []
        seconds = 0.0
        for values, took in self.client.gather(futures):
            out.extend(values)
            seconds += took
        n, before = self.tasks.get(prefix, (0, 0.0))
        self.tasks[prefix] = (n + len(batches), before + seconds)
        return out
