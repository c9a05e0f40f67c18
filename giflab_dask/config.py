"""giflab-dask's ``dask.config`` namespace: shipped YAML defaults, read at call time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

import dask.config
import yaml
from dask.utils import parse_bytes as _parse_bytes

from giflab_dask.errors import ConfigError
from giflab_dask.location import as_root, child

_DEFAULTS_FILE = Path(__file__).with_name("giflab.yaml")

with _DEFAULTS_FILE.open(encoding="utf-8") as _f:
    DEFAULTS: dict[str, Any] = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)


def shipped(key: str) -> Any:
    """The default of ``giflab.<key>`` in ``giflab.yaml`` (a copy); KeyError for an unknown key.

    The one source of every default: code that needs one reads it here rather than repeating it.
    """
    return copy.deepcopy(dask.config.get(key, config=DEFAULTS["giflab"]))


def shipped_field(key: str, cast: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field defaulting to ``giflab.<key>``'s shipped default (``cast`` applied)."""
    convert = cast if cast is not None else (lambda value: value)
    return field(default_factory=lambda: convert(shipped(key)))


def get(key: str) -> Any:
    """Read ``giflab.<key>`` from dask.config now (never cached, so ``dask.config.set`` applies).

    A key missing from the live configuration (a whole section replaced by ``dask.config.set``)
    falls back to its shipped default; an unknown key raises KeyError.
    """
    try:
        return dask.config.get(f"giflab.{key}")
    except KeyError:
        return shipped(key)


def cache_dir() -> Path | str:
    """The root of all giflab caches (``giflab.cache-dir``, else the user's cache directory).

    A local path, or an fsspec URL string such as ``s3://bucket/giflab`` (see ``storage.py``).
    """
    configured = get("cache-dir")
    if configured:
        return as_root(str(configured))
    import platformdirs

    return Path(platformdirs.user_cache_dir("giflab-dask", appauthor=False))


def framestore_root() -> Path | str:
    """The frame store's root (``giflab.framestore.root``, else ``<cache-dir>/frames``)."""
    configured = get("framestore.root")
    if configured:
        return as_root(str(configured))
    return child(cache_dir(), "frames")


def parse_bytes(value: Any, *, key: str) -> int | None:
    """A byte count: int, float or a string like ``"20 GB"``; ``None`` means unbounded."""
    if value is None:
        return None
    try:
        return int(_parse_bytes(value)) if isinstance(value, str) else int(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"giflab.{key} must be a byte count such as 20000000000 or '20 GB', got {value!r}"
        ) from exc


def choice(key: str, allowed: tuple[str, ...]) -> str:
    """Read a string setting that must be one of ``allowed``.

    A setting whose choices include ``"none"`` also accepts None: dask's environment parsing
    turns ``DASK_GIFLAB__...=none`` into None, as YAML does with ``null``.
    """
    raw = get(key)
    value = "none" if raw is None and "none" in allowed else str(raw)
    if value not in allowed:
        raise ConfigError(f"giflab.{key} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def results_root() -> Path | str:
    """The result store's root (``giflab.results.root``, else ``<cache-dir>/results``)."""
    configured = get("results.root")
    if configured:
        return as_root(str(configured))
    return child(cache_dir(), "results")


_WARNED_ROOTS: set[str] = set()


def warn_if_others_can_write(root: Path) -> None:
    """Warn (once per root and process) when another user could write into a cache root.

    Caches are trusted input to the pipeline: a root that others can write lets them plant
    results. Checked on the nearest existing folder of ``root``; sticky shared folders such as
    /tmp are fine when the cache folder inside them is ours.
    """
    import os
    import stat
    import warnings

    from giflab_dask.errors import CacheIntegrityWarning

    key = str(root)
    if key in _WARNED_ROOTS:
        return
    path = root
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = path.stat()
    except OSError:
        return
    others_write = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky = st.st_mode & stat.S_ISVTX
    foreign_owner = hasattr(os, "getuid") and st.st_uid != os.getuid()
    if (others_write and not sticky) or (foreign_owner and path == root):
        _WARNED_ROOTS.add(key)
        who = "is owned by another user" if foreign_owner else "is writable by other users"
        warnings.warn(
            CacheIntegrityWarning(
                f"cache folder {path} {who}: anyone who can write there can change results; "
                "use a private giflab.cache-dir (chmod go-w)"
            ),
            stacklevel=3,
        )
