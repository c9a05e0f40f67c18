"""The ``giflab`` configuration namespace: every setting, the types it accepts and its meaning.

Defaults are not repeated here: each comes from ``giflab.yaml`` (``config.shipped``).
``tests/test_config_schema.py`` keeps this table, the YAML file, the code's reads, ``config
show`` and the README's configuration table in step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEMA", "Setting", "flatten"]

_NONE = type(None)
_NUMBER = (int, float)
#: bounds read with dask.utils.parse_bytes: a number, a string such as "20 GB" (or "50%" for the
#: memory budget), or null for no bound
_BOUND = (int, float, str, _NONE)


@dataclass(frozen=True)
class Setting:
    """One setting under ``giflab``: the types a value may have, and what it does."""

    types: tuple[type, ...]
    meaning: str


#: Every setting by its key under ``giflab``. A setting whose value is a mapping (profiles,
#: storage options) is one setting: its contents are the user's.
SCHEMA: dict[str, Setting] = {
    "cache-dir": Setting(
        (str, _NONE), "root of all caches, a path or fsspec URL; null: the user cache directory"
    ),
    "stat-index": Setting(
        (str, _NONE), "SQLite file of content keys by path and stat; null: under cache-dir"
    ),
    "framestore.root": Setting((str, _NONE), "frame store location; null: <cache-dir>/frames"),
    "framestore.chunk-mib": Setting(_NUMBER, "target uncompressed MiB of one time-chunk of frames"),
    "framestore.compression-level": Setting(
        (int,), "zstd level of frame chunks (1 fast .. 19 small)"
    ),
    "framestore.max-bytes": Setting(_BOUND, "LRU size bound of the frame store; null: unbounded"),
    "framestore.verify": Setting(
        (str, _NONE), "check on open: checksum, size or none (null: none)"
    ),
    "framestore.verify-remote": Setting((str, _NONE), "the same for a URL root"),
    "framestore.lock-timeout": Setting(
        _NUMBER, "seconds to wait for another process decoding the same GIF"
    ),
    "align.mode": Setting((str,), "frame matching: auto, time, index or content"),
    "align.min-delay-ms": Setting((int,), "delays below this (ms) play as clamp-to-ms (0: off)"),
    "align.clamp-to-ms": Setting((int,), "the delay (ms) browsers show for a too-short one"),
    "align.content-window": Setting((int,), "content mode: compressed frames searched either side"),
    "align.resize": Setting((str,), "size mismatch: area, bilinear or nearest"),
    "align.background": Setting((list,), "RGB colour under transparent pixels"),
    "verdicts.profile": Setting((str,), "verdict profile used when none is named"),
    "verdicts.profiles": Setting((dict,), "thresholds per summary key, by profile name"),
    "results.root": Setting((str, _NONE), "result store location; null: <cache-dir>/results"),
    "results.verify-index": Setting(
        (str, _NONE), "URL root: check index entries against a listing (listing) or not (none)"
    ),
    "fsync": Setting(
        (bool,), "local roots: fsync each frame-store entry and result node before its rename"
    ),
    "storage-options": Setting((dict,), "fsspec filesystem options for URL roots"),
    "sampling.n": Setting((int, _NONE), "frames measured per pair; null: every frame"),
    "sampling.strategy": Setting((str,), "uniform, keyframes or adaptive"),
    "sampling.confidence": Setting((float,), "confidence level of the reported intervals"),
    "sampling.tolerance": Setting(
        (float,), "adaptive: target half-width, a share of the pilot's range"
    ),
    "sampling.pilot-share": Setting((float,), "adaptive: share of n measured by the pilot"),
    "limits.max-frame-pixels": Setting(_BOUND, "width x height of the screen or any frame"),
    "limits.max-frames": Setting(_BOUND, "frames per GIF"),
    "limits.max-decoded-bytes": Setting(_BOUND, "decoded bytes per GIF"),
    "limits.max-decode-seconds": Setting((*_NUMBER, _NONE), "wall time to decode one GIF"),
    "limits.max-file-bytes": Setting(_BOUND, "bytes of an input file, checked before hashing"),
    "limits.memory-budget": Setting(
        _BOUND, "memory of one process's tasks: bytes, a share '50%' or null"
    ),
    "limits.max-pair-seconds": Setting((*_NUMBER, _NONE), "task seconds of a pair's metric stage"),
    "batch.window-pairs": Setting(
        (int, _NONE), "pairs planned and computed at once in a larger batch; null: all at once"
    ),
    "scheduler": Setting((str,), "threads, processes, sync, local-cluster or a scheduler address"),
    "progress-interval": Setting(
        _NUMBER, "seconds between progress lines when stderr is no terminal"
    ),
    # YAML reads unquoted on/off as booleans
    "kernels.numba": Setting((str, bool), "numba kernels of the default metric set: auto, on, off"),
}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of each setting in a ``giflab`` mapping: nested sections are walked, a
    mapping-valued setting of the schema is one item."""
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and SCHEMA.get(key, Setting((), "")).types != (dict,):
            yield from flatten(value, f"{key}.")
        else:
            yield key, value
