"""Reading and writing under a cache root, local or fsspec URL (roots are resolved in ``roots.py``).

A local root (a plain path, or a ``file://`` URL) keeps the stores' POSIX code path: rename
commits, ``filelock`` locking, fsync, nothing followed through a symlink. Any other URL
(``s3://bucket/prefix``, ``memory://...``) is opened with fsspec and the stores use their
object-store protocol instead, since an object store has no rename and no locks. Options for
the filesystem (endpoint, credentials, ...) come from ``giflab.storage-options`` (a mapping
handed to ``fsspec.url_to_fs``), which travels to workers with the rest of the ``giflab``
configuration; fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL``, ``~/.config/fsspec/``)
and the backend's (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``~/.aws/``) apply as well.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from giflab_dask import config
from giflab_dask.errors import CacheFileError, ConfigError
from giflab_dask.roots import Root

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "RemoteRoot",
    "filesystem",
    "fsync_each_write",
    "list_objects",
    "open_beneath",
    "read_beneath",
    "real_dir",
    "storage_options",
]


def storage_options() -> dict[str, Any]:
    """``giflab.storage-options``: keyword arguments for the fsspec filesystem of URL roots."""
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


def list_objects(fs: AbstractFileSystem, base: str, *, below: bool) -> list[dict[str, Any]]:
    """Listing info of what is under ``base``: every object below it (``below``) or its
    children (objects and folders); empty when there is nothing. On s3fs one ListObjectsV2 per
    thousand items: its ``ls`` and ``find`` of an empty prefix make one or two requests more
    to tell a missing folder from an empty one, which a cold batch's lookup does not need."""
    try:
        if hasattr(fs, "_lsdir") and hasattr(fs, "_call_s3"):
            from fsspec.asyn import sync

            delimiter = "" if below else "/"
            return list(sync(fs.loop, fs._lsdir, base, refresh=True, delimiter=delimiter))
        if below:
            return list(fs.find(base, detail=True).values())
        return list(fs.ls(base, detail=True))
    except FileNotFoundError:  # no bucket (or folder) yet: nothing stored
        return []


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_beneath(base: Path, rel: str, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
    """A file descriptor of ``base/rel``, opened without following a symlink anywhere below
    ``base`` (each folder is opened with ``O_NOFOLLOW`` relative to the one above it, so a
    folder swapped for a link between two checks is not followed either).

    Cache roots are writable by whoever can write the cache; a link planted there must not
    make a store read or write outside it. ``base`` itself may be a link (the user's choice).
    A link or a non-folder on the way raises :class:`CacheFileError`.
    """
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise CacheFileError(f"{base}/{rel}: not a name inside the cache root")
    fd = os.open(base, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                if last:
                    return os.open(
                        part, flags | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=fd
                    )
                inner = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    where = "/".join(parts[: i + 1])
                    raise CacheFileError(
                        f"{base}/{where} is a symbolic link or not a folder: not followed"
                    ) from None
                raise
            os.close(fd)
            fd = inner
        raise AssertionError("unreachable")  # the loop returns on the last part
    finally:
        os.close(fd)


def read_beneath(base: Path, rel: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``base/rel`` (see :func:`open_beneath`), at most
    ``max_bytes`` of them: a device, FIFO, link or larger file raises :class:`CacheFileError`
    before anything is read, so a document linked to ``/dev/zero`` costs nothing."""
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer
    fd = open_beneath(base, rel, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CacheFileError(f"{base}/{rel} is not a regular file: not read")
        if st.st_size > max_bytes:
            raise CacheFileError(
                f"{base}/{rel} has {st.st_size} bytes, more than the store writes ({max_bytes})"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(st.st_size + 1)
    finally:
        os.close(fd)
    if len(data) > st.st_size:  # the store never appends to what it reads
        raise CacheFileError(f"{base}/{rel} grew while it was read: not read")
    return data


def fsync_each_write() -> bool:
    """``giflab.fsync``: whether each frame-store entry and result node written on a local
    root is fsynced before it is renamed into place (off: the rename alone publishes it, and
    what a power loss tears is caught by the checks every read makes; docs/design.md, 66)."""
    return bool(config.get("fsync"))


def real_dir(path: Path) -> bool:
    """Whether ``path`` is a folder itself, not a symbolic link to one (``lstat``)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


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
