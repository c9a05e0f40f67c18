"""The frame store on a local root: entries committed by rename, one decoder per key.

An entry is written into a temporary directory, its manifest written last, then the directory
is renamed into place (fsynced first with ``giflab.fsync``); a decoder holds the key's file
lock, so concurrent callers for the same content decode it once. Nothing under the root is
followed through a symlink (``storage.open_beneath``), every document read is size-capped and
checked for shape, and housekeeping deletes only names this store writes (content keys,
``.tmp-``, ``.trash-``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from giflab_dask import config, roots, storage
from giflab_dask.decode import scan_gif
from giflab_dask.errors import (
    CacheFileError,
    CacheIntegrityWarning,
    CacheWriteError,
    FrameStoreError,
    GiflabError,
)
from giflab_dask.framestore.entry import (
    EntryInfo,
    StoredGif,
    listed_reader,
    make_manifest,
    manifest_problem,
)
from giflab_dask.framestore.layout import (
    ACCESS,
    KEY_NAME,
    LOCKS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    TMP,
    TRASH,
    VERIFY_MODES,
)
from giflab_dask.framestore.writer import DirWriter, write_entry
from giflab_dask.keys import GifSource

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["PRUNE_SLACK", "FrameStore", "configured_max_bytes"]


def configured_max_bytes() -> int | None:
    """``giflab.framestore.max-bytes`` as a byte count (None: unbounded)."""
    return config.parse_bytes(config.get("framestore.max-bytes"), key="framestore.max-bytes")


#: root -> bytes this process has written there since it last pruned it (absent: never pruned)
_WRITTEN_SINCE_PRUNE: dict[str, int] = {}
_PRUNE_STATE_LOCK = threading.Lock()
#: share of ``max-bytes`` a process may write between two size checks of the store
PRUNE_SLACK = 1 / 64


def _due_for_prune(root: Path, written: int, max_bytes: int | None) -> bool:
    """Whether a write of ``written`` bytes should be followed by a size check of the store
    (and a sweep of dead writers' leftovers).

    A check lists every entry (a manifest read each), so checking after every decode would make
    a batch of N new GIFs cost O(N^2) reads of the store. The first write of a process checks;
    later ones when the process has written ``max-bytes x PRUNE_SLACK`` since its last check
    (like ccache's cleanup): the store stays within ``max-bytes`` plus that much per writing
    process. An unbounded store (``max_bytes`` None) is swept at a process's first write only.
    """
    key = str(root)
    slack = float("inf") if max_bytes is None else max_bytes * PRUNE_SLACK
    with _PRUNE_STATE_LOCK:
        since = _WRITTEN_SINCE_PRUNE.get(key)
        if since is None or since + written >= slack:
            _WRITTEN_SINCE_PRUNE[key] = 0
            return True
        _WRITTEN_SINCE_PRUNE[key] = since + written
        return False


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FrameStore:
    """Content-keyed cache of decoded GIF frames on a local directory (the layout is in
    ``framestore/layout.py``).

    ``root`` defaults to ``giflab.framestore.root`` (else ``<cache-dir>/frames``). A root
    that is an fsspec URL needs :class:`FsspecFrameStore`: :func:`open_frame_store` picks the
    store for any root, and this constructor refuses a URL rather than make a local folder
    named like one.
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        resolved = roots.framestore_root(root)
        if not isinstance(resolved, Path):
            raise FrameStoreError(
                f"FrameStore is the store on a local folder, and {resolved} is a URL: open it "
                "with giflab_dask.open_frame_store(root), which returns the store for any root"
            )
        self.root = resolved
        roots.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    # -- paths and locks -------------------------------------------------------------------
    def entry_path(self, key: str) -> Path:
        return self.root / key

    def _lock(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        from filelock import FileLock

        locks = self.root / LOCKS
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
        return _removed_on_release(FileLock(str(lock), timeout=wait))

    # -- reading ---------------------------------------------------------------------------
    def open(self, key: str, *, verify: str | None = None) -> StoredGif | None:
        """The stored entry for ``key`` if present and intact, else None.

        An entry that fails verification is reported once (:class:`CacheIntegrityWarning`) and
        removed, so the caller rebuilds it. Nothing is followed through a symlink, the manifest
        is checked for shape before use, and every file read is capped at its listed size.
        """
        path = self.entry_path(key)
        unreadable: str | None
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            raw = storage.read_beneath(path, MANIFEST, MAX_MANIFEST_BYTES) if is_dir else b""
        except FileNotFoundError:
            return None  # absent, or not committed (see uncommit)
        except (OSError, CacheFileError) as exc:
            raw, is_dir, unreadable = b"", True, f"unreadable manifest ({exc})"
        else:
            unreadable = None if is_dir else "a symbolic link or a file, not a folder: not followed"
        mode = verify or config.choice("framestore.verify", VERIFY_MODES)
        stored = None
        problem = unreadable
        if problem is None:
            try:
                manifest = json.loads(raw)
                problem = manifest_problem(manifest, key) or self._check(path, manifest, mode)
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

    def open_many(
        self, keys: Iterable[str], *, verify: str | None = None
    ) -> dict[str, StoredGif | GiflabError | None]:
        """:meth:`open` of each distinct key, in order; a key whose ``open`` raised a
        :class:`GiflabError` maps to that error, so a batch pins it on the pairs that need it.
        The fsspec store fetches the manifests in one round of concurrent requests."""
        out: dict[str, StoredGif | GiflabError | None] = {}
        for key in dict.fromkeys(keys):
            try:
                out[key] = self.open(key, verify=verify)
            except GiflabError as exc:
                out[key] = exc
        return out

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
        stored = StoredGif.from_documents(key, path, listed_reader(path, files))
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
                self._remove_uncommitted(source.key)
                stored, written = self._write_local(source)
        except OSError as exc:  # reading the GIF raises GifDecodeError: this is the store
            if isinstance(exc, TimeoutError):  # filelock.Timeout: another decoder holds it
                raise
            raise CacheWriteError("frame store", self.root, exc.strerror or str(exc)) from exc
        max_bytes = configured_max_bytes()
        if _due_for_prune(self.root, written, max_bytes):
            # not prune(): its sweep of an old cache's lock files could take a minute here
            self._remove_leftovers()
            self._evict(max_bytes, keep={source.key})
        return stored

    def _write_local(self, source: GifSource) -> tuple[StoredGif, int]:
        """Decode ``source`` into a new entry: the entry and the bytes its files hold.

        The temporary folder's name is this writer's own, so writers racing where locks do not
        work (docs/clusters.md) never share one. A dead writer's folder is left to
        :meth:`prune`'s sweep of leftovers (a process's first write, then one per
        ``PRUNE_SLACK`` of bytes): looking for it on every decode lists the whole root, which
        made a batch of N new GIFs cost O(N^2)."""
        layout = scan_gif(source.path)
        tmp = self.root / f"{TMP}{source.key}-{uuid.uuid4().hex}"
        sync = storage.fsync_each_write()
        committed = False
        try:
            out = DirWriter(tmp)
            attrs = write_entry(out, source, layout)
            self._write_manifest(tmp, source.key, out.files, sync)
            final = self.entry_path(source.key)
            try:
                tmp.rename(final)
                committed = True
            except OSError:
                if not (final / MANIFEST).is_file():
                    raise
                # Another writer committed the same content first; theirs is as good as ours.
            if sync:
                _fsync_dir(self.root)
        finally:
            if not committed and os.path.lexists(tmp):
                _delete(tmp)
        if committed:  # what was just written, as written: reading it back proves nothing new
            durations = np.asarray(layout.durations_ms, dtype=np.int32)
            stored: StoredGif | None = StoredGif.from_attrs(source.key, final, attrs, durations)
        else:
            stored = self.open(source.key, verify="size")
        if stored is None:
            raise FrameStoreError(f"frame store entry for {source.path} vanished after writing")
        return stored, sum(size for size, _ in out.files.values())

    def _write_manifest(
        self, tmp: Path, key: str, files: dict[str, tuple[int, str]], sync: bool
    ) -> None:
        # Written last, inside the folder that is renamed into place: an entry counts as
        # complete only with it. No fsync per chunk file: after a power loss the manifest's
        # checksums (on open) and each chunk's CRC32C (on read) refuse a torn file.
        with (tmp / MANIFEST).open("w", encoding="utf-8") as f:
            json.dump(make_manifest(key, files), f)
            if sync:
                f.flush()
                os.fsync(f.fileno())

    # -- housekeeping ----------------------------------------------------------------------
    def remove(self, key: str) -> bool:
        """Remove an entry atomically (renamed away first, so no reader sees a half-deleted one)."""
        path = self.entry_path(key)
        if not os.path.lexists(path):
            return False
        trash = self.root / f"{TRASH}{key}-{uuid.uuid4().hex}"
        try:
            path.rename(trash)  # a link is renamed itself, never followed
        except FileNotFoundError:
            return False
        _delete(trash)
        return True

    def _remove_uncommitted(self, key: str) -> None:
        """Remove ``<root>/<key>`` when it is no complete entry (a folder without a manifest
        after :func:`uncommit`, or anything else planted there). Only called with the key's
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
            return sum(e.name.startswith(TMP) for e in it)

    def _entry_names(self) -> list[str]:
        """Names in the root that are content keys (what this store names entries)."""
        if not storage.real_dir(self.root):
            return []
        with os.scandir(self.root) as it:
            return [e.name for e in it if KEY_NAME.fullmatch(e.name)]

    def entries(self) -> list[EntryInfo]:
        """Complete entries (those with a manifest), least recently used first."""
        found = []
        for key in self._entry_names():
            path = self.entry_path(key)
            try:
                if not storage.real_dir(path):
                    continue
                manifest = json.loads(storage.read_beneath(path, MANIFEST, MAX_MANIFEST_BYTES))
                if manifest_problem(manifest, key):
                    continue  # open() reports and removes it
                st = os.lstat(path / MANIFEST)
                hits = 0
                with contextlib.suppress(FileNotFoundError):
                    access = os.lstat(path / ACCESS)
                    if stat.S_ISREG(access.st_mode):
                        # a byte per open since the write (which no longer opens its entry
                        # back: entries written before that count one open too many)
                        st, hits = access, access.st_size
            except (OSError, ValueError, RecursionError):
                continue  # removed under us, or broken: open() deals with it
            found.append(EntryInfo(key, path, int(manifest["nbytes"]), st.st_mtime, hits))
        found.sort(key=lambda e: e.last_access)
        return found

    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries())

    def prune(self, max_bytes: int | None = None, *, keep: Iterable[str] = ()) -> list[str]:
        """Evict least recently used entries until the store holds at most ``max_bytes``.

        Also deletes leftovers of interrupted writes and removals, and the lock files no one
        holds. Entries in ``keep`` stay. Returns the evicted keys.
        """
        self._remove_leftovers()
        self._remove_stale_locks()
        return self._evict(configured_max_bytes() if max_bytes is None else max_bytes, keep)

    def _evict(self, max_bytes: int | None, keep: Iterable[str]) -> list[str]:
        """Remove least recently used entries not in ``keep`` until at most ``max_bytes``."""
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
            if name.startswith(TRASH):
                _delete(self.root / name)
                continue
            key = name[len(TMP) :].split("-", 1)[0] if name.startswith(TMP) else name
            if not KEY_NAME.fullmatch(key):
                continue
            path = self.root / name
            if key == name and storage.real_dir(path) and os.path.lexists(path / MANIFEST):
                continue  # a complete entry
            try:
                with self._lock(key, timeout=0):
                    if name.startswith(TMP):
                        _delete(self.root / name)
                    else:
                        self._remove_uncommitted(key)
            except Timeout:
                pass  # a live writer holds it

    def _remove_stale_locks(self) -> None:
        """Delete the lock files no one holds: left by a process that died while decoding, or
        by a version that kept one per key (a few hundred microseconds each, through
        filelock)."""
        from filelock import Timeout

        locks = self.root / LOCKS
        if not storage.real_dir(locks):
            return
        with os.scandir(locks) as it:
            keys = [e.name[: -len(".lock")] for e in it if e.name.endswith(".lock")]
        for key in keys:
            if KEY_NAME.fullmatch(key):
                with contextlib.suppress(Timeout), self._lock(key, timeout=0):
                    pass  # taken, so no one holds it: its file goes on release

    def clear(self) -> int:
        """Remove every entry; returns how many complete entries were removed. Only folders
        named like content keys are entries: nothing else in the root is touched."""
        removed = 0
        for key in self._entry_names():
            complete = storage.real_dir(self.entry_path(key))
            if self.remove(key) and complete:
                removed += 1
        self._remove_leftovers()
        self._remove_stale_locks()
        return removed


@contextlib.contextmanager
def _removed_on_release(lock: BaseFileLock) -> Iterator[None]:
    """Hold ``lock``; delete its file before letting go, so ``.locks/`` holds only the keys
    being decoded (one file per GIF ever decoded, otherwise). A waiter that opened the old
    file sees it unlinked once it gets the lock and takes the new one (filelock >= 3.21)."""
    with lock:
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                Path(lock.lock_file).unlink()


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
