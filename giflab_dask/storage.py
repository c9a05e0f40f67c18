"""Cache roots: a local path, or any fsspec URL (``s3://bucket/prefix``, ``memory://...``).

A local root (a plain path, or a ``file://`` URL) keeps the stores' POSIX code path: rename
commits, ``filelock`` locking, fsync. Any other URL is opened with fsspec and the stores use
their object-store protocol instead (DESIGN decision 30). Options for the filesystem (endpoint,
credentials, ...) come from ``giflab.storage-options`` (a mapping handed to
``fsspec.url_to_fs``), which travels to workers with the rest of the ``giflab`` configuration;
fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL``, ``~/.config/fsspec/``) and the
backend's (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``~/.aws/``) apply as well.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from giflab_dask.errors import ConfigError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["RemoteRoot", "Root", "as_root", "child", "filesystem", "is_url", "storage_options"]

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


def storage_options() -> dict[str, Any]:
    """``giflab.storage-options``: keyword arguments for the fsspec filesystem of URL roots."""
    from giflab_dask import config

    options = config.get("storage-options")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(
            "giflab.storage-options must be a mapping of fsspec filesystem options such as "
            f"{{'client_kwargs': {{'endpoint_url': 'http://...'}}}}, got {options!r}"
        )
    return dict(options)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The (synchronous) fsspec filesystem of ``url`` and the path inside it."""
    import fsspec

    try:
        return fsspec.url_to_fs(url, **storage_options())
    except ImportError as exc:
        hint = " (pip install 'giflab-dask[s3]')" if url.startswith(("s3://", "s3a://")) else ""
        raise ConfigError(
            f"cache root {url} needs an fsspec backend that is not installed{hint}: {exc}"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"cache root {url} is not a usable fsspec URL: {exc}") from exc


class RemoteRoot:
    """Mixin of the stores on a URL root: the fsspec filesystem opens on first use, and again
    after unpickling on a worker (a filesystem object, with its credentials, never travels)."""

    root: str
    _fs: AbstractFileSystem | None
    _base: str

    def _set_url_root(self, resolved: Root, error: type[Exception]) -> None:
        if not isinstance(resolved, str):
            raise error(f"{type(self).__name__} needs a URL root, got {resolved}")
        self.root = resolved
        self._fs = None
        self._base = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "_fs": None, "_base": ""}

    @property
    def fs(self) -> AbstractFileSystem:
        if self._fs is None:
            self._fs, self._base = filesystem(self.root)
        return self._fs
