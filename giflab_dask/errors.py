"""The exception and warning tree of giflab-dask.

Every error the package raises on purpose derives from :class:`GiflabError`, which is a
``ValueError`` so callers that already catch bad-input errors keep working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CacheFileError",
    "CacheIntegrityWarning",
    "CacheWriteError",
    "ConfigError",
    "FrameStoreCorruptError",
    "FrameStoreError",
    "GifDecodeError",
    "GifLimitError",
    "GiflabError",
    "GiflabWarning",
    "MeasurementError",
    "MemoryBudgetError",
    "PairTimeLimitError",
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


class MeasurementError(GiflabError):
    """A metric failed at run time (an exception, memory, a node that could not be written).

    The pair gets no verdict (one over the other metrics would not be the one asked for);
    nothing of the failed metric was stored, so the next run computes it again.
    """


class MemoryBudgetError(GiflabError):
    """A task's estimated working memory exceeds ``giflab.limits.memory-budget``."""


class PairTimeLimitError(GiflabError):
    """A pair's metric tasks ran longer than ``giflab.limits.max-pair-seconds``."""


class FrameStoreError(GiflabError):
    """The frame store cannot be opened, read or written."""


class FrameStoreCorruptError(FrameStoreError):
    """A stored entry failed verification (missing, truncated or altered chunk)."""


class GiflabWarning(UserWarning):
    """Base class of giflab-dask's warnings (errors under the test suite)."""


class CacheIntegrityWarning(GiflabWarning):
    """A cache entry failed verification and is being rebuilt."""
