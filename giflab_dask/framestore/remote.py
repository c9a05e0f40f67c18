"""The frame store on an fsspec URL root (an object store): no rename, no file locks.

Entries are immutable and content-keyed, so concurrent writers need no lock: each writes a
data directory of its own (``<key>/w-<time_ns>-<uuid>/``) and commits it by writing the
manifest, one object, last. The first manifest wins (a conditional put where the filesystem
has one); a losing writer deletes its own directory. Directories no manifest names (writers
that died, or lost without a conditional put) are deleted by ``prune``/``clear`` once older
than the longest a decode may take.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import zarr

from giflab_dask import config, roots, storage
from giflab_dask.decode import scan_gif
from giflab_dask.errors import (
    CacheFileError,
    CacheIntegrityWarning,
    FrameStoreError,
    GiflabError,
)
from giflab_dask.framestore.entry import (
    EntryInfo,
    StoredGif,
    file_digest,
    make_manifest,
    manifest_problem,
)
from giflab_dask.framestore.layout import ACCESS, DATA, MANIFEST, MAX_MANIFEST_BYTES, VERIFY_MODES
from giflab_dask.framestore.listing import unlisted
from giflab_dask.framestore.local import FrameStore
from giflab_dask.framestore.objects import data_name, parse_manifest, read_manifest, remove_entry
from giflab_dask.framestore.read import remember_document, zarr_store
from giflab_dask.framestore.writer import FsspecWriter, write_entry
from giflab_dask.keys import LAYOUT_VERSION, GifSource

__all__ = ["FsspecFrameStore"]


class FsspecFrameStore(storage.RemoteRoot, FrameStore):
    """A frame store on an fsspec URL such as ``s3://bucket/frames``: the local store's
    interface over an object store's protocol.

    A reader sees an entry only through a manifest, which names a complete data directory.
    Open one with :func:`open_frame_store`, which picks the store for a root.
    """

    root: str  # type: ignore[assignment]

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._set_url_root(roots.framestore_root(root), FrameStoreError)

    def _p(self, *parts: str) -> str:
        """A path inside the filesystem (what fsspec calls take)."""
        self.fs  # noqa: B018 - resolves self._base
        return "/".join((self._base, *parts))

    def entry_path(self, key: str) -> str:  # type: ignore[override]
        return f"{self.root}/{key}"

    def _lock(self, key: str, timeout: float | None = None) -> Any:
        raise FrameStoreError(
            f"frame store {self.root}: an object store has no file locks (writers of the same "
            "entry do not need one there: the first manifest commits it)"
        )

    # -- reading ---------------------------------------------------------------------------
    def _read_manifest(self, key: str) -> dict[str, Any] | None:
        return read_manifest(self.fs, self._p(key))

    def open(self, key: str, *, verify: str | None = None) -> StoredGif | None:
        """The stored entry for ``key`` if its manifest exists and verifies, else None.

        Verification defaults to ``giflab.framestore.verify-remote`` (``size``: one listing;
        ``checksum`` downloads and hashes every file). A failing entry is reported once and
        removed. Network errors are raised, never taken for a broken entry.
        """
        return self._open_with(key, lambda: self._read_manifest(key), verify)

    def open_many(
        self, keys: Iterable[str], *, verify: str | None = None
    ) -> dict[str, StoredGif | GiflabError | None]:
        """:meth:`open` of each distinct key, the manifests fetched together (fsspec's
        ``cat_ranges``: concurrent GETs on an async filesystem such as s3fs), then each entry
        verified as ``open`` does. Keys a listing of the root does not show are not fetched
        (:func:`~giflab_dask.framestore.listing.unlisted`: pages read only while they pay). A
        key whose ``open`` would raise a :class:`GiflabError` maps to it; a network error is
        raised, as ``open`` raises it."""
        keys = list(dict.fromkeys(keys))
        fs = self.fs  # resolves self._base
        absent = unlisted(fs, self._base, keys)
        wanted = [key for key in keys if key not in absent]
        paths = [self._p(key, MANIFEST) for key in wanted]
        cap = MAX_MANIFEST_BYTES + 1
        fetched = fs.cat_ranges(paths, 0, cap, on_error="return") if wanted else []
        blobs: dict[str, bytes | None] = dict.fromkeys(absent)
        for key, raw in zip(wanted, fetched, strict=True):
            if isinstance(raw, BaseException) and not isinstance(raw, FileNotFoundError):
                raise raw  # network, permissions: never taken for a missing entry
            blobs[key] = None if isinstance(raw, BaseException) else raw
        out: dict[str, StoredGif | GiflabError | None] = {}
        for key in keys:
            raw = blobs[key]
            try:
                out[key] = self._open_with(key, functools.partial(_manifest_of, raw), verify)
            except GiflabError as exc:
                out[key] = exc
        return out

    def _open_with(
        self, key: str, read: Callable[[], dict[str, Any] | None], verify: str | None
    ) -> StoredGif | None:
        """``open`` given how to read the entry's manifest (None when it has none)."""
        mode = verify or config.choice("framestore.verify-remote", VERIFY_MODES)
        data = None
        try:
            manifest = read()
            if manifest is None:
                return None
            data = data_name(manifest)
            problem = manifest_problem(manifest, key) or self._check_remote(
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
                stacklevel=3,
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
            if mode == "checksum" and file_digest(self.fs.cat_file(f"{base}/{rel}")) != digest:
                return f"{rel} does not match its checksum"
        return None

    def _load_remote(
        self, key: str, data: str, files: dict[str, Any], known: Mapping[str, bytes] = {}
    ) -> StoredGif:
        """The entry's :class:`StoredGif`; ``known``: files whose bytes are at hand (a writer's)."""
        url = f"{self.entry_path(key)}/{data}"
        base = self._p(key, data)

        def read(rel: str) -> bytes:  # only files the manifest lists, at most their size
            if rel not in files:
                raise CacheFileError(f"{url}/{rel} is not listed in the entry's manifest")
            if rel in known:
                return known[rel]
            return self.fs.cat_file(f"{base}/{rel}", start=0, end=int(files[rel][0]))

        stored = StoredGif.from_documents(key, url, read)
        if stored is not None:
            return stored
        # zarr_format=3: no probing for Zarr v2 files, each probe a request to the object store
        group = zarr.open_group(store=zarr_store(url), mode="r", zarr_format=3)
        return StoredGif.from_group(key, url, group)

    def _touch_remote(self, key: str) -> None:
        # No appends on an object store: the marker is rewritten (read-modify-write, so
        # concurrent opens may count once; it only orders eviction). The writer writes none:
        # a missing marker stands for the writer's own open.
        path = self._p(key, ACCESS)
        try:
            raw = self.fs.cat_file(path, start=0, end=4096)
        except FileNotFoundError:
            opens = 1
        except OSError:
            opens = 0
        else:
            try:
                opens = int(json.loads(raw)["opens"])
            except (ValueError, KeyError, TypeError):
                opens = 0
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
        with _writes_of(f"{self.root}/{source.key}") as writes:
            stored = self.open(source.key)
            if stored is not None:
                return stored
            with writes.lock:
                # open again only after another thread's write (a writer elsewhere loses to
                # the manifest already there, and opens that one)
                stored = self.open(source.key) if writes.done else None
                if stored is None:
                    stored = self._write(source)
                    writes.done = True
                return stored

    def _write(self, source: GifSource) -> StoredGif:
        layout = scan_gif(source.path)
        data = f"{DATA}{time.time_ns()}-{uuid.uuid4().hex}"
        base = self._p(source.key, data)
        out = FsspecWriter(self.fs, base)
        try:
            write_entry(out, source, layout)
            manifest = make_manifest(source.key, out.files, data=data)
            committed = self._commit(source.key, json.dumps(manifest).encode())
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(base, recursive=True)
            raise
        if committed:  # what we wrote is the entry: read back none of it
            url = f"{self.entry_path(source.key)}/{data}"
            for name in ("frames", "alpha"):  # a read task of this process opens them next
                if f"{name}/zarr.json" in out.kept:
                    remember_document(url, name, out.kept[f"{name}/zarr.json"])
            return self._load_remote(source.key, data, manifest["files"], out.kept)
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
        """Remove an entry, manifest first; with ``data``, only if the manifest still names that
        data directory (:func:`~giflab_dask.framestore.objects.remove_entry`)."""
        return remove_entry(self.fs, self._p(key), data=data)

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
        cap = MAX_MANIFEST_BYTES + 1
        blobs = self.fs.cat(wanted, on_error="omit", start=0, end=cap) if wanted else {}
        blobs = {self.fs._strip_protocol(k): v for k, v in blobs.items()}
        found = []
        for key in keys:
            raw = blobs.get(self.fs._strip_protocol(self._p(key, MANIFEST)))
            if raw is None:
                continue
            try:
                manifest = json.loads(raw)
                if len(raw) == cap or manifest_problem(manifest, key):
                    continue  # broken: open() deals with it
                nbytes = int(manifest["nbytes"])
                created = _data_time(data_name(manifest))
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
                current = data_name(manifest) if manifest is not None else None
            except ValueError:
                current = None
            for child in children:
                name = str(child).rstrip("/").rsplit("/", 1)[-1]
                if not name.startswith(DATA) or name == current:
                    continue
                with contextlib.suppress(ValueError):
                    if _data_time(name) >= stale_before:
                        continue  # may be a live writer's
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self._p(key, name), recursive=True)

    def _remove_stale_locks(self) -> None:
        return None  # no lock files

    def _remove_stale_temps(self, key: str) -> None:
        return None  # no temporaries: unreferenced data directories go in _remove_leftovers

    def temporaries(self) -> int:
        return 0  # unreferenced data directories, collected by prune once stale, are not listed

    def clear(self) -> int:
        """Remove every entry; returns how many complete entries were removed."""
        removed = sum(self.remove(key) for key in self._keys())
        self._remove_leftovers()
        return removed


