"""The content-keyed Zarr v3 frame store: each GIF decoded once, streamed into time-chunks.

Layout under the store root (``giflab.framestore.root``)::

    <key>/                      one complete entry (a Zarr v3 group), never modified after commit
        zarr.json               group attributes: sizes, frame count, loop, key, versions
        frames/                 (T, H, W, 3) uint8, chunked along time, zstd with checksums
        alpha/                  (T, H, W) uint8, only where the GIF shows transparency
        durations_ms/           (T,) int32 declared frame delays
        giflab-manifest.json    size and BLAKE2b of every file above, written last
        giflab-access           appended one byte per open: size = hits, mtime = last use (LRU)
    .tmp-<key>-<uuid>/          an entry being written (renamed to <key>/ when complete)
    .trash-<key>-<uuid>/        an entry being removed (renamed away first, then deleted)
    .locks/<key>.lock           one decoder at a time per key, across processes

An entry exists only once its directory was renamed into place, and it is trusted only when its
manifest verifies, so a process killed mid-write leaves nothing that reads as complete. Every
chunk is written (even all-zero ones) and reads go through a store that treats a missing chunk as
corruption, because Zarr would otherwise return fill values for it silently.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

from giflab_dask import config
from giflab_dask.decode import GifLayout, iter_frames, scan_gif
from giflab_dask.errors import (
    CacheIntegrityWarning,
    FrameStoreCorruptError,
    FrameStoreError,
)
from giflab_dask.keys import DECODER_VERSION, LAYOUT_VERSION, GifSource

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["EntryInfo", "FrameStore", "StoredGif", "chunk_frames_for", "decode_gif", "open_frames"]

MANIFEST = "giflab-manifest.json"
ACCESS = "giflab-access"
_LOCKS = ".locks"
_TMP = ".tmp-"
_TRASH = ".trash-"
_VERIFY_MODES = ("checksum", "size", "none")


class _StrictLocalStore(LocalStore):
    """A LocalStore whose missing chunks raise instead of reading as fill values."""

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        buf = await super().get(key, prototype, byte_range)
        if buf is None and "/c/" in f"/{key}":
            raise FrameStoreCorruptError(f"frame store chunk {self.root / key} is missing")
        return buf


@functools.lru_cache(maxsize=64)
def open_entry_array(entry: str, name: str) -> zarr.Array:
    """A read-only Zarr array of a complete entry, opened once per process and reused.

    Opening an array per chunk read made memory grow with the number of chunks read (each open
    builds a store and a codec pipeline); entries never change once complete, so caching the
    handle is safe. Missing chunks raise (see :class:`_StrictLocalStore`).
    """
    return zarr.open_array(store=_StrictLocalStore(entry, read_only=True), path=name, mode="r")


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
    path: Path
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

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n_frames, self.height, self.width, 3)

    def _array(self, name: str) -> zarr.Array:
        return zarr.open_array(store=_StrictLocalStore(self.path, read_only=True), path=name)

    def frames(self, tag: str = "") -> da.Array:
        """Lazy ``(T, H, W, 3)`` uint8 frames chunked like the store, named ``gif-frames-<key>``.

        ``tag`` gives the read tasks a name of their own (``gif-frames-<key>-<tag>``): a batch
        reads each GIF once per pair, so no chunk waits in memory for another pair's turn.
        """
        import dask.array as da

        return da.from_zarr(self._array("frames"), name=_name("frames", self.key, tag))

    def alpha(self, tag: str = "") -> da.Array | None:
        """Lazy ``(T, H, W)`` uint8 alpha (255 opaque); None when the GIF is opaque throughout."""
        if not self.has_alpha:
            return None
        import dask.array as da

        return da.from_zarr(self._array("alpha"), name=_name("alpha", self.key, tag))


def _name(array: str, key: str, tag: str) -> str:
    return f"gif-{array}-{key}-{tag}" if tag else f"gif-{array}-{key}"


@dataclass(frozen=True)
class EntryInfo:
    key: str
    path: Path
    nbytes: int
    last_access: float
    hits: int


def _configured_max_bytes() -> int | None:
    return config.parse_bytes(config.get("framestore.max-bytes"), key="framestore.max-bytes")


def _hash_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FrameStore:
    """Content-keyed cache of decoded GIF frames (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else config.framestore_root()
        config.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"FrameStore({str(self.root)!r})"

    # -- paths and locks -------------------------------------------------------------------
    def entry_path(self, key: str) -> Path:
        return self.root / key

    def _lock(self, key: str, timeout: float | None = None) -> Any:
        from filelock import FileLock

        locks = self.root / _LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        wait = float(config.get("framestore.lock-timeout")) if timeout is None else timeout
        return FileLock(str(locks / f"{key}.lock"), timeout=wait)

    # -- reading ---------------------------------------------------------------------------
    def open(self, key: str, *, verify: str | None = None) -> StoredGif | None:
        """The stored entry for ``key`` if present and intact, else None.

        An entry that fails verification is reported once (:class:`CacheIntegrityWarning`) and
        removed, so the caller rebuilds it.
        """
        path = self.entry_path(key)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            return None
        mode = verify or config.choice("framestore.verify", _VERIFY_MODES)
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            problem = self._check(path, manifest, mode)
            stored = None if problem else self._load(key, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"unreadable metadata ({type(exc).__name__}: {exc})"
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
        if manifest.get("layout_version") != LAYOUT_VERSION:
            return f"layout version {manifest.get('layout_version')} != {LAYOUT_VERSION}"
        if mode == "none":
            return None
        for rel, (size, digest) in manifest["files"].items():
            file = path / rel
            try:
                actual_size = file.stat().st_size
            except FileNotFoundError:
                return f"{rel} is missing"
            if actual_size != size:
                return f"{rel} has {actual_size} bytes, expected {size}"
            if mode == "checksum" and _hash_file(file) != digest:
                return f"{rel} does not match its checksum"
        return None

    def _load(self, key: str, path: Path) -> StoredGif:
        group = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
        attrs = dict(group.attrs["giflab"])
        durations = np.asarray(group["durations_ms"][...], dtype=np.int32)
        return StoredGif(
            key=key,
            path=path,
            n_frames=int(attrs["n_frames"]),
            height=int(attrs["height"]),
            width=int(attrs["width"]),
            chunk_frames=int(attrs["chunk_frames"]),
            has_alpha=bool(attrs["has_alpha"]),
            loop=attrs["loop"],
            durations_ms=durations,
            attrs=attrs,
        )

    def _touch(self, path: Path) -> None:
        # O_APPEND writes are atomic across processes: the file's size counts hits.
        with contextlib.suppress(OSError), (path / ACCESS).open("ab") as f:
            f.write(b".")

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
        with self._lock(source.key):
            stored = self.open(source.key)  # someone else may have finished meanwhile
            if stored is not None:
                return stored
            self._remove_stale_temps(source.key)
            stored = self._write(source)
        max_bytes = config.parse_bytes(
            config.get("framestore.max-bytes"), key="framestore.max-bytes"
        )
        if max_bytes is not None:
            self.prune(max_bytes, keep={source.key})
        return stored

    def _write(self, source: GifSource) -> StoredGif:
        layout = scan_gif(source.path)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP}{source.key}-{uuid.uuid4().hex}"
        try:
            self._write_entry(tmp, source, layout)
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
        return stored

    def _write_entry(self, tmp: Path, source: GifSource, layout: GifLayout) -> None:
        from zarr.codecs import ZstdCodec

        n, h, w = layout.n_frames, layout.height, layout.width
        chunk = min(chunk_frames_for(h, w), n)
        level = int(config.get("framestore.compression-level"))
        codec = ZstdCodec(level=level, checksum=True)
        group = zarr.open_group(store=LocalStore(tmp), mode="w")
        array_config = {"write_empty_chunks": True}
        frames = group.create_array(
            "frames", shape=(n, h, w, 3), chunks=(chunk, h, w, 3), dtype="uint8",
            compressors=codec, fill_value=0, config=array_config,
            dimension_names=("t", "y", "x", "c"),
        )  # fmt: skip
        group.create_array(
            "durations_ms", data=layout.durations_ms, chunks=(max(n, 1),), compressors=codec
        )
        # Frames are copied into one of two chunk buffers; a full buffer is compressed and
        # written by a writer thread (zstd releases the GIL) while the decoder fills the other.
        # Memory: two chunks, whatever the frame count.
        buffers = [
            (np.empty((chunk, h, w, 3), dtype=np.uint8), np.empty((chunk, h, w), dtype=np.uint8))
            for _ in range(2)
        ]
        pending: list[Future[bool]] = [Future(), Future()]
        for fut in pending:
            fut.set_result(False)

        # The alpha array is created only when a frame first shows transparency (most GIFs
        # never do); earlier chunks are then filled in as opaque. flush() runs in order on the
        # single writer thread, so this state needs no lock.
        alpha: zarr.Array | None = None

        def flush(which: int, start: int, n: int) -> bool:
            nonlocal alpha
            rgb, a = buffers[which]
            frames[start : start + n] = rgb[:n]
            if alpha is None and a[:n].min() == 255:
                return False
            if alpha is None:
                alpha = group.create_array(
                    "alpha", shape=(layout.n_frames, h, w), chunks=(chunk, h, w), dtype="uint8",
                    compressors=codec, fill_value=255, config=array_config,
                    dimension_names=("t", "y", "x"),
                )  # fmt: skip
                opaque = np.full((chunk, h, w), 255, dtype=np.uint8)
                for s in range(0, start, chunk):
                    alpha[s : s + chunk] = opaque
            alpha[start : start + n] = a[:n]
            return True

        has_alpha = False
        start = filled = which = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gif-write") as writer:
            for rgb, a in iter_frames(source.path, layout):
                if filled == 0:
                    has_alpha |= pending[which].result()  # buffer free again; errors surface
                buffers[which][0][filled] = rgb
                buffers[which][1][filled] = a
                filled += 1
                if filled == chunk:
                    pending[which] = writer.submit(flush, which, start, filled)
                    start, filled, which = start + filled, 0, 1 - which
            if filled:
                pending[which] = writer.submit(flush, which, start, filled)
            for fut in pending:
                has_alpha |= fut.result()
        group.attrs["giflab"] = {
            "key": source.key,
            "source_name": source.path.name,
            "n_frames": n,
            "height": h,
            "width": w,
            "chunk_frames": chunk,
            "has_alpha": has_alpha,
            "loop": layout.loop,
            "background_index": layout.background_index,
            "decoder_version": DECODER_VERSION,
            "layout_version": LAYOUT_VERSION,
            "created": time.time(),
        }
        self._write_manifest(tmp, source.key)

    def _write_manifest(self, tmp: Path, key: str) -> None:
        files: dict[str, tuple[int, str]] = {}
        # No fsync per chunk file: the manifest's checksums catch a torn file after a crash,
        # and only the manifest (written last, fsynced) makes an entry count as complete.
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            files[file.relative_to(tmp).as_posix()] = (file.stat().st_size, _hash_file(file))
        manifest = {
            "layout_version": LAYOUT_VERSION,
            "key": key,
            "nbytes": sum(size for size, _ in files.values()),
            "files": files,
        }
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
        if not path.exists():
            return False
        trash = self.root / f"{_TRASH}{key}-{uuid.uuid4().hex}"
        try:
            path.rename(trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _remove_stale_temps(self, key: str) -> None:
        # Only called with the key's lock held: no live writer owns these.
        for stale in self.root.glob(f"{_TMP}{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def entries(self) -> list[EntryInfo]:
        """Complete entries (those with a manifest), least recently used first."""
        found = []
        if not self.root.is_dir():
            return found
        for path in self.root.iterdir():
            if path.name.startswith(".") or not (path / MANIFEST).is_file():
                continue
            try:
                manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
                access = path / ACCESS
                st = access.stat() if access.exists() else (path / MANIFEST).stat()
                hits = max(0, st.st_size - 1) if access.exists() else 0
            except (OSError, ValueError):
                continue  # removed under us, or broken: open() deals with it
            found.append(EntryInfo(path.name, path, int(manifest["nbytes"]), st.st_mtime, hits))
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
        if not self.root.is_dir():
            return
        from filelock import Timeout

        for path in self.root.iterdir():
            if path.name.startswith(_TRASH):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(_TMP):
                key = path.name[len(_TMP) :].split("-", 1)[0]
                try:
                    with self._lock(key, timeout=0):
                        shutil.rmtree(path, ignore_errors=True)
                except Timeout:
                    pass  # a live writer holds it

    def clear(self) -> int:
        """Remove every entry; returns how many complete entries were removed."""
        removed = 0
        if not self.root.is_dir():
            return removed
        for path in list(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            removed += self.remove(path.name)
        self._remove_leftovers()
        return removed


def decode_gif(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> StoredGif:
    """Decode a GIF into the frame store (once per content) and return its stored entry."""
    return (store or FrameStore()).ensure(path)


def open_frames(path: str | os.PathLike[str], *, store: FrameStore | None = None) -> da.Array:
    """Lazy ``(T, H, W, 3)`` uint8 frames of a GIF, decoding it into the store if needed."""
    return decode_gif(path, store=store).frames()
