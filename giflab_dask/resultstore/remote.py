"""The result store on an fsspec URL root (``s3://bucket/results``).

The same documents as the local store, each written with one PUT, which an object store makes
visible whole or not at all, so there are no temporaries; the result index's segments
(``index.py``) likewise, under ``<root>/index/``. Many nodes are fetched concurrently
(:meth:`FsspecResultStore.get_many`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable
from typing import Any

from giflab_dask import config, roots, storage
from giflab_dask.errors import CacheIntegrityWarning, CacheWriteError, GiflabError
from giflab_dask.resultstore.documents import make_document, max_document_bytes, verified
from giflab_dask.resultstore.index import INDEX_FOLDER, SEGMENT_MAX_BYTES, segment_entries
from giflab_dask.resultstore.local import PRUNE_TEMPORARIES_AFTER_S, ResultStore

__all__ = ["FsspecResultStore"]


class FsspecResultStore(storage.RemoteRoot, ResultStore):
    """A result store on an fsspec URL (object store): one object per node, no temporaries.

    Open one with :func:`open_result_store`, which picks the store for a root.
    """

    root: str  # type: ignore[assignment]

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._set_url_root(roots.results_root(root), GiflabError)

    def _p(self, key: str) -> str:
        self.fs  # noqa: B018 - resolves self._base
        return f"{self._base}/{key[:2]}/{key}.json"

    def path_for(self, key: str) -> str:  # type: ignore[override]
        return f"{self.root}/{key[:2]}/{key}.json"

    def get(self, key: str, kind: str | None = None) -> dict[str, Any] | None:
        """The node's data, or None when it is absent or failed verification.

        A document that fails verification is reported and left for the recomputed node to
        replace (on a filesystem without atomic PUTs it may be a write in flight). Errors other
        than a missing object (network, permissions) are raised, not taken for a miss.
        """
        cap = max_document_bytes()
        try:
            raw = self.fs.cat_file(self._p(key), start=0, end=cap + 1)
        except FileNotFoundError:
            return None
        return self._checked(raw, key, kind, cap)

    def get_many(
        self, keys: Iterable[str], kind: str | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """:meth:`get` of each of ``keys``, fetched concurrently (fsspec's ``cat_ranges``: one
        ranged GET per node, in flight together on an async filesystem such as s3fs)."""
        keys = list(keys)
        if not keys:
            return {}
        cap = max_document_bytes()
        paths = [self._p(key) for key in keys]
        fetched = self.fs.cat_ranges(paths, 0, cap + 1, on_error="return")
        out: dict[str, dict[str, Any] | None] = {}
        for key, raw in zip(keys, fetched, strict=True):
            if isinstance(raw, FileNotFoundError):
                out[key] = None
            elif isinstance(raw, BaseException):
                raise raw  # network, permissions: never taken for a miss
            else:
                out[key] = self._checked(raw, key, kind, cap)
        return out

    def _checked(self, raw: bytes, key: str, kind: str | None, cap: int) -> dict[str, Any] | None:
        problem = f"larger than the store writes ({cap} bytes)" if len(raw) > cap else None
        data = None
        if problem is None:
            data, problem = verified(raw, key, kind)
        if problem:
            self._reject_remote(key, problem)
            return None
        return data

    def _reject_remote(self, key: str, reason: str) -> None:
        warnings.warn(
            CacheIntegrityWarning(
                f"result {self.path_for(key)} failed verification ({reason}); recomputing"
            ),
            stacklevel=4,
        )

    def contains(self, key: str) -> bool:
        path = self._p(key)
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def put(self, key: str, kind: str, data: dict[str, Any]) -> None:
        """Write a node as one object (a single PUT is atomic on object stores)."""
        body = json.dumps(make_document(key, kind, data), allow_nan=True).encode()
        try:
            self.fs.pipe_file(self._p(key), body)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | ConnectionError | TimeoutError):
                raise  # not the store refusing the write: a network or path problem
            raise CacheWriteError("result store", self.root, exc.strerror or str(exc)) from exc

    # -- the result index's segments (index.py): objects under <root>/index/, one PUT each --

    def _index_base(self) -> str:
        self.fs  # noqa: B018 - resolves self._base
        return f"{self._base}/{INDEX_FOLDER}"

    def _segment_infos(self) -> dict[str, dict[str, Any]]:
        """Segment name -> listing info (one listing request)."""
        base = self._index_base()
        self.fs.invalidate_cache(base)
        listing = storage.list_objects(self.fs, base, below=False)
        infos = {info["name"].rsplit("/", 1)[-1]: info for info in listing}
        return {n: i for n, i in infos.items() if segment_entries(n) is not None}

    def _fingerprints(self, keys: list[str], listing: bool = False) -> dict[str, str] | None:
        """Size and ETag (or modification time) of each stored node's object, from one
        listing of the store (a request per thousand objects on S3); None (index entries are
        trusted) unless ``listing`` or ``giflab.results.verify-index`` is ``listing``."""
        if not listing and config.choice("results.verify-index", ("listing", "none")) == "none":
            return None
        wanted = set(keys)
        out: dict[str, str] = {}
        for path, info in self._documents().items():
            key = path.rsplit("/", 1)[-1].removesuffix(".json")
            if key in wanted:
                out[key] = _fingerprint(info)
        return out

    def _index_names(self) -> list[str]:
        return list(self._segment_infos())

    def _index_read(self, names: list[str]) -> list[bytes | None]:
        base = self._index_base()
        paths = [f"{base}/{name}" for name in names]
        fetched = self.fs.cat_ranges(paths, 0, SEGMENT_MAX_BYTES + 1, on_error="return")
        out: list[bytes | None] = []
        for name, raw in zip(names, fetched, strict=True):
            if isinstance(raw, FileNotFoundError):
                out.append(None)  # compacted away since the listing
            elif isinstance(raw, BaseException):
                raise raw
            elif len(raw) > SEGMENT_MAX_BYTES:
                self._index_reject(name, "larger than the index writes", 0.0)
                out.append(None)
            else:
                out.append(raw)
        return out

    def _index_write(self, name: str, body: bytes) -> None:
        try:
            self.fs.pipe_file(f"{self._index_base()}/{name}", body)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | ConnectionError | TimeoutError):
                raise
            raise CacheWriteError("result index", self.root, exc.strerror or str(exc)) from exc

    def _index_remove(self, names: list[str]) -> None:
        if names:
            base = self._index_base()
            self.fs.rm([f"{base}/{name}" for name in names])

    def _index_reject(self, name: str, reason: str, age_s: float) -> None:
        """A segment that failed verification: reported, and removed once older than a write
        may take (on a filesystem without atomic PUTs it may be one in flight)."""
        warnings.warn(
            CacheIntegrityWarning(
                f"result index segment {self.root}/{INDEX_FOLDER}/{name} failed "
                f"verification ({reason}); ignored, its nodes are read from their documents"
            ),
            stacklevel=4,
        )
        if age_s >= PRUNE_TEMPORARIES_AFTER_S:
            with contextlib.suppress(FileNotFoundError):
                self._index_remove([name])

    def _documents(self) -> dict[str, dict[str, Any]]:
        """Node documents (not the index's segments): path -> listing info."""
        self.fs  # noqa: B018 - resolves self._base
        self.fs.invalidate_cache(self._base)
        found = storage.list_objects(self.fs, self._base, below=True)
        segments = self.fs._strip_protocol(self._index_base()) + "/"
        return {
            info["name"]: info
            for info in found
            if (name := info["name"]).endswith(".json")
            and not name.rsplit("/", 1)[-1].startswith(".")
            and not name.startswith(segments)
        }

    def entries(self) -> list[str]:  # type: ignore[override]
        """URLs of the stored nodes (spelled like the root)."""
        base = self.fs._strip_protocol(self._base)
        return sorted(f"{self.root}/{name[len(base) + 1 :]}" for name in self._documents())

    def nbytes(self) -> int:
        """Bytes of the node documents and the index's segments."""
        infos = [*self._documents().values(), *self._segment_infos().values()]
        return sum(int(info.get("size") or 0) for info in infos)

    def temporaries(self) -> list[float]:
        return []  # nodes are written with one PUT, without temporaries

    def prune_temporaries(self, min_age_s: float = PRUNE_TEMPORARIES_AFTER_S) -> int:
        """Nothing to do: nodes are written with one PUT, without temporaries."""
        return 0

    def clear(self) -> int:
        """Delete every node and index segment; returns the number of nodes removed."""
        names = list(self._documents())
        if names:
            self.fs.rm(names)
        self._index_remove(list(self._segment_infos()))
        return len(names)


def _fingerprint(info: dict[str, Any]) -> str:
    """An object's identity in a listing: its size and the first of ETag, modification time
    or creation time the filesystem gives (S3: the ETag, the MD5 of a single-PUT object)."""
    for field in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        if info.get(field) is not None:
            return f"{info.get('size')}:{info[field]}"
    return f"{info.get('size')}:"