class _Writes:
    """The threads of this process ensuring one entry: one writes at a time, and those whose
    open came before its write learn that it wrote."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.users = 0


_WRITES: dict[str, _Writes] = {}
_WRITES_GUARD = threading.Lock()


@contextlib.contextmanager
def _writes_of(name: str) -> Iterator[_Writes]:
    """The entry's :class:`_Writes`, shared while any thread is ensuring it (then forgotten:
    a later caller's open finds what was written)."""
    with _WRITES_GUARD:
        writes = _WRITES.setdefault(name, _Writes())
        writes.users += 1
    try:
        yield writes
    finally:
        with _WRITES_GUARD:
            writes.users -= 1
            if not writes.users:
                del _WRITES[name]


def _manifest_of(raw: bytes | None) -> dict[str, Any] | None:
    """A fetched manifest, None for an entry that has none."""
    return None if raw is None else parse_manifest(raw)


def _data_time(name: str) -> float:
    """When the data directory ``w-<time_ns>-<uuid>`` was started (seconds since the epoch)."""
    return int(name[len(DATA) :].split("-", 1)[0]) / 1e9


def _stale_after_s() -> float:
    """How old an unreferenced data directory must be before it is surely no live write."""
    limits = [config.get("framestore.lock-timeout"), config.get("limits.max-decode-seconds")]
    return max(float(v) for v in limits if v is not None) + 60.0
