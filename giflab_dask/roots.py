"""Where the caches live: every cache root is resolved here, from an argument or the config.

A root is a local :class:`~pathlib.Path` or an fsspec URL string (``s3://bucket/prefix``);
``storage.py`` says what each kind means for the stores. Defaults chain: ``giflab.framestore.root``
and ``giflab.results.root`` default to ``frames`` and ``results`` under ``giflab.cache-dir``,
which defaults to the user's cache directory (platformdirs).
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

from giflab_dask import config
from giflab_dask.errors import CacheIntegrityWarning

__all__ = [
    "Root",
    "as_root",
    "cache_dir",
    "child",
    "framestore_root",
    "is_url",
    "local_cache_dir",
    "results_root",
    "warn_if_others_can_write",
]

#: A cache root: a local directory, or an fsspec URL without a trailing slash.
Root = Path | str

_LOCAL_PROTOCOLS = ("file", "local")


def is_url(root: object) -> bool:
    """Whether ``root`` names a non-local fsspec location (``s3://...``, ``memory://...``)."""
    return isinstance(root, str) and "://" in root


def as_root(value: str | os.PathLike[str]) -> Root:
    """A cache root from a setting or an argument.

    Plain paths and ``file://`` URLs become an expanded :class:`~pathlib.Path`; other URLs
    stay strings (chained URLs such as ``simplecache::s3://...`` included).
    """
    if isinstance(value, Path):
        return value.expanduser()
    text = os.fspath(value)
    protocol, sep, rest = text.partition("://")
    if not sep:
        return Path(text).expanduser()
    if protocol in _LOCAL_PROTOCOLS:
        return Path(rest).expanduser()
    return text.rstrip("/")


def child(root: Root, name: str) -> Root:
    """``root / name`` for either kind of root."""
    return root / name if isinstance(root, Path) else f"{root}/{name}"


def local_cache_dir() -> Path:
    """The user's cache directory for giflab-dask (platformdirs), whatever ``cache-dir`` says:
    where files that describe this machine live when the shared cache is a URL."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("giflab-dask", appauthor=False))


def cache_dir() -> Root:
    """The root of all giflab caches (``giflab.cache-dir``, else :func:`local_cache_dir`)."""
    configured = config.get("cache-dir")
    return as_root(str(configured)) if configured else local_cache_dir()


def framestore_root(root: str | os.PathLike[str] | None = None) -> Root:
    """The frame store's root: ``root`` if given, else ``giflab.framestore.root``, else
    ``<cache-dir>/frames``."""
    if root is not None:
        return as_root(root)
    return _setting_or_child(config.get("framestore.root"), "frames")


def results_root(root: str | os.PathLike[str] | None = None) -> Root:
    """The result store's root: ``root`` if given, else ``giflab.results.root``, else
    ``<cache-dir>/results``."""
    if root is not None:
        return as_root(root)
    return _setting_or_child(config.get("results.root"), "results")


def _setting_or_child(configured: object, name: str) -> Root:
    return as_root(str(configured)) if configured else child(cache_dir(), name)


_WARNED_ROOTS: set[str] = set()


def warn_if_others_can_write(root: Path) -> None:
    """Warn (once per root and process) when another user could write into a cache root.

    Caches are trusted input to the pipeline: a root that others can write lets them plant
    results. Checked on the nearest existing folder of ``root``; sticky shared folders such as
    /tmp are fine when the cache folder inside them is ours.
    """
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
