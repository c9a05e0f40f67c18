"""The result store: persisted graph nodes, so validating the same pair again is a lookup.

Every node has a key ``tokenize(kind, original key, compressed key, alignment options,
metric spec (name, kernel, parameters, version), SCHEMA_VERSION)`` (DESIGN decision 7). A node
is one JSON document (no pickle): ``<root>/<key[:2]>/<key>.json`` holding the schema version,
the key, its kind, its data and a BLAKE2b checksum of the data. Writes go to a temporary file in
the same folder that is fsynced and renamed over the target, so a reader sees a whole document
or none. A document that fails its checksum or has another schema version is reported once
(:class:`CacheIntegrityWarning`), removed, and treated as missing: the batch recomputes it.

Kinds: ``metric`` (per-frame vectors and summaries of one metric of one pair) and ``alignment``
(the frame mapping and pair-level facts of one pair).

A root that is an fsspec URL (``s3://bucket/results``) gives a :class:`FsspecResultStore`: the
same documents, each written with one PUT, which an object store makes visible whole or not at
all, so there are no temporaries (DESIGN decision 30).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

from giflab_dask import config, storage
from giflab_dask.errors import CacheIntegrityWarning, GiflabError

__all__ = ["SCHEMA_VERSION", "FsspecResultStore", "ResultStore", "node_key"]

#: Bump when the stored documents change shape or meaning.
SCHEMA_VERSION = 1


def node_key(kind: str, *parts: Any) -> str:
    """A node's key: a deterministic token of what determines its value."""
    from dask.base import tokenize

    return tokenize("giflab-node", kind, SCHEMA_VERSION, *parts)


def _checksum(data: Any) -> str:
    payload = json.dumps(data, sort_keys=True, allow_nan=True).encode()
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _resolve_root(root: str | os.PathLike[str] | None) -> Path | str:
    return storage.as_root(root) if root is not None else config.results_root()


def _document(key: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "key": key,
        "kind": kind,
        "checksum": _checksum(data),
        "data": data,
    }


def _problem(document: Any, key: str) -> str | None:
    """Why a parsed document is not a valid node ``key`` (None when it is)."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("schema") != SCHEMA_VERSION:
        return f"schema {document.get('schema')} != {SCHEMA_VERSION}"
    if document.get("key") != key or document.get("checksum") != _checksum(document.get("data")):
        return "checksum mismatch"
    return None


def _verified(text: str | bytes, key: str) -> tuple[Any, str | None]:
    """(the node's data, None), or (None, why the document cannot be trusted)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    problem = _problem(document, key)
    return (None, problem) if problem else (document["data"], None)


class ResultStore:
    """Nodes of validation graphs, as atomic, checksummed JSON documents.

    ``root`` (default ``giflab.results.root``) is a local directory, or an fsspec URL such as
    ``s3://bucket/results``, for which the instance is a :class:`FsspecResultStore`.
    """

    root: Path

    def __new__(cls, root: str | os.PathLike[str] | None = None) -> ResultStore:
        if cls is ResultStore and storage.is_url(_resolve_root(root)):
            cls = FsspecResultStore
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        resolved = _resolve_root(root)
        assert isinstance(resolved, Path)  # URL roots are FsspecResultStore (see __new__)
        self.root = resolved
        config.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def __getnewargs__(self) -> tuple[str]:
        # unpickling calls __new__, which picks the class from the root
        return (str(self.root),)

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The node's data, or None when it is absent or failed verification (then removed)."""
        path = self.path_for(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._reject(path, f"unreadable ({exc.strerror or exc})")
        data, problem = _verified(text, key)
        return self._reject(path, problem) if problem else data

    def _reject(self, path: Path, reason: str) -> None:
        warnings.warn(
            CacheIntegrityWarning(f"result {path} failed verification ({reason}); recomputing"),
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def contains(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def put(self, key: str, kind: str, data: dict[str, Any]) -> None:
        """Write a node atomically (temporary sibling, fsync, rename)."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = _document(key, kind, data)
        tmp = path.with_name(f".tmp-{key}-{uuid.uuid4().hex}.json")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                json.dump(document, f, allow_nan=True)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.glob("*/*.json") if not p.name.startswith(".tmp-")]

    def nbytes(self) -> int:
        total = 0
        for p in self.entries():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def prune_temporaries(self, min_age_s: float = 600.0) -> int:
        """Delete leftovers of writes killed mid-way (never read: their names mark them).

        Only files older than ``min_age_s`` go, so a write in flight elsewhere is left alone.
        """
        import time

        removed = 0
        if self.root.is_dir():
            now = time.time()
            for tmp in self.root.glob("*/.tmp-*"):
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime >= min_age_s:
                        tmp.unlink()
                        removed += 1
        return removed

    def clear(self) -> int:
        removed = 0
        for p in self.entries():
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        self.prune_temporaries(min_age_s=0)
        return removed


class FsspecResultStore(storage.RemoteRoot, ResultStore):
    """A result store on an fsspec URL (object store): one object per node, no temporaries."""

    root: str  # type: ignore[assignment]

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._set_url_root(_resolve_root(root), GiflabError)

    def _p(self, key: str) -> str:
        self.fs  # noqa: B018 - resolves self._base
        return f"{self._base}/{key[:2]}/{key}.json"

    def path_for(self, key: str) -> str:  # type: ignore[override]
        return f"{self.root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The node's data, or None when it is absent or failed verification.

        A document that fails verification is reported and left for the recomputed node to
        replace (on a filesystem without atomic PUTs it may be a write in flight). Errors other
        than a missing object (network, permissions) are raised, not taken for a miss.
        """
        try:
            raw = self.fs.cat_file(self._p(key))
        except FileNotFoundError:
            return None
        data, problem = _verified(raw, key)
        return self._reject_remote(key, problem) if problem else data

    def _reject_remote(self, key: str, reason: str) -> None:
        warnings.warn(
            CacheIntegrityWarning(
                f"result {self.path_for(key)} failed verification ({reason}); recomputing"
            ),
            stacklevel=3,
        )
        return None

    def contains(self, key: str) -> bool:
        path = self._p(key)
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def put(self, key: str, kind: str, data: dict[str, Any]) -> None:
        """Write a node as one object (a single PUT is atomic on object stores)."""
        body = json.dumps(_document(key, kind, data), allow_nan=True).encode()
        self.fs.pipe_file(self._p(key), body)

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

    def prune_temporaries(self, min_age_s: float = 600.0) -> int:
        """Nothing to do: nodes are written with one PUT, without temporaries."""
        return 0

    def clear(self) -> int:
        names = list(self._documents())
        if names:
            self.fs.rm(names)
        return len(names)
