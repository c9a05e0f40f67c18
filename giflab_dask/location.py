"""A cache root as a value: a local :class:`~pathlib.Path`, or an fsspec URL string.

Only the names, no I/O and no settings: :mod:`giflab_dask.config` resolves the configured roots
with these, and :mod:`giflab_dask.storage` (which reads ``giflab.storage-options``) opens them,
so both depend on this module and neither on the other.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["Root", "as_root", "child", "is_url"]

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
