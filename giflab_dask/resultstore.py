"""The result store: persisted graph nodes, so validating the same pair again is a lookup.

Every node has a key ``tokenize(kind, original key, compressed key, alignment options,
metric spec (name, kernel, parameters, version), SCHEMA_VERSION)`` (DESIGN decision 7). A node
is one JSON document (no pickle): ``<root>/<key[:2]>/<key>.json`` holding the schema version,
the key, its kind, its data and a BLAKE2b checksum of the data. Writes go to a temporary file in
the same folder that is fsynced and renamed over the target, so a reader sees a whole document
or none. A document that cannot be read (not a regular file, a symlink, over the size cap, not
UTF-8 JSON, nested too deep), fails its checksum, has another schema version or, read as a
``kind``, does not have that kind's shape is reported once (:class:`CacheIntegrityWarning`),
removed, and treated as missing: the batch recomputes it. Nothing under the root is followed
through a symlink (``storage.open_beneath``), and :meth:`ResultStore.clear` deletes only files
named like the nodes it writes.

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
import math
import os
import re
import stat
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from giflab_dask import config, storage
from giflab_dask.errors import CacheIntegrityWarning, CacheWriteError, GiflabError

__all__ = ["SCHEMA_VERSION", "FsspecResultStore", "ResultStore", "node_key"]

#: Bump when the stored documents change shape or meaning.
SCHEMA_VERSION = 1
#: Age (seconds) from which ``prune`` takes a temporary for a dead write's leftover.
PRUNE_TEMPORARIES_AFTER_S = 600.0


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


#: A node's file name: ``<key>.json`` under the folder ``<key[:2]>`` (dask's tokens are hex).
_NODE_NAME = re.compile(r"([0-9a-f]{2})[0-9a-f]{6,126}\.json")
_SHARD_NAME = re.compile(r"[0-9a-f]{2}")
_KINDS = ("metric", "alignment")


def max_document_bytes() -> int:
    """The largest document a read accepts: far above any node this version writes (a metric
    node holds a few floats per frame, ~30 bytes each, at most ``giflab.limits.max-frames``
    frames), and small enough that a hostile file cannot exhaust memory."""
    frames = config.get("limits.max-frames")
    return 64 * 2**20 + 512 * int(frames if frames is not None else 2**21)


def _problem(document: Any, key: str, kind: str | None) -> str | None:
    """Why a parsed document is not a valid node ``key`` (of ``kind``, if given), or None."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("schema") != SCHEMA_VERSION:
        return f"schema {document.get('schema')!r} != {SCHEMA_VERSION}"
    if document.get("key") != key or document.get("checksum") != _checksum(document.get("data")):
        return "checksum mismatch"
    if not isinstance(document.get("data"), dict):
        return "its data is not a JSON object"
    if kind is not None:
        if document.get("kind") != kind:
            return f"kind {document.get('kind')!r}, expected {kind!r}"
        return _SHAPES[kind](document["data"])
    return None


def _verified(raw: bytes, key: str, kind: str | None) -> tuple[Any, str | None]:
    """(the node's data, None), or (None, why the document cannot be trusted)."""
    try:
        document = json.loads(raw)
        problem = _problem(document, key, kind)
    except (ValueError, RecursionError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return None, f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"
    return (None, problem) if problem else (document["data"], None)


# -- the shape of each kind's data (what the pipeline reads from it) -------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: Any, what: str, length: int | None = None) -> str | None:
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        return f"{what} is not a list of numbers"
    if length is not None and len(value) != length:
        return f"{what} has {len(value)} values, expected {length}"
    return None


def _integers(value: Any, what: str, low: int = 0) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value
    ):
        return f"{what} is not a list of integers >= {low}"
    return None


def _metric_shape(data: dict[str, Any]) -> str | None:
    from giflab_dask.reduce import STATS

    if not isinstance(data.get("metric"), str):
        return "metric name missing"
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return "outputs missing"
    lengths = set()
    for name, output in outputs.items():
        if not isinstance(output, dict):
            return f"output {name!r} is not an object"
        problem = _numbers(output.get("per_frame"), f"{name}.per_frame") or _numbers(
            output.get("summary"), f"{name}.summary", len(STATS)
        )
        if problem:
            return problem
        lengths.add(len(output["per_frame"]))
    if len(lengths) > 1:
        return "outputs have per-frame vectors of different lengths"
    extra = data.get("pair_summary", {})
    if not isinstance(extra, dict) or not all(_is_number(v) for v in extra.values()):
        return "pair_summary is not an object of numbers"
    seconds = data.get("compute_seconds", 0.0)
    if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        return "compute_seconds is not a duration"
    if "sample" in data:
        return _sample_shape(data["sample"], lengths.pop())
    return None


def _sample_shape(sample: Any, n_values: int) -> str | None:
    design = sample.get("design") if isinstance(sample, dict) else None
    if not isinstance(design, dict):
        return "sample.design missing"
    population = design.get("population")
    if not isinstance(population, int) or isinstance(population, bool) or population < 0:
        return "sample.design.population is not a count"
    for field in ("positions", "certain", "bounds"):
        problem = _integers(design.get(field), f"sample.design.{field}")
        if problem:
            return problem
    positions = design["positions"]
    if len(positions) != n_values or any(p >= population for p in positions):
        return "sample.design.positions do not match the per-frame vectors"
    se, df = sample.get("mean_se", {}), sample.get("mean_df", {})
    for field, values in (("mean_se", se), ("mean_df", df)):
        if not isinstance(values, dict) or not all(_is_number(v) for v in values.values()):
            return f"sample.{field} is not an object of numbers"
    if not set(se) <= set(df):
        return "sample.mean_df lacks outputs of sample.mean_se"
    return None


