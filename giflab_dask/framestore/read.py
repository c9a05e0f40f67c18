"""Reading a complete entry's frames: chunk files decoded straight from their bytes.

A read task names its entry by path (local root) or data directory URL (URL root), so neither
frames nor a filesystem object holding credentials travel in the graph; each worker opens what
it reads with its own ``giflab.storage-options``. A missing or corrupt chunk raises
:class:`FrameStoreCorruptError` naming the file (never Zarr's fill values), and a chunk that
fails its CRC32C twice uncommits its entry so the next ``ensure`` decodes the GIF again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import FsspecStore, LocalStore

from giflab_dask import roots, storage
from giflab_dask.errors import CacheFileError, FrameStoreCorruptError, FrameStoreError
from giflab_dask.framestore.codec import decode_chunk_bytes, layout_document
from giflab_dask.framestore.layout import MANIFEST, MAX_METADATA_BYTES
from giflab_dask.framestore.objects import remove_entry

if TYPE_CHECKING:
    import dask.array as da
    from fsspec import AbstractFileSystem

__all__ = ["open_entry_array", "read_frames", "read_task_array", "remember_document"]


class _MissingChunksRaise:
    """Mixin of a Zarr store whose missing chunks raise instead of reading as fill values."""

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        buf = await super().get(key, prototype, byte_range)  # type: ignore[misc]
        if buf is None and _is_chunk_key(key):
            where = getattr(self, "root", None) or getattr(self, "path", "")
            raise FrameStoreCorruptError(f"frame store chunk {where}/{key} is missing")
        return buf


def _is_chunk_key(key: str) -> bool:
    """A chunk's key in an entry (``frames/c.3.0.0.0``; ``frames/c/3/0/0/0`` in Zarr's default
    encoding, which plain Zarr may have written), not a metadata document's."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith("c.") or "/c/" in f"/{key}"


class _StrictLocalStore(_MissingChunksRaise, LocalStore):
    """A LocalStore whose missing chunks raise (see :class:`_MissingChunksRaise`)."""


class _StrictFsspecStore(_MissingChunksRaise, FsspecStore):
    """An FsspecStore whose missing chunks raise (see :class:`_MissingChunksRaise`)."""


def zarr_store(entry: str | Path) -> LocalStore | FsspecStore:
    """A read-only, strict Zarr store of an entry's group: a local path or an fsspec URL."""
    if roots.is_url(entry):
        return _StrictFsspecStore.from_url(
            str(entry), storage_options=storage.storage_options(), read_only=True
        )
    return _StrictLocalStore(entry, read_only=True)


@functools.lru_cache(maxsize=64)
def open_entry_array(entry: str, name: str) -> zarr.Array:
    """A read-only Zarr array of a complete entry, opened once per process and reused.

    Opening an array per chunk read made memory grow with the number of chunks read (each open
    builds a store and a codec pipeline); entries never change once complete, so caching the
    handle is safe. ``entry`` is the entry's local directory or, for a URL root, the URL of its
    data directory (opened with this process's ``giflab.storage-options``). Missing chunks
    raise (see :class:`_StrictLocalStore`).
    """
    return zarr.open_array(store=zarr_store(entry), path=name, mode="r", zarr_format=3)


@dataclass(frozen=True)
class ChunkFiles:
    """Where an entry array's chunk files are and how to decode one (the direct read path)."""

    base: str  # the array's directory or URL; chunk files are ``base/<chunk key>``
    entry: str  # the entry's directory (or data directory URL): ``base`` is ``entry/name``
    name: str
    shape: tuple[int, ...]
    chunk: int  # frames per chunk
    zero: tuple[int, ...]  # the chunk index of the non-time axes
    encode_key: Any  # chunk index -> chunk key, as the array's metadata spells it
    direct: bool  # codecs are exactly bytes + zstd + crc32c: decode the file with numcodecs
    fs: AbstractFileSystem | None  # a URL entry's filesystem (this process's options)
    fs_base: str  # ``base`` inside ``fs``

    def path(self, t: int) -> str:
        return f"{self.base}/{self.encode_key((t, *self.zero))}"


#: metadata documents this process wrote to URL entries, kept for the reads that follow
_WRITTEN_DOCUMENTS: dict[tuple[str, str], bytes] = {}
_WRITTEN_KEPT = 256
_WRITTEN_LOCK = threading.Lock()


