"""The result store on a local root: one JSON document per node, written atomically.

A node is ``<root>/<key[:2]>/<key>.json``. Writes go to a temporary file in the same folder
that is renamed over the target (fsynced first with ``giflab.fsync``), so a reader sees a
whole document or none. A
document that cannot be read (not a regular file, a symlink, over the size cap, not UTF-8
JSON, nested too deep) or fails its checks (``documents.py``) is reported once
(:class:`CacheIntegrityWarning`), removed, and treated as missing. Nothing under the root is
followed through a symlink (``storage.open_beneath``), and :meth:`ResultStore.clear` deletes
only files named like the nodes it writes. The result index's segments (``index.py``) are
files in ``<root>/index``, written atomically the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from giflab_dask import roots, storage
from giflab_dask.errors import CacheIntegrityWarning, CacheWriteError, GiflabError
from giflab_dask.resultstore.documents import make_document, max_document_bytes, verified
from giflab_dask.resultstore.index import INDEX_FOLDER, SEGMENT_MAX_BYTES, segment_entries
from giflab_dask.resultstore.index import lookup as index_lookup
from giflab_dask.resultstore.index import record as index_record

__all__ = ["PRUNE_TEMPORARIES_AFTER_S", "ResultStore"]

#: Age (seconds) from which ``prune`` takes a temporary for a dead write's leftover.
PRUNE_TEMPORARIES_AFTER_S = 600.0

#: A node's file name: ``<key>.json`` under the folder ``<key[:2]>`` (dask's tokens are hex).
_NODE_NAME = re.compile(r"([0-9a-f]{2})[0-9a-f]{6,126}\.json")
_SHARD_NAME = re.compile(r"[0-9a-f]{2}")


class ResultStore:
    """Nodes of validation graphs, as atomic, checksummed JSON documents in a local folder.

    ``root`` defaults to ``giflab.results.root`` (else ``<cache-dir>/results``). A root that
    is an fsspec URL needs :class:`FsspecResultStore`: :func:`open_result_store` picks the
    store for any root, and this constructor refuses a URL rather than make a local folder
    named like one.
    """

    root: Path
    #: Whether the store keeps a result index (``index.py``) beside the node documents.
    indexed: bool = True

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        resolved = roots.results_root(root)
        if not isinstance(resolved, Path):
            raise GiflabError(
                f"ResultStore is the store on a local folder, and {resolved} is a URL: open it "
                "with giflab_dask.open_result_store(root), which returns the store for any root"
            )
        self.root = resolved
        roots.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, kind: str | None = None) -> dict[str, Any] | None:
        """The node's data, or None when it is absent or cannot be trusted (then removed).

        With ``kind`` (``metric``, ``alignment``) the document must be of that kind and have
        its shape, so what the caller reads from it is there with the types it expects.
        """
        rel = f"{key[:2]}/{key}.json"
        try:
            raw = storage.read_beneath(self.root, rel, max_document_bytes())
        except FileNotFoundError:
            return None
        except (OSError, GiflabError) as exc:
            self._reject(key, str(exc) if isinstance(exc, GiflabError) else _why(exc))
            return None
        data, problem = verified(raw, key, kind)
        if problem:
            self._reject(key, problem)
            return None
        return data

    def get_many(
        self, keys: Iterable[str], kind: str | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """:meth:`get` of each of ``keys``: key -> data, or None (absent or not trusted)."""
        return {key: self.get(key, kind) for key in keys}

    def lookup(self, nodes: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The stored nodes among ``nodes`` (key -> kind) in summary form (metric nodes
        without per-frame vectors), and which of them came from the result index."""
        return index_lookup(self, nodes)

    def record(self, entries: Mapping[str, tuple[str, dict[str, Any]]]) -> None:
        """Add stored nodes (key -> (kind, data or its summary)) to the result index."""
        index_record(self, entries)

    def _reject(self, key: str, reason: str) -> None:
        warnings.warn(
            CacheIntegrityWarning(
                f"result {self.path_for(key)} failed verification ({reason}); recomputing"
            ),
            stacklevel=3,
        )
        with contextlib.suppress(OSError, GiflabError), self._shard(key, create=False) as fd:
            os.unlink(f"{key}.json", dir_fd=fd)  # a link itself, never what it points to

    def contains(self, key: str) -> bool:
        with contextlib.suppress(OSError, GiflabError), self._shard(key, create=False) as fd:
            return stat.S_ISREG(os.stat(f"{key}.json", dir_fd=fd, follow_symlinks=False).st_mode)
        return False

    @contextlib.contextmanager
    def _shard(self, key: str, *, create: bool) -> Iterator[int]:
        """The folder ``<root>/<key[:2]>`` opened without following links (see :meth:`_folder`)."""
        if not _SHARD_NAME.fullmatch(key[:2]):
            raise GiflabError(f"{key!r} is not a result node key")
        with self._folder(key[:2], create=create) as fd:
            yield fd

    @contextlib.contextmanager
    def _folder(self, name: str, *, create: bool) -> Iterator[int]:
        """The folder ``<root>/<name>`` opened without following links; with ``create``, a
        link or file planted under that name is replaced by a folder (the name is the store's)."""
        try:
            fd = storage.open_beneath(self.root, name, storage._DIR_FLAGS)
        except (FileNotFoundError, GiflabError):
            if not create:
                raise
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self.root / name
            folder.unlink(missing_ok=True)  # a planted link or file, never what it points to
            folder.mkdir(exist_ok=True)
            fd = storage.open_beneath(self.root, name, storage._DIR_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)

    def put(self, key: str, kind: str, data: dict[str, Any]) -> None:
        """Write a node atomically (temporary sibling, renamed over the target), never through
        a link; fsynced first when ``giflab.fsync`` is on."""
        body = json.dumps(make_document(key, kind, data), allow_nan=True).encode()
        try:
            self._write(key, body)
        except OSError as exc:  # full, read-only, not ours: one line naming the root and why
            raise CacheWriteError("result store", self.root, exc.strerror or str(exc)) from exc

    def _write(self, key: str, body: bytes) -> None:
        with self._shard(key, create=True) as fd:
            tmp = f".tmp-{key}-{uuid.uuid4().hex}.json"
            _write_atomic(fd, f"{key}.json", tmp, body, sync=storage.fsync_each_write())

    # -- the result index's segments (index.py): files in <root>/index, written atomically --

    def _fingerprints(self, keys: list[str], listing: bool = False) -> dict[str, str] | None:
        """Size, mtime and inode of each stored node's document (``lstat``, regular files
        only): what an index entry was made from, so a document replaced since is read."""
        by_shard: dict[str, list[str]] = {}
        for key in keys:
            by_shard.setdefault(key[:2], []).append(key)
        out: dict[str, str] = {}
        for shard_keys in by_shard.values():
            with (
                contextlib.suppress(OSError, GiflabError),
                self._shard(shard_keys[0], create=False) as fd,
            ):
                for key in shard_keys:
                    with contextlib.suppress(OSError):
                        st = os.stat(f"{key}.json", dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode):
                            out[key] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        return out

    def _index_names(self) -> list[str]:
        return [p.name for p, _ in self._index_files()]

    def _index_read(self, names: list[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for name in names:
            try:
                out.append(
                    storage.read_beneath(self.root, f"{INDEX_FOLDER}/{name}", SEGMENT_MAX_BYTES)
                )
            except FileNotFoundError:
                out.append(None)
            except (OSError, GiflabError) as exc:
                why = str(exc) if isinstance(exc, GiflabError) else _why(exc)
                self._index_reject(name, why, float("inf"))
                out.append(None)
        return out

    def _index_write(self, name: str, body: bytes) -> None:
        try:
            with self._folder(INDEX_FOLDER, create=True) as fd:
                _write_atomic(fd, name, f".tmp-{name}", body, sync=True)  # once a batch
        except OSError as exc:
            raise CacheWriteError("result index", self.root, exc.strerror or str(exc)) from exc

    def _index_remove(self, names: list[str]) -> None:
        with (
            contextlib.suppress(OSError, GiflabError),
            self._folder(INDEX_FOLDER, create=False) as fd,
        ):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=fd)

    def _index_reject(self, name: str, reason: str, age_s: float) -> None:
        """A segment that failed verification: reported and removed (a local segment is
        renamed into place whole, so it is never a write in flight)."""
        warnings.warn(
            CacheIntegrityWarning(
                f"result index segment {self.root / INDEX_FOLDER / name} failed "
                f"verification ({reason}); ignored, its nodes are read from their documents"
            ),
            stacklevel=4,
        )
        self._index_remove([name])

    def _files(self, temporaries: bool = False) -> Iterator[tuple[Path, os.stat_result]]:
        """Node files (or temporaries) this store wrote, by name, with their ``lstat``: only in
        real ``<xx>`` folders (a linked folder is not entered), only regular files or links."""
        if not storage.real_dir(self.root):
            return
        with os.scandir(self.root) as shards:
            for shard in shards:
                if not _SHARD_NAME.fullmatch(shard.name) or not shard.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(OSError), os.scandir(shard.path) as files:
                    for entry in files:
                        ours = (
                            entry.name.startswith(f".tmp-{shard.name}")
                            if temporaries
                            else _node_name_in(entry.name, shard.name)
                        )
                        if not ours:
                            continue
                        with contextlib.suppress(OSError):
                            st = entry.stat(follow_symlinks=False)
                            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                                yield Path(entry.path), st

    def _index_files(self, temporaries: bool = False) -> Iterator[tuple[Path, os.stat_result]]:
        """The result index's segments (or their temporaries), as :meth:`_files` gives nodes."""
        folder = self.root / INDEX_FOLDER
        if not storage.real_dir(folder):
            return
        with contextlib.suppress(OSError), os.scandir(folder) as files:
            for entry in files:
                name = entry.name.removeprefix(".tmp-") if temporaries else entry.name
                if name == entry.name and temporaries:
                    continue
                if segment_entries(name) is None:
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                        yield Path(entry.path), st

    def _all_files(self, temporaries: bool = False) -> Iterator[tuple[Path, os.stat_result]]:
        yield from self._files(temporaries)
        yield from self._index_files(temporaries)

    def entries(self) -> list[Path]:
        """The node documents (the index's segments are not nodes)."""
        return [p for p, st in self._files() if stat.S_ISREG(st.st_mode)]

    def nbytes(self) -> int:
        """Bytes of the node documents and the index's segments."""
        return sum(st.st_size for _, st in self._all_files() if stat.S_ISREG(st.st_mode))

    def temporaries(self) -> list[float]:
        """The modification times of temporaries: writes in flight, or killed mid-way."""
        return [st.st_mtime for _, st in self._all_files(temporaries=True)]

    def prune_temporaries(self, min_age_s: float = PRUNE_TEMPORARIES_AFTER_S) -> int:
        """Delete leftovers of writes killed mid-way (never read: their names mark them).

        Only files older than ``min_age_s`` go, so a write in flight elsewhere is left alone.
        """
        removed = 0
        now = time.time()
        for tmp, st in self._all_files(temporaries=True):
            if now - st.st_mtime >= min_age_s:
                with contextlib.suppress(OSError):
                    tmp.unlink()  # a link itself, never its target
                    removed += 1
        return removed

    def clear(self) -> int:
        """Delete every node file and index segment (and planted links named like them);
        nothing else. Returns the number of nodes removed."""
        removed = 0
        for p, _ in list(self._files()):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        for p, _ in list(self._index_files()):
            with contextlib.suppress(OSError):
                p.unlink()
        self.prune_temporaries(min_age_s=0)
        return removed


def _node_name_in(name: str, shard: str) -> bool:
    match = _NODE_NAME.fullmatch(name)
    return match is not None and match.group(1) == shard


def _why(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or exc})"


def _write_atomic(fd: int, name: str, tmp: str, body: bytes, *, sync: bool) -> None:
    """``body`` as ``name`` in the folder ``fd``: a temporary sibling (fsynced if ``sync``),
    renamed over it. Without the fsync a power loss may leave the renamed file empty or
    zero-filled, which its checksum refuses (docs/design.md, 66)."""
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | storage._NOFOLLOW
        out = os.open(tmp, flags, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(body)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        raise