def _alignment_shape(data: dict[str, Any]) -> str | None:
    problem = _integers(data.get("mapping"), "mapping")
    if problem:
        return problem
    if not isinstance(data.get("mode"), str):
        return "mode missing"
    for field in ("size", "original_size", "compressed_size"):
        value = data.get(field)
        if _integers(value, field) or len(value) != 2:
            return f"{field} is not [height, width]"
    notes = data.get("notes")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        return "notes is not a list of strings"
    facts = data.get("facts")
    if not isinstance(facts, dict) or not all(_is_number(v) for v in facts.values()):
        return "facts is not an object of numbers"
    frames = facts.get("compressed_frames")
    if not _is_number(frames) or any(m >= frames for m in data["mapping"]):
        return "mapping names frames the compressed GIF does not have"
    return None


_SHAPES = {"metric": _metric_shape, "alignment": _alignment_shape}


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
            return self._reject(key, str(exc) if isinstance(exc, GiflabError) else _why(exc))
        data, problem = _verified(raw, key, kind)
        return self._reject(key, problem) if problem else data

    def _reject(self, key: str, reason: str) -> None:
        warnings.warn(
            CacheIntegrityWarning(
                f"result {self.path_for(key)} failed verification ({reason}); recomputing"
            ),
            stacklevel=3,
        )
        with contextlib.suppress(OSError, GiflabError), self._shard(key, create=False) as fd:
            os.unlink(f"{key}.json", dir_fd=fd)  # a link itself, never what it points to
        return None

    def contains(self, key: str) -> bool:
        with contextlib.suppress(OSError, GiflabError), self._shard(key, create=False) as fd:
            return stat.S_ISREG(os.stat(f"{key}.json", dir_fd=fd, follow_symlinks=False).st_mode)
        return False

    @contextlib.contextmanager
    def _shard(self, key: str, *, create: bool) -> Iterator[int]:
        """The folder ``<root>/<key[:2]>`` opened without following links; with ``create``, a
        link or file planted under that name is replaced by a folder (the name is the store's)."""
        if not _SHARD_NAME.fullmatch(key[:2]):
            raise GiflabError(f"{key!r} is not a result node key")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = storage.open_beneath(self.root, key[:2], storage._DIR_FLAGS)
        except (FileNotFoundError, GiflabError):
            if not create:
                raise
            shard = self.root / key[:2]
            shard.unlink(missing_ok=True)  # a planted link or file, never what it points to
            shard.mkdir(exist_ok=True)
            fd = storage.open_beneath(self.root, key[:2], storage._DIR_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)

    def put(self, key: str, kind: str, data: dict[str, Any]) -> None:
        """Write a node atomically (temporary sibling, fsync, rename), never through a link."""
        body = json.dumps(_document(key, kind, data), allow_nan=True).encode()
        try:
            self._write(key, body)
        except OSError as exc:  # full, read-only, not ours: one line naming the root and why
            raise CacheWriteError("result store", self.root, exc.strerror or str(exc)) from exc

    def _write(self, key: str, body: bytes) -> None:
        name = f"{key}.json"
        tmp = f".tmp-{key}-{uuid.uuid4().hex}.json"
        with self._shard(key, create=True) as fd:
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | storage._NOFOLLOW
                out = os.open(tmp, flags, 0o644, dir_fd=fd)
                with os.fdopen(out, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=fd)

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

    def entries(self) -> list[Path]:
        return [p for p, st in self._files() if stat.S_ISREG(st.st_mode)]

    def nbytes(self) -> int:
        return sum(st.st_size for _, st in self._files() if stat.S_ISREG(st.st_mode))

    def temporaries(self) -> list[float]:
        """The modification times of temporaries: writes in flight, or killed mid-way."""
        return [st.st_mtime for _, st in self._files(temporaries=True)]

    def prune_temporaries(self, min_age_s: float = PRUNE_TEMPORARIES_AFTER_S) -> int:
        """Delete leftovers of writes killed mid-way (never read: their names mark them).

        Only files older than ``min_age_s`` go, so a write in flight elsewhere is left alone.
        """
        import time

        removed = 0
        now = time.time()
        for tmp, st in self._files(temporaries=True):
            if now - st.st_mtime >= min_age_s:
                with contextlib.suppress(OSError):
                    tmp.unlink()  # a link itself, never its target
                    removed += 1
        return removed

    def clear(self) -> int:
        """Delete every node file (and planted link named like one); nothing else."""
        removed = 0
        for p, _ in list(self._files()):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        self.prune_temporaries(min_age_s=0)
        return removed


def _node_name_in(name: str, shard: str) -> bool:
    match = _NODE_NAME.fullmatch(name)
    return match is not None and match.group(1) == shard


def _why(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or exc})"


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
        if len(raw) > cap:
            return self._reject_remote(key, f"larger than the store writes ({cap} bytes)")
        data, problem = _verified(raw, key, kind)
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
