"""The content-keyed Zarr v3 frame store: each GIF decoded once, streamed into time-chunks.

Layout under the store root (``giflab.framestore.root``)::

    <key>/                      one complete entry (a Zarr v3 group), never modified after commit
        zarr.json               group attributes: sizes, frame count, loop, key, versions
        frames/                 (T, H, W, 3) uint8, chunked along time: c.0.0.0.0, c.1.0.0.0, ...
                                (zstd, then the CRC32C of the compressed bytes)
        alpha/                  (T, H, W) uint8, only where the GIF shows transparency
        durations_ms/           (T,) int32 declared frame delays (one chunk, c.0)
        giflab-manifest.json    size and BLAKE2b of every file above, written last
        giflab-access           appended one byte per open: size = hits, mtime = last use (LRU)
    .tmp-<key>-<uuid>/          an entry being written (renamed to <key>/ when complete)
    .trash-<key>-<uuid>/        an entry being removed (renamed away first, then deleted)
    .locks/<key>.lock           one decoder at a time per key, across processes

An entry exists only once its directory was renamed into place, and it is trusted only when its
manifest verifies, so a process killed mid-write leaves nothing that reads as complete. Nothing
under a local root is followed through a symlink (files are opened with ``O_NOFOLLOW`` below
the entry, ``storage.open_beneath``); every document read is size-capped and checked for shape;
housekeeping deletes only names this store writes (content keys, ``.tmp-``, ``.trash-``). A
chunk that fails its CRC32C on read uncommits its entry (the manifest goes), so the next
``ensure`` decodes the GIF again. Every
chunk is written (even all-zero ones) and reads go through a store that treats a missing chunk as
corruption, because Zarr would otherwise return fill values for it silently.

A root that is an fsspec URL (``s3://bucket/frames``; see ``storage.py``) has no rename and no
file locks, so there each writer writes into a directory of its own and publishes it with the
manifest, written last as one object (DESIGN decision 30)::

    <key>/
        giflab-manifest.json    names the data directory and lists its files: the commit
        w-<time_ns>-<uuid>/     one writer's complete Zarr v3 group (layout as above)
        giflab-access           {"last_access": ..., "opens": ...} rewritten per open (LRU)

The first manifest wins (a conditional put where the filesystem has one); a losing writer
deletes its own directory. Directories no manifest names (writers that died, or lost without
a conditional put) are deleted by ``prune``/``clear`` once older than the longest a decode may
take.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import FsspecStore, LocalStore

from giflab_dask import config, storage
from giflab_dask.decode import GifLayout, iter_frames, scan_gif
from giflab_dask.errors import (
    CacheFileError,
    CacheIntegrityWarning,
    CacheWriteError,
    FrameStoreCorruptError,
    FrameStoreError,
)
from giflab_dask.keys import DECODER_VERSION, LAYOUT_VERSION, GifSource

if TYPE_CHECKING:
    import dask.array as da
    from fsspec import AbstractFileSystem

__all__ = ["EntryInfo", "FrameStore", "StoredGif", "chunk_frames_for", "decode_gif", "open_frames"]

MANIFEST = "giflab-manifest.json"
ACCESS = "giflab-access"
_LOCKS = ".locks"
_TMP = ".tmp-"
_TRASH = ".trash-"
_DATA = "w-"
_VERIFY_MODES = ("checksum", "size", "none")
#: An entry's folder name: a content key (``keys.key_from_digest``, 32 hex digits).
_KEY_NAME = re.compile(r"[0-9a-f]{32}")
#: A file name inside an entry: plain components, no ``..``, not absolute, at most 8 deep.
_ENTRY_FILE = re.compile(r"(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,7}")
#: The largest metadata document (``zarr.json``) a read accepts; ours are ~1 KB.
_MAX_METADATA_BYTES = 2**20
#: The largest manifest a read accepts: one line of ~80 bytes per file, a file per chunk.
_MAX_MANIFEST_BYTES = 256 * 2**20


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


def _zarr_store(entry: str | Path) -> LocalStore | FsspecStore:
    """A read-only, strict Zarr store of an entry's group: a local path or an fsspec URL."""
    if storage.is_url(entry):
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
    return zarr.open_array(store=_zarr_store(entry), path=name, mode="r", zarr_format=3)


@dataclass(frozen=True)
class _ChunkFiles:
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


@functools.lru_cache(maxsize=64)
def _chunk_files(entry: str, name: str) -> _ChunkFiles:
    """How to read array ``name`` of an entry: from its metadata document when it is the one
    this layout writes (no Zarr array to open: ~1 ms each, per entry and process), else from
    the array Zarr opens (any other codecs or chunk keys; ``direct`` only for the layout's
    codecs)."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec
    from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

    fs, fs_base = storage.filesystem(f"{entry}/{name}") if storage.is_url(entry) else (None, "")
    try:
        raw = (
            fs.cat_file(f"{fs_base}/zarr.json", start=0, end=_MAX_METADATA_BYTES)
            if fs
            else storage.read_beneath(Path(entry), f"{name}/zarr.json", _MAX_METADATA_BYTES)
        )
        doc = json.loads(raw)
        shape = tuple(int(v) for v in doc["shape"])
        chunks = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        ours = (
            name in ("frames", "alpha")
            and min(shape, default=0) >= 0
            and min(chunks, default=0) >= 1
            and doc == _layout_document(name, doc, shape, chunks)
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        ours = False  # Zarr opens it below and says what is wrong
    if ours:
        encode_key = parse_chunk_key_encoding(doc["chunk_key_encoding"]).encode_chunk_key
        return _ChunkFiles(
            base=f"{entry}/{name}", entry=entry, name=name, fs=fs, fs_base=fs_base, shape=shape,
            chunk=chunks[0], zero=(0,) * (len(shape) - 1), encode_key=encode_key, direct=True,
        )  # fmt: skip
    array = open_entry_array(entry, name)
    codecs = array.metadata.codecs
    direct = (
        len(codecs) == 3
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], ZstdCodec)
        and not codecs[1].checksum
        and isinstance(codecs[2], Crc32cCodec)
        and array.dtype == np.uint8
    )
    return _ChunkFiles(
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


def _decode_chunk_bytes(data: bytes, path: str, out: np.ndarray | None = None) -> Any:
    """A chunk file's bytes (``zstd`` then ``crc32c``) decoded, into ``out`` if given; the
    CRC32C is checked first, so a flipped or truncated file raises naming ``path``."""
    import google_crc32c
    from numcodecs import Zstd

    body = np.frombuffer(data, dtype=np.uint8)[:-4]  # no copy
    if len(data) < 4 or google_crc32c.value(body) != int.from_bytes(data[-4:], "little"):
        raise FrameStoreCorruptError(f"frame store chunk {path} is corrupt: CRC32C mismatch")
    try:
        return Zstd().decode(body, out=out)
    except (RuntimeError, ValueError) as exc:  # not a zstd frame, a wrong size
        raise FrameStoreCorruptError(f"frame store chunk {path} is corrupt: {exc}") from None


def _read_chunk_file(files: _ChunkFiles, t: int, out: np.ndarray | None = None) -> np.ndarray:
    """Chunk ``t`` decoded straight from its file (into ``out``, a whole chunk, if given):
    Zarr's read path costs about twice as much per chunk (its async store and codec
    pipeline), and reads are most of a warm run. The file's trailing CRC32C (Zarr's ``crc32c``
    codec) is checked before decoding.

    A chunk that fails the check is read once more (a writer may have replaced the entry in
    between); if it fails again its entry is uncommitted (:func:`_uncommit`) so the next
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
        _uncommit(files.entry)
        raise FrameStoreCorruptError(
            f"{first}; the entry was removed and the GIF is decoded again on the next run"
        ) from None


