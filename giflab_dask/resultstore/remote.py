"""The result store on an fsspec URL root (``s3://bucket/results``).

The same documents as the local store, each written with one PUT, which an object store makes
visible whole or not at all, so there are no temporaries.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from giflab_dask import roots, storage
from giflab_dask.errors import CacheIntegrityWarning, CacheWriteError, GiflabError
from giflab_dask.resultstore.documents import make_document, max_document_bytes, verified
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
            stacklevel=3,
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

    def _documents(self) -> dict[str, dict[str, Any]]:
        self.fs  # noqa: B018 - resolves self._base
        self.fs.invalidate_cache(self._base)
        try:
            found = self.fs.find(self._base, detail=True)
        except FileNotFoundError:
            return {}
        return {
            name: info
            for name, info in found.items()
            if name.endswith(".json") and not name.rsplit("/", 1)[-1].startswith(".")
        }

    def entries(self) -> list[str]:  # type: ignore[override]
        """URLs of the stored nodes (spelled like the root)."""
        base = self.fs._strip_protocol(self._base)
        return sorted(f"{self.root}/{name[len(base) + 1 :]}" for name in self._documents())

    def nbytes(self) -> int:
        return sum(int(info.get("size") or 0) for info in self._documents().values())

    def temporaries(self) -> list[float]:
        return []  # nodes are written with one PUT, without temporaries

    def prune_temporaries(self, min_age_s: float = PRUNE_TEMPORARIES_AFTER_S) -> int:
        """Nothing to do: nodes are written with one PUT, without temporaries."""
        return 0

    def clear(self) -> int:
        names = list(self._documents())
        if names:
            self.fs.rm(names)
        return len(names)
