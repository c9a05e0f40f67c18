"""The content-keyed Zarr v3 frame store: each GIF decoded once, streamed into time-chunks.

In the order a GIF's frames flow through it:

- ``layout.py``: the names and limits of the on-disk layout (the tree is drawn there);
- ``writer.py``: a GIF decoded frame by frame into chunk files and metadata documents;
- ``codec.py``: the chunk codec, byte for byte what Zarr writes and reads;
- ``local.py``: :class:`FrameStore`, entries committed by rename under a file lock;
- ``remote.py``: :class:`FsspecFrameStore`, entries committed by a manifest on an object store;
- ``listing.py``: which entries a listing of an object-store root shows (read while it pays);
- ``entry.py``: :class:`StoredGif`, a verified entry, and the checks that verify it;
- ``read.py``: frames read back from an entry's chunk files, on whichever worker needs them.

:func:`open_frame_store` gives the store for a root (a local folder or an fsspec URL).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from giflab_dask import roots
from giflab_dask.framestore.entry import EntryInfo, StoredGif, chunk_frames_for
from giflab_dask.framestore.layout import ACCESS, MANIFEST
from giflab_dask.framestore.local import FrameStore
from giflab_dask.framestore.read import open_entry_array, read_frames
from giflab_dask.framestore.remote import FsspecFrameStore

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "ACCESS",
    "MANIFEST",
    "EntryInfo",
    "FrameStore",
    "FsspecFrameStore",
    "StoredGif",
    "chunk_frames_for",
    "decode_gif",
    "open_entry_array",
    "open_frame_store",
    "open_frames",
    "read_frames",
]


def open_frame_store(root: str | os.PathLike[str] | None = None) -> FrameStore:
    """The frame store at ``root``: a :class:`FrameStore` on a local folder (a path or a
    ``file://`` URL), a :class:`FsspecFrameStore` on any other fsspec URL (``s3://...``).

    ``root`` defaults to ``giflab.framestore.root``, else ``<giflab.cache-dir>/frames``.
    """
    resolved = roots.framestore_root(root)
    return FsspecFrameStore(resolved) if roots.is_url(resolved) else FrameStore(resolved)


def decode_gif(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> StoredGif:
    """Decode a GIF into the frame store (once per content) and return its stored entry."""
    return (store or open_frame_store()).ensure(path)


def open_frames(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> da.Array:
    """Lazy ``(T, H, W, 3)`` uint8 frames of a GIF, decoding it into the store if needed."""
    return decode_gif(path, store=store).frames()