def _decode_chunk_file(files: _ChunkFiles, t: int, out: np.ndarray | None) -> np.ndarray:
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
    raw = _decode_chunk_bytes(data, path, out)
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


def _uncommit(entry: str) -> None:
    """Take a complete entry out of use after one of its chunks failed its check on read: a
    local entry loses its manifest (what makes it complete; ``ensure`` replaces the folder
    under the key's lock, ``prune`` removes it); a URL entry is removed if its manifest still
    names this data directory. Other processes reading it fail the same way, never read
    wrong frames."""
    with contextlib.suppress(OSError, FrameStoreError, ValueError):
        if storage.is_url(entry):
            root, key, data = entry.rsplit("/", 2)
            FsspecFrameStore(root).remove(key, data=data)
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
    files = _chunk_files(str(entry), name)
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
            _read_chunk_file(files, t, out[group[0] : group[-1] + 1])
            continue
        data = _read_chunk_file(files, t)
        if run:
            out[group[0] : group[-1] + 1] = data[rows[0] : rows[-1] + 1]  # one copy
        else:
            out[order[group]] = data[rows]
    return out


def _read_entry_chunk(entry: str, name: str, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of array ``name`` of a stored entry (a read task)."""
    return read_frames(entry, name, slice(start, stop))


def chunk_frames_for(height: int, width: int, chunk_mib: float | None = None) -> int:
    """Frames per time-chunk so a chunk of RGB frames is about ``chunk_mib`` MiB (at least 1)."""
    mib = float(chunk_mib if chunk_mib is not None else config.get("framestore.chunk-mib"))
    if mib <= 0:
        raise FrameStoreError(f"giflab.framestore.chunk-mib must be positive, got {mib}")
    frame_bytes = max(1, height * width * 3)
    return max(1, int(mib * 2**20 // frame_bytes))


@dataclass(frozen=True)
class StoredGif:
    """A complete, verified frame-store entry: metadata plus lazy dask views of its arrays."""

    key: str
    #: the entry's directory (local root) or the URL of its data directory (URL root)
    path: Path | str
    n_frames: int
    height: int
    width: int
    chunk_frames: int
    has_alpha: bool
    loop: int | None
    durations_ms: np.ndarray
    attrs: dict[str, Any]

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("giflab-stored-gif", self.key)

    @classmethod
    def from_documents(
        cls, key: str, path: Path | str, read: Callable[[str], bytes]
    ) -> StoredGif | None:
        """The entry from its metadata documents and its durations chunk, read with ``read``
        (a path relative to the entry -> its bytes), without Zarr; None when the durations
        array is not exactly as this layout writes it (then :meth:`from_group` reads it).

        Opening the group and reading ``durations_ms`` through Zarr cost 3.6-4.5 ms per
        entry here (its async store and codec pipeline, for a few hundred bytes), against
        ~0.3 ms, paid by every decode (the entry is opened once written) and every process
        that opens the entry.
        """
        attrs = _valid_attrs(json.loads(read("zarr.json"))["attributes"]["giflab"])
        n, h, w = attrs["n_frames"], attrs["height"], attrs["width"]
        arrays = {"frames": (n, h, w, 3), **({"alpha": (n, h, w)} if attrs["has_alpha"] else {})}
        for name, shape in arrays.items():
            if json.loads(read(f"{name}/zarr.json")).get("shape") != list(shape):
                raise FrameStoreCorruptError(f"{path}/{name}/zarr.json: shape is not {shape}")
        doc = json.loads(read("durations_ms/zarr.json"))
        if doc != _layout_document("durations_ms", doc, (n,), (n,)):
            return None
        from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

        chunk_key = parse_chunk_key_encoding(doc["chunk_key_encoding"]).encode_chunk_key((0,))
        rel = f"durations_ms/{chunk_key}"
        raw = _decode_chunk_bytes(read(rel), f"{path}/{rel}")
        durations = np.frombuffer(raw, dtype="<i4")
        if len(durations) != n:
            raise FrameStoreCorruptError(
                f"frame store chunk {path}/{rel} holds {len(durations)} durations, expected {n}"
            )
        return cls._from_attrs(key, path, attrs, durations.astype(np.int32))

    @classmethod
    def _from_attrs(
        cls, key: str, path: Path | str, attrs: dict[str, Any], durations_ms: np.ndarray
    ) -> StoredGif:
        return cls(
            key=key,
            path=path,
            n_frames=int(attrs["n_frames"]),
            height=int(attrs["height"]),
            width=int(attrs["width"]),
            chunk_frames=int(attrs["chunk_frames"]),
            has_alpha=bool(attrs["has_alpha"]),
            loop=attrs["loop"],
            durations_ms=durations_ms,
            attrs=attrs,
        )

    @property
    def distinct_frames(self) -> int:
        """Frames a viewer can tell apart: the first and each that differs from the one before."""
        return int(self.attrs["distinct_frames"])

    @classmethod
    def from_group(cls, key: str, path: Path | str, group: zarr.Group) -> StoredGif:
        """The entry described by an open Zarr group (its ``giflab`` attributes)."""
        attrs = _valid_attrs(group.attrs["giflab"])
        durations = np.asarray(group["durations_ms"][...], dtype=np.int32)
        return cls._from_attrs(key, path, attrs, durations)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n_frames, self.height, self.width, 3)

    def _lazy(self, name: str, tag: str) -> da.Array:
        # Each read task reads its chunk files by path or URL on the worker that runs it (with
        # that worker's giflab.storage-options), so neither frames nor a filesystem object
        # holding credentials travel in the graph.
        inner = self.shape[1:] if name == "frames" else self.shape[1:3]
        return _read_task_array(
            str(self.path),
            name,
            self.n_frames,
            self.chunk_frames,
            inner,
            _name(name, self.key, tag),
        )

    def frames(self, tag: str = "") -> da.Array:
        """Lazy ``(T, H, W, 3)`` uint8 frames chunked like the store, named ``gif-frames-<key>``.

        ``tag`` gives the read tasks a name of their own (``gif-frames-<key>-<tag>``): a batch
        reads each GIF once per pair, so no chunk waits in memory for another pair's turn.
        """
        return self._lazy("frames", tag)

    def alpha(self, tag: str = "") -> da.Array | None:
        """Lazy ``(T, H, W)`` uint8 alpha (255 opaque); None when the GIF is opaque throughout."""
        if not self.has_alpha:
            return None
        return self._lazy("alpha", tag)


def _valid_attrs(attrs: Any) -> dict[str, Any]:
    """An entry's ``giflab`` attributes, checked for the types and ranges readers rely on
    (a planted ``zarr.json`` must not reach them as a zero chunk length or a string)."""

    def count(value: Any, low: int = 0) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not isinstance(attrs, dict):
        raise FrameStoreCorruptError("the entry's giflab attributes are not an object")
    n, chunk = attrs.get("n_frames"), attrs.get("chunk_frames")
    problems = [
        name
        for name in ("n_frames", "height", "width", "chunk_frames")
        if not count(attrs.get(name))
    ]
    if not problems and not (1 if n else 0) <= chunk <= n:
        problems.append("chunk_frames")
    if not isinstance(attrs.get("has_alpha"), bool):
        problems.append("has_alpha")
    if attrs.get("loop") is not None and not count(attrs.get("loop")):
        problems.append("loop")
    distinct = attrs.get("distinct_frames", 0)
    if "n_frames" not in problems and not (count(distinct) and distinct <= n):
        problems.append("distinct_frames")
    for name in ("created", "decode_seconds"):  # read by the run summary
        value = attrs.get(name, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            problems.append(name)
    if problems:
        raise FrameStoreCorruptError(f"the entry's attributes {', '.join(problems)} are invalid")
    return dict(attrs)


def _manifest_problem(manifest: Any, key: str) -> str | None:
    """Why a parsed manifest cannot describe entry ``key`` (None when it can): every file a
    name inside the entry with a size and a BLAKE2b-128, ``nbytes`` a byte count."""
    if not isinstance(manifest, dict):
        return "the manifest is not a JSON object"
    if manifest.get("layout_version") != LAYOUT_VERSION:
        return f"layout version {manifest.get('layout_version')!r} != {LAYOUT_VERSION}"
    if manifest.get("key") != key:
        return f"the manifest is for key {manifest.get('key')!r}"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "the manifest lists no files"
    for rel, record in files.items():
        if not _ENTRY_FILE.fullmatch(rel) or rel in (MANIFEST, ACCESS):
            return f"the manifest lists {rel!r}, not a name inside the entry"
        if not (
            isinstance(record, list)
            and len(record) == 2
            and isinstance(record[0], int)
            and not isinstance(record[0], bool)
            and record[0] >= 0
            and isinstance(record[1], str)
            and re.fullmatch(r"[0-9a-f]{32}", record[1])
        ):
            return f"the manifest's record of {rel!r} is not [size, digest]"
    for rel in ("zarr.json", "frames/zarr.json", "durations_ms/zarr.json"):
        if rel not in files:
            return f"the manifest does not list {rel}"
    nbytes = manifest.get("nbytes")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        return f"the manifest's nbytes ({nbytes!r}) is not a byte count"
    return None


def _name(array: str, key: str, tag: str) -> str:
    return f"gif-{array}-{key}-{tag}" if tag else f"gif-{array}-{key}"


def _read_task_array(
    entry: str, name: str, n: int, chunk: int, inner: tuple[int, ...], graph_name: str
) -> da.Array:
    """A dask array whose tasks read time-chunks of ``entry``'s array ``name``."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    zeros = (0,) * len(inner)
    dsk = {
        (graph_name, i, *zeros): (_read_entry_chunk, entry, name, start, stop)
        for i, (start, stop) in enumerate(bounds)
    }
    chunks = (tuple(b - a for a, b in bounds), *((d,) for d in inner))
    graph = HighLevelGraph.from_collections(graph_name, dsk, dependencies=())
    meta = np.empty((0,) * (1 + len(inner)), dtype=np.uint8)
    return da.Array(graph, graph_name, chunks, dtype=np.uint8, meta=meta)


@dataclass(frozen=True)
class EntryInfo:
    key: str
    path: Path | str
    nbytes: int
    last_access: float
    hits: int


def _configured_max_bytes() -> int | None:
    return config.parse_bytes(config.get("framestore.max-bytes"), key="framestore.max-bytes")


@functools.lru_cache(maxsize=4)
def _metadata_templates(level: int) -> tuple[dict[str, dict[str, Any]], Any]:
    """Zarr's metadata documents for an entry's group and arrays at compression ``level``
    (made by Zarr, once per process; only shapes and chunk shapes differ between entries),
    and the arrays' chunk key encoding (chunk index -> key).

    Chunk keys use the ``.`` separator (``frames/c.3.0.0.0``): every chunk file of an array
    sits in the array's directory. Zarr's default ``/`` made three directories per chunk
    (``c/3/0/0/``), about 1.3 ms of ``mkdir`` per chunk on the writer thread here and 30
    directories per entry to create, rename and delete."""
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.storage import MemoryStore

    codec = (ZstdCodec(level=level, checksum=False), Crc32cCodec())
    flat = {"name": "default", "separator": "."}
    documents: dict[str, Buffer] = {}
    group = zarr.open_group(store=MemoryStore(documents), mode="w")
    frames = group.create_array(
        "frames", shape=(1, 1, 1, 3), chunks=(1, 1, 1, 3), dtype="uint8", compressors=codec,
        fill_value=0, dimension_names=("t", "y", "x", "c"), chunk_key_encoding=flat,
    )  # fmt: skip
    group.create_array(
        "alpha", shape=(1, 1, 1), chunks=(1, 1, 1), dtype="uint8", compressors=codec,
        fill_value=255, dimension_names=("t", "y", "x"), chunk_key_encoding=flat,
    )  # fmt: skip
    group.create_array(
        "durations_ms", shape=(1,), chunks=(1,), dtype="int32", compressors=codec,
        chunk_key_encoding=flat,
    )  # fmt: skip
    templates = {
        rel: json.loads(buf.to_bytes()) for rel, buf in documents.items() if rel.endswith(".json")
    }
    return templates, frames.metadata.encode_chunk_key


def _layout_document(
    name: str, doc: dict[str, Any], shape: tuple[int, ...], chunks: tuple[int, ...]
) -> dict[str, Any]:
    """The metadata document this layout writes for array ``name`` of the given shape and
    chunk shape, at the compression level ``doc`` names (a document equal to it describes
    chunks :func:`_decode_chunk_bytes` decodes exactly)."""
    try:
        level = int(next(c for c in doc["codecs"] if c["name"] == "zstd")["configuration"]["level"])
    except (KeyError, TypeError, ValueError, StopIteration):
        return {}
    templates, _ = _metadata_templates(level)
    ref = copy.deepcopy(templates[f"{name}/zarr.json"])
    ref["shape"] = list(shape)
    ref["chunk_grid"]["configuration"]["chunk_shape"] = list(chunks)
    return ref


#: root -> bytes this process has written there since it last pruned it (absent: never pruned)
_WRITTEN_SINCE_PRUNE: dict[str, int] = {}
_PRUNE_STATE_LOCK = threading.Lock()
#: share of ``max-bytes`` a process may write between two size checks of the store
PRUNE_SLACK = 1 / 64


def _due_for_prune(root: Path, written: int, max_bytes: int) -> bool:
    """Whether a write of ``written`` bytes should be followed by a size check of the store.

    A check lists every entry (a manifest read each), so checking after every decode made a
    batch of N new GIFs cost O(N^2) reads of the store. The first write of a process checks;
    later ones when the process has written ``max-bytes x PRUNE_SLACK`` since its last check
    (like ccache's cleanup): the store stays within ``max-bytes`` plus that much per writing
    process.
    """
    key = str(root)
    with _PRUNE_STATE_LOCK:
        since = _WRITTEN_SINCE_PRUNE.get(key)
        if since is None or since + written >= max_bytes * PRUNE_SLACK:
            _WRITTEN_SINCE_PRUNE[key] = 0
            return True
        _WRITTEN_SINCE_PRUNE[key] = since + written
        return False


def _same_frame(
    previous: tuple[np.ndarray, np.ndarray], rgb: np.ndarray, alpha: np.ndarray
) -> bool:
    """Whether a frame shows exactly what the one before showed (the decoder keeps transparent
    pixels at RGB 0, so equal arrays are equal frames)."""
    return np.array_equal(previous[1], alpha) and np.array_equal(previous[0], rgb)


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _manifest(key: str, files: dict[str, tuple[int, str]], **extra: Any) -> dict[str, Any]:
    return {
        "layout_version": LAYOUT_VERSION,
        "key": key,
        **extra,
        "nbytes": sum(size for size, _ in files.values()),
        "files": dict(sorted(files.items())),
    }


class _EntryWriter:
    """Writes an entry's files, recording the size and BLAKE2b-128 of each as it goes."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str]] = {}

    def put(self, rel: str, data: bytes) -> None:
        self._write(rel, data)
        self.files[rel] = (len(data), _digest(data))

    def _write(self, rel: str, data: bytes) -> None:
        raise NotImplementedError


class _DirWriter(_EntryWriter):
    """Into a local (temporary) directory."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self._made: set[Path] = set()

    def _write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        with path.open("wb") as f:
            f.write(data)


class _FsspecWriter(_EntryWriter):
    """Into a directory of an fsspec filesystem (one PUT per file on an object store)."""

    def __init__(self, fs: AbstractFileSystem, root: str) -> None:
        super().__init__()
        self.fs = fs
        self.root = root

    def _write(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{rel}", data)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _resolve_root(root: str | os.PathLike[str] | None) -> Path | str:
    return storage.as_root(root) if root is not None else config.framestore_root()


class FrameStore:
    """Content-keyed cache of decoded GIF frames (see the module docstring for the layout).

    ``root`` (default ``giflab.framestore.root``) is a local directory, or an fsspec URL such
    as ``s3://bucket/frames``, for which the instance is a :class:`FsspecFrameStore`.
    """

    root: Path

    def __new__(cls, root: str | os.PathLike[str] | None = None) -> FrameStore:
        if cls is FrameStore and storage.is_url(_resolve_root(root)):
            cls = FsspecFrameStore
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        resolved = _resolve_root(root)
        assert isinstance(resolved, Path)  # URL roots are FsspecFrameStore (see __new__)
        self.root = resolved
        config.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"FrameStore({str(self.root)!r})"

    def __getnewargs__(self) -> tuple[str]:
        # unpickling calls __new__, which picks the class from the root
        return (str(self.root),)

    # -- paths and locks -------------------------------------------------------------------
    def entry_path(self, key: str) -> Path:
        return self.root / key

    def _lock(self, key: str, timeout: float | None = None) -> Any:
        from filelock import FileLock

        locks = self.root / _LOCKS
        while not storage.real_dir(locks):
            try:
                locks.mkdir(parents=True)
            except FileExistsError:
                # Another process made the folder meanwhile (the loop sees it), or a link or
                # file was planted there: the name is the store's, so that goes.
                if not storage.real_dir(locks):
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        locks.unlink()
        lock = locks / f"{key}.lock"
        if lock.is_symlink():
            lock.unlink(missing_ok=True)
        wait = float(config.get("framestore.lock-timeout")) if timeout is None else timeout
        return FileLock(str(lock), timeout=wait)

    # -- reading ---------------------------------------------------------------------------
    def open(self, key: str, *, verify: str | None = None) -> StoredGif | None:
        """The stored entry for ``key`` if present and intact, else None.

        An entry that fails verification is reported once (:class:`CacheIntegrityWarning`) and
        removed, so the caller rebuilds it. Nothing is followed through a symlink, the manifest
        is checked for shape before use, and every file read is capped at its listed size.
        """
        path = self.entry_path(key)
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            raw = storage.read_beneath(path, MANIFEST, _MAX_MANIFEST_BYTES) if is_dir else b""
        except FileNotFoundError:
            return None  # absent, or not committed (see _uncommit)
        except (OSError, CacheFileError) as exc:
            raw, is_dir, unreadable = b"", True, f"unreadable manifest ({exc})"
        else:
            unreadable = None if is_dir else "a symbolic link or a file, not a folder: not followed"
        mode = verify or config.choice("framestore.verify", _VERIFY_MODES)
        stored = None
        problem = unreadable
        if problem is None:
            try:
                manifest = json.loads(raw)
                problem = _manifest_problem(manifest, key) or self._check(path, manifest, mode)
                stored = None if problem else self._load(key, path, manifest["files"])
            except (
                OSError,
                ValueError,
                KeyError,
                TypeError,
                AttributeError,
                RecursionError,
            ) as exc:
                problem = f"unreadable metadata ({type(exc).__name__}: {str(exc)[:300]})"
        if problem or stored is None:
            warnings.warn(
                CacheIntegrityWarning(
                    f"frame store entry {path} failed verification ({problem}); rebuilding it"
                ),
                stacklevel=2,
            )
            self.remove(key)
            return None
        self._touch(path)
        return stored

    def _check(self, path: Path, manifest: dict[str, Any], mode: str) -> str | None:
        if mode == "none":
            return None
        for rel, (size, digest) in manifest["files"].items():
            try:
                fd = storage.open_beneath(path, rel, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except FileNotFoundError:
                return f"{rel} is missing"
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    return f"{rel} is not a regular file"
                if st.st_size != size:
                    return f"{rel} has {st.st_size} bytes, expected {size}"
                if mode == "checksum" and _hash_fd(fd) != digest:
                    return f"{rel} does not match its checksum"
            finally:
                os.close(fd)
        return None

    def _load(self, key: str, path: Path, files: dict[str, Any]) -> StoredGif:
        stored = StoredGif.from_documents(key, path, _listed_reader(path, files))
        if stored is not None:
            return stored
        group = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
        return StoredGif.from_group(key, path, group)

    def _touch(self, path: Path) -> None:
        # O_APPEND writes are atomic across processes: the file's size counts hits. Never
        # through a link: a planted giflab-access must not make every open append elsewhere.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        with contextlib.suppress(OSError, CacheFileError):
            fd = storage.open_beneath(path, ACCESS, flags | getattr(os, "O_NONBLOCK", 0), 0o644)
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.write(fd, b".")
            finally:
                os.close(fd)

    # -- writing ---------------------------------------------------------------------------
    def ensure(self, source: GifSource | str | os.PathLike[str]) -> StoredGif:
        """The stored entry of a GIF, decoding it first if the store lacks it (or it is broken).

        Concurrent callers for the same content (threads or processes) decode it once: the
        others wait on the key's lock and then read the finished entry.
        """
        if not isinstance(source, GifSource):
            source = GifSource.from_path(source)
        stored = self.open(source.key)
        if stored is not None:
            return stored
        try:
            with self._lock(source.key):
                stored = self.open(source.key)  # someone else may have finished meanwhile
                if stored is not None:
                    return stored
                self._remove_stale_temps(source.key)
                self._remove_uncommitted(source.key)
                stored, written = self._write_local(source)
        except OSError as exc:  # reading the GIF raises GifDecodeError: this is the store
            if isinstance(exc, TimeoutError):  # filelock.Timeout: another decoder holds it
                raise
            raise CacheWriteError("frame store", self.root, exc.strerror or str(exc)) from exc
        max_bytes = _configured_max_bytes()
        if max_bytes is not None and _due_for_prune(self.root, written, max_bytes):
            self.prune(max_bytes, keep={source.key})
        return stored

    def _write_local(self, source: GifSource) -> tuple[StoredGif, int]:
        """Decode ``source`` into a new entry: the entry and the bytes its files hold."""
        layout = scan_gif(source.path)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP}{source.key}-{uuid.uuid4().hex}"
        try:
            out = _DirWriter(tmp)
            self._write_entry(out, source, layout)
            self._write_manifest(tmp, source.key, out.files)
            final = self.entry_path(source.key)
            try:
                tmp.rename(final)
            except OSError:
                if not (final / MANIFEST).is_file():
                    raise
                # Another writer committed the same content first; theirs is as good as ours.
            _fsync_dir(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        stored = self.open(source.key, verify="size")
        if stored is None:
            raise FrameStoreError(f"frame store entry for {source.path} vanished after writing")
        return stored, sum(size for size, _ in out.files.values())

    def _write_entry(self, out: _EntryWriter, source: GifSource, layout: GifLayout) -> None:
        """Decode ``source`` and write every file of its entry through ``out``.

        The metadata documents are Zarr's own for these arrays (:func:`_metadata_templates`:
        made by Zarr once per process, shape and chunk shape filled in per entry; creating the
        arrays through Zarr cost ~7 ms per entry, a third of a tiny GIF's decode). The chunks
        are encoded here into exactly the bytes Zarr would write for the ``bytes`` + ``zstd``
        + ``crc32c`` codec chain (numcodecs' Zstd, which Zarr's ZstdCodec wraps, then the
        CRC32C of the compressed bytes), edge chunks padded to the full chunk shape with the
        fill value as Zarr pads them. zstd's own content checksum (an xxHash of the 8 MiB of
        pixels) cost about 28% of compressing a chunk and 25% of decompressing one; a CRC32C
        of the compressed bytes (~100 KB) guards the same file for about 0.01 ms. Going
        through ``Array.__setitem__`` cost about 7 ms of Python per chunk on the writer
        thread, which competed with the decoder for the GIL; ``out`` hashes each file as it
        is written, so the manifest needs no re-read.
        """
        import google_crc32c
        from numcodecs import Zstd

        started = time.perf_counter()
        n, h, w = layout.n_frames, layout.height, layout.width
        chunk = min(chunk_frames_for(h, w), n)
        level = int(config.get("framestore.compression-level"))
        templates, encode_key = _metadata_templates(level)
        zstd = Zstd(level=level, checksum=False)

        def encode(data: np.ndarray) -> bytes:
            body = zstd.encode(data)
            return body + google_crc32c.value(body).to_bytes(4, "little")

        def put_chunk(name: str, t: int, data: np.ndarray) -> None:
            out.put(f"{name}/{encode_key((t,) + (0,) * (data.ndim - 1))}", encode(data))

        durations = np.ascontiguousarray(layout.durations_ms, dtype="<i4")
        out.put(f"durations_ms/{encode_key((0,))}", encode(durations))  # one chunk: all n

        # Frames are copied into one of two chunk buffers; a full buffer is compressed and
        # written by a writer thread (zstd and file writes release the GIL) while the decoder
        # fills the other. Memory: two chunks, whatever the frame count.
        buffers = [
            (np.empty((chunk, h, w, 3), dtype=np.uint8), np.empty((chunk, h, w), dtype=np.uint8))
            for _ in range(2)
        ]
        pending: list[Future[bool]] = [Future(), Future()]
        for fut in pending:
            fut.set_result(False)

        # The alpha array is created only when a frame first shows transparency (most GIFs
        # never do); earlier chunks are then written as opaque. flush() runs in order on the
        # single writer thread, so this state needs no lock.
        alpha = False

        def flush(which: int, start: int, filled: int) -> bool:
            nonlocal alpha
            rgb, a = buffers[which]
            if filled < chunk:  # the last chunk: pad with the fill values, as Zarr does
                rgb[filled:] = 0
                a[filled:] = 255
            t = start // chunk
            put_chunk("frames", t, rgb)
            if not alpha and a[:filled].min() == 255:
                return False
            if not alpha:
                alpha = True
                opaque = encode(np.full((chunk, h, w), 255, dtype=np.uint8))
                for s in range(t):
                    out.put(f"alpha/{encode_key((s, 0, 0))}", opaque)
            put_chunk("alpha", t, a)
            return True

        has_alpha = False
        start = filled = which = repeats = 0
        previous: tuple[np.ndarray, np.ndarray] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gif-write") as writer:
            for rgb, a in iter_frames(source.path, layout):
                if filled == 0:
                    has_alpha |= pending[which].result()  # buffer free again; errors surface
                if previous is not None and _same_frame(previous, rgb, a):
                    repeats += 1
                buffers[which][0][filled] = rgb
                buffers[which][1][filled] = a
                # (the other buffer's last frame stays unchanged until this one is flushed)
                previous = buffers[which][0][filled], buffers[which][1][filled]
                filled += 1
                if filled == chunk:
                    pending[which] = writer.submit(flush, which, start, filled)
                    start, filled, which = start + filled, 0, 1 - which
            if filled:
                pending[which] = writer.submit(flush, which, start, filled)
            for fut in pending:
                has_alpha |= fut.result()
        attrs = {
            "key": source.key,
            "source_name": source.path.name,
            "n_frames": n,
            "height": h,
            "width": w,
            "chunk_frames": chunk,
            "has_alpha": has_alpha,
            # frames a viewer can tell apart: the first, and each that differs from the one
            # before (an optimiser may merge the rest)
            "distinct_frames": n - repeats,
            "loop": layout.loop,
            "background_index": layout.background_index,
            "decoder_version": DECODER_VERSION,
            "layout_version": LAYOUT_VERSION,
            "created": time.time(),
            # what a later run saves by finding this entry (the run summary's "time saved")
            "decode_seconds": time.perf_counter() - started,
        }
        shapes = {"frames": ((n, h, w, 3), (chunk, h, w, 3)), "durations_ms": ((n,), (n,))}
        if alpha:
            shapes["alpha"] = ((n, h, w), (chunk, h, w))
        documents = {"zarr.json": {**templates["zarr.json"], "attributes": {"giflab": attrs}}}
        for name, (shape, chunks) in shapes.items():
            doc = copy.deepcopy(templates[f"{name}/zarr.json"])
            doc["shape"] = list(shape)
            doc["chunk_grid"]["configuration"]["chunk_shape"] = list(chunks)
            documents[f"{name}/zarr.json"] = doc
        for rel, doc in documents.items():
            out.put(rel, json.dumps(doc, indent=2).encode())

    def _write_manifest(self, tmp: Path, key: str, files: dict[str, tuple[int, str]]) -> None:
        # No fsync per chunk file: the manifest's checksums catch a torn file after a crash,
        # and only the manifest (written last, fsynced) makes an entry count as complete.
        manifest = _manifest(key, files)
        staging = tmp / f"{MANIFEST}.part"
        with staging.open("w", encoding="utf-8") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        staging.rename(tmp / MANIFEST)

    # -- housekeeping ----------------------------------------------------------------------
    def remove(self, key: str) -> bool:
        """Remove an entry atomically (renamed away first, so no reader sees a half-deleted one)."""
        path = self.entry_path(key)
        if not os.path.lexists(path):
            return False
        trash = self.root / f"{_TRASH}{key}-{uuid.uuid4().hex}"
        try:
            path.rename(trash)  # a link is renamed itself, never followed
        except FileNotFoundError:
            return False
        _delete(trash)
        return True

    def _remove_stale_temps(self, key: str) -> None:
        # Only called with the key's lock held: no live writer owns these.
        for stale in self.root.glob(f"{_TMP}{key}-*"):
            _delete(stale)

    def _remove_uncommitted(self, key: str) -> None:
        """Remove ``<root>/<key>`` when it is no complete entry (a folder without a manifest
        after :func:`_uncommit`, or anything else planted there). Only called with the key's
        lock held: writers rename complete folders into place under it."""
        path = self.entry_path(key)
        if os.path.lexists(path) and not (
            storage.real_dir(path) and os.path.lexists(path / MANIFEST)
        ):
            self.remove(key)

    def temporaries(self) -> int:
        """How many entries are being written (or were, by a process that died): ``prune``
        removes one only once no writer holds its key's lock."""
        if not storage.real_dir(self.root):
            return 0
        with os.scandir(self.root) as it:
            return sum(e.name.startswith(_TMP) for e in it)

    def _entry_names(self) -> list[str]:
        """Names in the root that are content keys (what this store names entries)."""
        if not storage.real_dir(self.root):
            return []
        with os.scandir(self.root) as it:
            return [e.name for e in it if _KEY_NAME.fullmatch(e.name)]

    def entries(self) -> list[EntryInfo]:
        """Complete entries (those with a manifest), least recently used first."""
        found = []
        for key in self._entry_names():
            path = self.entry_path(key)
            try:
                if not storage.real_dir(path):
                    continue
                manifest = json.loads(storage.read_beneath(path, MANIFEST, _MAX_MANIFEST_BYTES))
                if _manifest_problem(manifest, key):
                    continue  # open() reports and removes it
                st = os.lstat(path / MANIFEST)
                hits = 0
                with contextlib.suppress(FileNotFoundError):
                    access = os.lstat(path / ACCESS)
                    if stat.S_ISREG(access.st_mode):
                        st, hits = access, max(0, access.st_size - 1)
            except (OSError, ValueError, RecursionError):
                continue  # removed under us, or broken: open() deals with it
            found.append(EntryInfo(key, path, int(manifest["nbytes"]), st.st_mtime, hits))
        found.sort(key=lambda e: e.last_access)
        return found

    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries())

    def prune(self, max_bytes: int | None = None, *, keep: Iterable[str] = ()) -> list[str]:
        """Evict least recently used entries until the store holds at most ``max_bytes``.

        Also deletes leftovers of interrupted writes and removals. Entries in ``keep`` stay.
        Returns the evicted keys.
        """
        self._remove_leftovers()
        if max_bytes is None:
            max_bytes = _configured_max_bytes()
        if max_bytes is None:
            return []
        keep = set(keep)
        entries = self.entries()
        total = sum(e.nbytes for e in entries)
        evicted = []
        for entry in entries:
            if total <= max_bytes:
                break
            if entry.key in keep:
                continue
            if self.remove(entry.key):
                evicted.append(entry.key)
            total -= entry.nbytes
        return evicted

    def _remove_leftovers(self) -> None:
        """Delete what interrupted writes and removals left, and folders under a key's name
        that are no complete entry: only names this store gives (never another folder)."""
        if not storage.real_dir(self.root):
            return
        from filelock import Timeout

        with os.scandir(self.root) as it:
            names = [e.name for e in it]
        for name in names:
            if name.startswith(_TRASH):
                _delete(self.root / name)
                continue
            key = name[len(_TMP) :].split("-", 1)[0] if name.startswith(_TMP) else name
            if not _KEY_NAME.fullmatch(key):
                continue
            path = self.root / name
            if key == name and storage.real_dir(path) and os.path.lexists(path / MANIFEST):
                continue  # a complete entry
            try:
                with self._lock(key, timeout=0):
                    if name.startswith(_TMP):
                        _delete(self.root / name)
                    else:
                        self._remove_uncommitted(key)
            except Timeout:
                pass  # a live writer holds it

    def clear(self) -> int:
        """Remove every entry; returns how many complete entries were removed. Only folders
        named like content keys are entries: nothing else in the root is touched."""
        removed = 0
        for key in self._entry_names():
            complete = storage.real_dir(self.entry_path(key))
            if self.remove(key) and complete:
                removed += 1
        self._remove_leftovers()
        return removed


def _delete(path: Path) -> None:
    """Delete a folder tree, or a link or file in its place (never what a link points to)."""
    if storage.real_dir(path):
        shutil.rmtree(path, ignore_errors=True)  # rmtree does not follow links inside
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _hash_fd(fd: int) -> str:
    with os.fdopen(os.dup(fd), "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _hash_file(path: Path) -> str:
    with path.open("rb") as f:
        return _hash_fd(f.fileno())


def _listed_reader(base: Path, files: dict[str, Any]) -> Callable[[str], bytes]:
    """Reads a file of an entry by its name in the manifest, capped at the size listed."""

    def read(rel: str) -> bytes:
        if rel not in files:
            raise CacheFileError(f"{base}/{rel} is not listed in the entry's manifest")
        return storage.read_beneath(base, rel, int(files[rel][0]))

    return read


class FsspecFrameStore(storage.RemoteRoot, FrameStore):
    """A frame store on an fsspec URL (object store): no rename, no locks (DESIGN decision 30).

    Entries are immutable and content-keyed, so concurrent writers need no lock: each writes a
    data directory of its own and commits it by writing the manifest, one object, last. A
    reader sees an entry only through a manifest, which names a complete directory.
    """

    root: str  # type: ignore[assignment]

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._set_url_root(_resolve_root(root), FrameStoreError)

    def _p(self, *parts: str) -> str:
        """A path inside the filesystem (what fsspec calls take)."""
        self.fs  # noqa: B018 - resolves self._base
        return "/".join((self._base, *parts))

    def entry_path(self, key: str) -> str:  # type: ignore[override]
        return f"{self.root}/{key}"

    def _lock(self, key: str, timeout: float | None = None) -> Any:
        raise FrameStoreError(
            f"frame store {self.root}: an object store has no file locks (writers of the same "
            "entry do not need one there; see docs/design.md decision 30)"
        )

    # -- reading ---------------------------------------------------------------------------
    def _read_manifest(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.fs.cat_file(self._p(key, MANIFEST), start=0, end=_MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise ValueError(f"the manifest is larger than {_MAX_MANIFEST_BYTES} bytes")
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("the manifest is not a JSON object")
        return manifest

    def open(self, key: str, *, verify: str | None = None) -> StoredGif | None:
        """The stored entry for ``key`` if its manifest exists and verifies, else None.

        Verification defaults to ``giflab.framestore.verify-remote`` (``size``: one listing;
        ``checksum`` downloads and hashes every file). A failing entry is reported once and
        removed. Network errors are raised, never taken for a broken entry.
        """
        mode = verify or config.choice("framestore.verify-remote", _VERIFY_MODES)
        data = None
        try:
            manifest = self._read_manifest(key)
            if manifest is None:
                return None
            data = _data_name(manifest)
            problem = _manifest_problem(manifest, key) or self._check_remote(
                key, data, manifest, mode
            )
            stored = None if problem else self._load_remote(key, data, manifest["files"])
        except (
            FileNotFoundError, ValueError, KeyError, TypeError, AttributeError, RecursionError
        ) as exc:  # fmt: skip
            problem = f"unreadable metadata ({type(exc).__name__}: {exc})"
        if problem or stored is None:
            warnings.warn(
                CacheIntegrityWarning(
                    f"frame store entry {self.entry_path(key)} failed verification ({problem}); "
                    "rebuilding it"
                ),
                stacklevel=2,
            )
            self.remove(key, data=data)
            return None
        self._touch_remote(key)
        return stored

    def _check_remote(self, key: str, data: str, manifest: dict[str, Any], mode: str) -> str | None:
        if manifest.get("layout_version") != LAYOUT_VERSION:
            return f"layout version {manifest.get('layout_version')} != {LAYOUT_VERSION}"
        if mode == "none":
            return None
        base = self._p(key, data)
        self.fs.invalidate_cache(base)  # listings may be cached; other writers change them
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            found = {}
        strip = self.fs._strip_protocol(base)
        sizes = {name[len(strip) + 1 :]: info["size"] for name, info in found.items()}
        for rel, (size, digest) in manifest["files"].items():
            if rel not in sizes:
                return f"{rel} is missing"
            if sizes[rel] != size:
                return f"{rel} has {sizes[rel]} bytes, expected {size}"
            if mode == "checksum" and _digest(self.fs.cat_file(f"{base}/{rel}")) != digest:
                return f"{rel} does not match its checksum"
        return None

    def _load_remote(self, key: str, data: str, files: dict[str, Any]) -> StoredGif:
        url = f"{self.entry_path(key)}/{data}"
        base = self._p(key, data)

        def read(rel: str) -> bytes:  # only files the manifest lists, at most their size
            if rel not in files:
                raise CacheFileError(f"{url}/{rel} is not listed in the entry's manifest")
            return self.fs.cat_file(f"{base}/{rel}", start=0, end=int(files[rel][0]))

        stored = StoredGif.from_documents(key, url, read)
        if stored is not None:
            return stored
        # zarr_format=3: no probing for Zarr v2 files, each probe a request to the object store
        group = zarr.open_group(store=_zarr_store(url), mode="r", zarr_format=3)
        return StoredGif.from_group(key, url, group)

    def _touch_remote(self, key: str) -> None:
        # No appends on an object store: the marker is rewritten (read-modify-write, so
        # concurrent opens may count once; it only orders eviction).
        path = self._p(key, ACCESS)
        opens = 0
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            opens = int(json.loads(self.fs.cat_file(path, start=0, end=4096))["opens"])
        body = json.dumps({"last_access": time.time(), "opens": opens + 1}).encode()
        with contextlib.suppress(OSError):
            self.fs.pipe_file(path, body)

    # -- writing ---------------------------------------------------------------------------
    def ensure(self, source: GifSource | str | os.PathLike[str]) -> StoredGif:
        """The stored entry of a GIF, decoding it first if the store lacks it (or it is broken).

        Without locks two processes may both decode a GIF; the first manifest wins and the
        other writer's copy is discarded. Threads of one process decode it once. The size
        bound is not applied here (it would list the whole store per decode): run
        :meth:`prune` (``giflab-dask cache prune``) for URL roots.
        """
        if not isinstance(source, GifSource):
            source = GifSource.from_path(source)
        stored = self.open(source.key)
        if stored is not None:
            return stored
        name = f"{self.root}/{source.key}"
        lock = _PROCESS_LOCKS.setdefault(name, threading.Lock())
        try:
            with lock:
                stored = self.open(source.key)
                if stored is not None:
                    return stored
                return self._write(source)
        finally:
            _PROCESS_LOCKS.pop(name, None)  # later callers find the entry (or write again)

    def _write(self, source: GifSource) -> StoredGif:
        layout = scan_gif(source.path)
        data = f"{_DATA}{time.time_ns()}-{uuid.uuid4().hex}"
        base = self._p(source.key, data)
        out = _FsspecWriter(self.fs, base)
        try:
            self._write_entry(out, source, layout)
            manifest = _manifest(source.key, out.files, data=data)
            committed = self._commit(source.key, json.dumps(manifest).encode())
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(base, recursive=True)
            raise
        if not committed:
            # Another writer's manifest came first; its entry is as good as ours.
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(base, recursive=True)
        stored = self.open(source.key, verify="size")
        if stored is None:
            raise FrameStoreError(
                f"frame store entry for {source.path} vanished after writing "
                f"({self.entry_path(source.key)})"
            )
        return stored

    def _commit(self, key: str, manifest: bytes) -> bool:
        """Write the manifest unless one exists; False when another writer's came first."""
        path = self._p(key, MANIFEST)
        try:
            self.fs.pipe_file(path, manifest, mode="create")  # S3 If-None-Match, GCS, memory
        except FileExistsError:
            return False
        except (NotImplementedError, TypeError):
            # No conditional put here: a racing writer may replace our manifest with its own,
            # which names its own complete directory; ours is then collected as unreferenced.
            self.fs.invalidate_cache(self._p(key))
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, manifest)
        return True

    # -- housekeeping ----------------------------------------------------------------------
    def remove(self, key: str, *, data: str | None = None) -> bool:
        """Remove an entry: its manifest first (so no reader finds it), then its data.

        With ``data``, only if the manifest still names that data directory (a reader that
        found a broken entry must not remove the one a writer committed since).
        """
        try:
            manifest = self._read_manifest(key)
        except ValueError:
            manifest = {}
        if manifest is None:
            return False
        try:
            current: str | None = _data_name(manifest)
        except ValueError:
            current = None
        if data is not None and current is not None and current != data:
            return False
        try:
            self.fs.rm_file(self._p(key, MANIFEST))
        except FileNotFoundError:
            return False
        for name in (current, ACCESS):
            if name is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self._p(key, name), recursive=True)
        return True

    def _keys(self) -> list[str]:
        self.fs.invalidate_cache(self._base)
        try:
            listing = self.fs.ls(self._base, detail=False)
        except FileNotFoundError:
            return []
        names = (str(p).rstrip("/").rsplit("/", 1)[-1] for p in listing)
        return sorted(n for n in names if n and not n.startswith("."))

    def entries(self) -> list[EntryInfo]:
        """Complete entries (those with a manifest), least recently used first."""
        keys = self._keys()
        wanted = [self._p(k, name) for k in keys for name in (MANIFEST, ACCESS)]
        # one round of concurrent GETs on async filesystems such as s3fs
        cap = _MAX_MANIFEST_BYTES + 1
        blobs = self.fs.cat(wanted, on_error="omit", start=0, end=cap) if wanted else {}
        blobs = {self.fs._strip_protocol(k): v for k, v in blobs.items()}
        found = []
        for key in keys:
            raw = blobs.get(self.fs._strip_protocol(self._p(key, MANIFEST)))
            if raw is None:
                continue
            try:
                manifest = json.loads(raw)
                if len(raw) == cap or _manifest_problem(manifest, key):
                    continue  # broken: open() deals with it
                nbytes = int(manifest["nbytes"])
                created = _data_time(_data_name(manifest))
            except (ValueError, KeyError, TypeError, RecursionError):
                continue  # broken: open() deals with it
            last, hits = created, 0
            access = blobs.get(self.fs._strip_protocol(self._p(key, ACCESS)))
            with contextlib.suppress(ValueError, KeyError, TypeError):
                marker = json.loads(access) if access is not None else None
                if marker is not None:
                    last = float(marker["last_access"])
                    hits = max(0, int(marker["opens"]) - 1)  # the writer's own open
            found.append(EntryInfo(key, self.entry_path(key), nbytes, last, hits))
        found.sort(key=lambda e: e.last_access)
        return found

    def _remove_leftovers(self) -> None:
        """Delete data directories no manifest names, once older than any live write."""
        stale_before = time.time() - _stale_after_s()
        for key in self._keys():
            try:
                children = self.fs.ls(self._p(key), detail=False)
            except FileNotFoundError:
                continue
            try:
                manifest = self._read_manifest(key)
                current = _data_name(manifest) if manifest is not None else None
            except ValueError:
                current = None
            for child in children:
                name = str(child).rstrip("/").rsplit("/", 1)[-1]
                if not name.startswith(_DATA) or name == current:
                    continue
                with contextlib.suppress(ValueError):
                    if _data_time(name) >= stale_before:
                        continue  # may be a live writer's
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self._p(key, name), recursive=True)

    def _remove_stale_temps(self, key: str) -> None:
        return None  # no temporaries: unreferenced data directories go in _remove_leftovers

    def temporaries(self) -> int:
        return 0  # unreferenced data directories, collected by prune once stale, are not listed

    def clear(self) -> int:
        """Remove every entry; returns how many complete entries were removed."""
        removed = sum(self.remove(key) for key in self._keys())
        self._remove_leftovers()
        return removed


_PROCESS_LOCKS: dict[str, Any] = {}


def _data_name(manifest: dict[str, Any]) -> str:
    """The data directory a remote manifest names (a plain ``w-...`` name, nothing else)."""
    data = manifest.get("data")
    if not isinstance(data, str) or not data.startswith(_DATA) or "/" in data or ".." in data:
        raise ValueError(f"the manifest names no valid data directory ({data!r})")
    return data


def _data_time(name: str) -> float:
    """When the data directory ``w-<time_ns>-<uuid>`` was started (seconds since the epoch)."""
    return int(name[len(_DATA) :].split("-", 1)[0]) / 1e9


def _stale_after_s() -> float:
    """How old an unreferenced data directory must be before it is surely no live write."""
    limits = [config.get("framestore.lock-timeout"), config.get("limits.max-decode-seconds")]
    return max(float(v) for v in limits if v is not None) + 60.0


def decode_gif(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> StoredGif:
    """Decode a GIF into the frame store (once per content) and return its stored entry."""
    return (store or FrameStore()).ensure(path)


def open_frames(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> da.Array:
    """Lazy ``(T, H, W, 3)`` uint8 frames of a GIF, decoding it into the store if needed."""
    return decode_gif(path, store=store).frames()
