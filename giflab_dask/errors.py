"""The exception and warning tree of giflab-dask.

Every error the package raises on purpose derives from :class:`GiflabError`, which is a
``ValueError`` so callers that already catch bad-input errors keep working; every class is
defined here (the modules that raise one re-export it, so ``from giflab_dask.align import
AlignmentError`` keeps working).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AlignmentError",
    "BatchInputError",
    "CacheFileError",
    "CacheIntegrityWarning",
    "CacheWriteError",
    "ConfigError",
    "ExternalToolError",
    "FrameStoreCorruptError",
    "FrameStoreError",
    "GifDecodeError",
    "GifLimitError",
    "GiflabError",
    "GiflabWarning",
    "MeasurementError",
    "MemoryBudgetError",
    "PairTimeLimitError",
    "SamplingError",
    "UnknownMetricError",
]


class GiflabError(ValueError):
    """Base class of every error raised by giflab-dask."""


class ConfigError(GiflabError):
    """A ``giflab.*`` configuration value is missing or invalid."""


class GifDecodeError(GiflabError):
    """A file could not be read or decoded as a GIF.

    The message always names the file and the cause, so it can go into a batch's error row
    or onto the command line as it is.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[GifDecodeError], tuple[str, str]]:
        # Keep the two-argument constructor working across process boundaries.
        return (type(self), (self.path, self.reason))


class GifLimitError(GifDecodeError):
    """A GIF exceeds a configured input limit (``giflab.limits``)."""


class CacheFileError(GiflabError):
    """A file inside a cache root is not one a store writes: a symlink, a device, a FIFO, or
    larger than any document the store writes. It is never read (and never followed)."""


class CacheWriteError(GiflabError):
    """A cache root cannot be written (permission denied, disk full, read-only filesystem).

    The message names the store, its root and the cause, one line:
    ``result store /path cannot be written (No space left on device)``.
    """

    def __init__(self, store: str, root: str | Path, cause: str) -> None:
        self.store = store
        self.root = str(root)
        self.cause = cause
        super().__init__(f"{store} {self.root} cannot be written ({cause})")

    def __reduce__(self) -> tuple[type[CacheWriteError], tuple[str, str, str]]:
        return (type(self), (self.store, self.root, self.cause))


class BatchInputError(GiflabError):
    """The batch description itself cannot be read (not a per-row problem)."""


class UnknownMetricError(GiflabError):
    """A metric name that is not registered."""


class AlignmentError(GiflabError):
    """Two GIFs cannot be aligned as asked."""


class SamplingError(GiflabError):
    """A sampling option that cannot be used as given."""


class MeasurementError(GiflabError):
    """A metric failed at run time (an exception, memory, a node that could not be written).

    The pair gets no verdict (one over the other metrics would not be the one asked for);
    nothing of the failed metric was stored, so the next run computes it again.
    """


class ExternalToolError(MeasurementError):
    """An external metric tool (butteraugli) is not installed, or failed on a frame."""


class MemoryBudgetError(GiflabError):
    """A task's estimated working memory exceeds ``giflab.limits.memory-budget``."""


class PairTimeLimitError(TimeoutError, GiflabError):
    """A pair's metric tasks ran longer than ``giflab.limits.max-pair-seconds``.

    Also a ``TimeoutError``, so callers that handle timeouts generically catch it (listed
    first: ``OSError`` owns the instance layout, so unpickling must use its ``__new__``).
    """


class FrameStoreError(GiflabError):
    """The frame store cannot be opened, read or written."""


class FrameStoreCorruptError(FrameStoreError):
    """A stored entry failed verification (missing, truncated or altered chunk)."""


class GiflabWarning(UserWarning):
    """Base class of giflab-dask's warnings (errors under the test suite)."""


class CacheIntegrityWarning(GiflabWarning):
    """A cache entry failed verification and is being rebuilt."""