def remember_document(entry: str, name: str, raw: bytes) -> None:
    """Array ``name``'s metadata document, just written to the URL entry ``entry``: the first
    :func:`chunk_files` of it in this process reads it from here instead of the store."""
    with _WRITTEN_LOCK:
        while len(_WRITTEN_DOCUMENTS) >= _WRITTEN_KEPT:
            del _WRITTEN_DOCUMENTS[next(iter(_WRITTEN_DOCUMENTS))]  # the oldest
        _WRITTEN_DOCUMENTS[entry, name] = raw


@functools.lru_cache(maxsize=64)
def chunk_files(entry: str, name: str) -> ChunkFiles:
    """How to read array ``name`` of an entry: from its metadata document when it is the one
    this layout writes (opening a Zarr array costs more than most chunk reads), else from the
    array Zarr opens (any other codecs or chunk keys; ``direct`` only for the layout's
    codecs)."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec
    from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

    fs, fs_base = storage.filesystem(f"{entry}/{name}") if roots.is_url(entry) else (None, "")
    try:
        with _WRITTEN_LOCK:
            written = _WRITTEN_DOCUMENTS.pop((entry, name), None)
        raw = written or (
            fs.cat_file(f"{fs_base}/zarr.json", start=0, end=MAX_METADATA_BYTES)
            if fs
            else storage.read_beneath(Path(entry), f"{name}/zarr.json", MAX_METADATA_BYTES)
        )
        doc = json.loads(raw)
        shape = tuple(int(v) for v in doc["shape"])
        chunks = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        ours = (
            name in ("frames", "alpha")
            and min(shape, default=0) >= 0
            and min(chunks, default=0) >= 1
            and doc == layout_document(name, doc, shape, chunks)
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        ours = False  # Zarr opens it below and says what is wrong
    if ours:
        encode_key = parse_chunk_key_encoding(doc["chunk_key_encoding"]).encode_chunk_key
        return ChunkFiles(
            base=f"{entry}/{name}", entry=entry, name=name, fs=fs, fs_base=fs_base, shape=shape,
            chunk=chunks[0], zero=(0,) * (len(shape) - 1), encode_key=encode_key, direct=True,
        )  # fmt: skip
    array = open_entry_array(entry, name)
    codecs: Sequence[Any] = getattr(array.metadata, "codecs", ())  # v3 metadata has codecs
    direct = (
        len(codecs) == 3
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], ZstdCodec)
        and not codecs[1].checksum
        and isinstance(codecs[2], Crc32cCodec)
        and array.dtype == np.uint8
    )
    return ChunkFiles(
        base=f"{entry}/{name}",
        entry=entry,
        name=name,
        fs=fs,
        fs_base=fs_base,
        shape=tuple(array.shape),
        chunk=int(array.chunks[0]),
        zero=(0,) * (array.ndim - 1),
        encode_key=array.metadata.encode_chunk_key,
        direct=direct,
    )


def read_chunk_file(files: ChunkFiles, t: int, out: np.ndarray | None = None) -> np.ndarray:
    """Chunk ``t`` decoded straight from its file (into ``out``, a whole chunk, if given),
    bypassing Zarr's async store and codec pipeline, since reads are most of a warm run. The
    file's trailing CRC32C (Zarr's ``crc32c`` codec) is checked before decoding.

    A chunk that fails the check is read once more (a writer may have replaced the entry in
    between); if it fails again its entry is uncommitted (:func:`uncommit`) so the next
    ``ensure`` decodes the GIF again, instead of every run failing on it (with
    ``verify: size`` or ``none`` nothing else would notice).
    """
    try:
        return _decode_chunk_file(files, t, out)
    except _ChunkMissing:
        raise  # open() with size or checksum verification sees it
    except FrameStoreCorruptError as first:
        try:
            return _decode_chunk_file(files, t, out)
        except FrameStoreCorruptError:
            pass
        uncommit(files.entry)
        raise FrameStoreCorruptError(
            f"{first}; the entry was removed and the GIF is decoded again on the next run"
        ) from None


def _decode_chunk_file(files: ChunkFiles, t: int, out: np.ndarray | None) -> np.ndarray:
    path = files.path(t)
    shape = (files.chunk, *files.shape[1:])
    expected = int(np.prod(shape, dtype=np.int64))
    # zstd's worst case (ZSTD_COMPRESSBOUND) plus the CRC: no chunk this store writes is larger
    cap = expected + (expected >> 7) + 2**17 + 4
    chunk_key = files.encode_key((t, *files.zero))
    try:
        if files.fs is not None:
            data = files.fs.cat_file(f"{files.fs_base}/{chunk_key}", start=0, end=cap + 1)
            if len(data) > cap:
                raise CacheFileError(f"{path} is larger than any chunk of this shape")
        else:
            data = storage.read_beneath(Path(files.entry), f"{files.name}/{chunk_key}", cap)
    except FileNotFoundError:
        raise _ChunkMissing(f"frame store chunk {path} is missing") from None
    except CacheFileError as exc:
        raise FrameStoreCorruptError(f"frame store chunk {path} is corrupt: {exc}") from None
    raw = decode_chunk_bytes(data, path, out)
    if out is not None:
        # A whole-chunk frame of another size cannot pass: every chunk this store writes is a
        # full chunk (edges padded), and opened entries are checked against their manifest.
        return out
    if len(raw) != expected:
        raise FrameStoreCorruptError(
            f"frame store chunk {path} decodes to {len(raw)} bytes, expected {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


class _ChunkMissing(FrameStoreCorruptError):
    """A chunk file of an opened entry is not there."""


def uncommit(entry: str) -> None:
    """Take a complete entry out of use after one of its chunks failed its check on read: a
    local entry loses its manifest (what makes it complete; ``ensure`` replaces the folder
    under the key's lock, ``prune`` removes it); a URL entry is removed if its manifest still
    names this data directory. Other processes reading it fail the same way, never read
    wrong frames."""
    with contextlib.suppress(OSError, FrameStoreError, ValueError):
        if roots.is_url(entry):
            fs, path = storage.filesystem(entry)
            path, data = path.rsplit("/", 1)
            remove_entry(fs, path, data=data)
            return
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | storage._NOFOLLOW)
        try:
            os.unlink(MANIFEST, dir_fd=fd)
        finally:
            os.close(fd)


def read_frames(entry: str, name: str, index: slice | np.ndarray) -> np.ndarray:
    """Frames at ``index`` (a slice, or any frame numbers: repeated, unsorted) of array
    ``name`` of a complete entry; each chunk holding a wanted frame is read once.

    ``entry`` is the entry's local directory or the URL of its data directory. A missing or
    corrupt chunk raises :class:`FrameStoreCorruptError` naming the file (never fill values).
    """
    files = chunk_files(str(entry), name)
    if not files.direct:  # an entry written with other codecs: Zarr decodes it
        array = open_entry_array(str(entry), name)
        if isinstance(index, slice):
            return np.asarray(array[index])
        wanted, inverse = np.unique(np.asarray(index), return_inverse=True)
        return np.asarray(array.oindex[wanted])[inverse.ravel()]
    if isinstance(index, slice):
        frames = np.arange(files.shape[0])[index]
    else:
        frames = np.asarray(index, dtype=np.int64).ravel()
        if frames.size and (frames.min() < 0 or frames.max() >= files.shape[0]):
            raise IndexError(f"frame index out of range 0..{files.shape[0] - 1} for {entry}")
    out = np.empty((len(frames), *files.shape[1:]), dtype=np.uint8)
    if not len(frames):
        return out
    order = np.argsort(frames, kind="stable")
    ordered = frames[order]
    bounds = np.flatnonzero(np.diff(ordered // files.chunk)) + 1
    for group in np.split(np.arange(len(ordered)), bounds):
        t = int(ordered[group[0]] // files.chunk)
        rows = ordered[group] - t * files.chunk
        # a run: in order, each frame once, no gap (duplicates and gaps can cancel out in a
        # span check: [0, 0, 2])
        run = np.array_equal(order[group], group) and bool(np.all(np.diff(rows) == 1))
        if run and len(rows) == files.chunk:  # the whole chunk, in order: decode in place
            read_chunk_file(files, t, out[group[0] : group[-1] + 1])
            continue
        data = read_chunk_file(files, t)
        if run:
            out[group[0] : group[-1] + 1] = data[rows[0] : rows[-1] + 1]  # one copy
        else:
            out[order[group]] = data[rows]
    return out


def read_entry_chunk(entry: str, name: str, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of array ``name`` of a stored entry (a read task)."""
    return read_frames(entry, name, slice(start, stop))


def read_task_array(
    entry: str, name: str, n: int, chunk: int, inner: tuple[int, ...], graph_name: str
) -> da.Array:
    """A dask array whose tasks read time-chunks of ``entry``'s array ``name``."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    zeros = (0,) * len(inner)
    dsk: dict[Any, Any] = {
        (graph_name, i, *zeros): (read_entry_chunk, entry, name, start, stop)
        for i, (start, stop) in enumerate(bounds)
    }
    chunks = (tuple(b - a for a, b in bounds), *((d,) for d in inner))
    graph = HighLevelGraph.from_collections(graph_name, dsk, dependencies=())
    meta = np.empty((0,) * (1 + len(inner)), dtype=np.uint8)
    return da.Array(graph, graph_name, chunks, dtype=np.uint8, meta=meta)
