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

from giflab_dask import config
from giflab_dask.errors import CacheIntegrityWarning

__all__ = ["SCHEMA_VERSION", "ResultStore", "node_key"]

#: Bump when the stored documents change shape or meaning.
SCHEMA_VERSION = 1


def node_key(kind: str, *parts: Any) -> str:
    """A node's key: a deterministic token of what determines its value."""
    from dask.base import tokenize

    return tokenize("giflab-node", kind, SCHEMA_VERSION, *parts)


def _checksum(data: Any) -> str:
    payload = json.dumps(data, sort_keys=True, allow_nan=True).encode()
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class ResultStore:
    """Nodes of validation graphs, as atomic, checksummed JSON documents."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else config.results_root()
        config.warn_if_others_can_write(self.root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

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
        try:
            document = json.loads(text)
            if document.get("schema") != SCHEMA_VERSION:
                return self._reject(path, f"schema {document.get('schema')} != {SCHEMA_VERSION}")
            if document.get("key") != key or document.get("checksum") != _checksum(
                document.get("data")
            ):
                return self._reject(path, "checksum mismatch")
        except (ValueError, AttributeError) as exc:
            return self._reject(path, f"not valid JSON ({exc})")
        return document["data"]

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
        document = {
            "schema": SCHEMA_VERSION,
            "key": key,
            "kind": kind,
            "checksum": _checksum(data),
            "data": data,
        }
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
