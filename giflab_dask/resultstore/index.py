"""The result index: append-only, checksummed segments of node summaries, so a batch's
lookups are a listing and a few reads rather than one request per node.

A segment is one file or object ``<root>/index/<time_ns>-<uuid>-<entries>.json``, written
whole and never changed: a header line (format, schema, entry count, BLAKE2b of the body)
and a JSON body mapping node keys to ``[kind, summary, fingerprint]`` (``summary_of``:
alignment nodes whole, metric nodes without their per-frame vectors; the fingerprint is the
stored document's size and ETag, or size, mtime and inode, from a listing or ``lstat``). Each
writer names its own segments, so two batches writing at once lose nothing. The node documents
stay the source of truth: a segment is written only after its nodes are stored, an entry is
used only while its document has the fingerprint it was made from (one listing per thousand
objects on an object store), any other node is read from its document
(:meth:`ResultStore.get_many`) and recorded in a new segment, and a segment that fails its
checksum or an entry's shape check is reported and ignored (then removed, once old enough not
to be a write in flight). When a lookup reads
:data:`COMPACT_AT` segments or more it writes their union as one segment and removes them.

A lookup decodes only the segments that hold some of its keys: which keys a segment holds is
scanned from its bytes once per process (a segment never changes once written), so the
windows of a huge batch each read their own segments, not the whole index (docs/design.md,
68).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from giflab_dask.errors import CacheWriteError
from giflab_dask.resultstore.documents import SCHEMA_VERSION, summary_of, summary_problem

__all__ = [
    "COMPACT_AT",
    "INDEX_FOLDER",
    "SEGMENT_MAX_BYTES",
    "Entries",
    "IndexedStore",
    "decode_segment",
    "encode_segments",
    "lookup",
    "record",
    "segment_entries",
]

#: The folder (prefix) of the segments under a result-store root.
INDEX_FOLDER = "index"
#: The largest segment a read accepts; writers split well below it.
SEGMENT_MAX_BYTES = 256 * 2**20
_SPLIT_BYTES = 32 * 2**20
#: A lookup that reads this many segments replaces them with one.
COMPACT_AT = 16
#: A lookup decodes the segments holding its keys when they have at most this many entries
#: per node looked up (plus a floor): beyond, decoding costs more than fetching the nodes.
_ENTRIES_PER_NODE = 8
_ENTRIES_FLOOR = 64
#: Segments not seen yet are scanned for their keys (a regular expression over the bytes, ~1/10
#: of decoding an entry) up to this many entries per node looked up; later lookups scan on.
_SCAN_PER_NODE = 24
#: The keys remembered across lookups (8 bytes each); beyond, forgotten and scanned again.
_SEEN_MAX_ENTRIES = 8_000_000
#: Segments are scanned this many entries' worth at a time (~8 MiB read at once).
_GROUP_ENTRIES = 20_000

_FORMAT = "giflab-result-index"
_SEGMENT_NAME = re.compile(r"(\d{20})-[0-9a-f]{32}-(\d{1,12})\.json")
_KEY = re.compile(r"[0-9a-f]{8,128}")
#: An entry's key in a segment's body as ``encode_segments`` writes it (a hint only: what an
#: entry holds is taken from the decoded, checked segment).
_BODY_KEY = re.compile(rb'"([0-9a-f]{8,128})":\[')

#: node key -> (kind, summary, fingerprint of the document it was made from)
Entries = dict[str, tuple[str, dict[str, Any], str]]


class IndexedStore(Protocol):
    """What the index needs of a result store (``local.py``, ``remote.py``)."""

    root: Any
    indexed: bool

    def get_many(
        self, keys: Iterable[str], kind: str | None = None
    ) -> dict[str, dict[str, Any] | None]: ...
    def _fingerprints(self, keys: list[str], listing: bool = False) -> dict[str, str] | None: ...
    def _index_names(self) -> list[str]: ...
    def _index_read(self, names: list[str]) -> list[bytes | None]: ...
    def _index_write(self, name: str, body: bytes) -> None: ...
    def _index_remove(self, names: list[str]) -> None: ...
    def _index_reject(self, name: str, reason: str, age_s: float) -> None: ...


def segment_entries(name: str) -> int | None:
    """The entry count a segment's name declares, or None for a name the index never writes."""
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(2)) if match else None


def segment_age_s(name: str) -> float:
    """Seconds since the segment named ``name`` was written (its name carries the time)."""
    match = _SEGMENT_NAME.fullmatch(name)
    return (time.time_ns() - int(match.group(1))) / 1e9 if match else float("inf")


def encode_segments(entries: Mapping[str, tuple[str, Any, str]]) -> list[tuple[str, bytes]]:
    """``entries`` (key -> (kind, summary, fingerprint)) as segments (name, bytes), each
    under 32 MiB."""
    out: list[tuple[str, bytes]] = []
    parts: list[bytes] = []
    size = 0
    for key, entry in entries.items():
        part = json.dumps(key).encode() + b":" + json.dumps(list(entry), allow_nan=True).encode()
        if parts and size + len(part) > _SPLIT_BYTES:
            out.append(_segment(parts))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        out.append(_segment(parts))
    return out


def _segment(parts: list[bytes]) -> tuple[str, bytes]:
    body = b"{" + b",".join(parts) + b"}"
    header = {
        "format": _FORMAT,
        "schema": SCHEMA_VERSION,
        "entries": len(parts),
        "checksum": hashlib.blake2b(body, digest_size=16).hexdigest(),
    }
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex}-{len(parts)}.json"
    return name, json.dumps(header).encode() + b"\n" + body


def decode_segment(raw: bytes) -> tuple[Entries, str | None]:
    """(the segment's entries, None), or ({}, why it cannot be trusted)."""
    head, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(head)
        if not sep or not isinstance(header, dict) or header.get("format") != _FORMAT:
            return {}, "not a result index segment"
        if header.get("schema") != SCHEMA_VERSION:
            return {}, f"schema {header.get('schema')!r} != {SCHEMA_VERSION}"
        if header.get("checksum") != hashlib.blake2b(body, digest_size=16).hexdigest():
            return {}, "checksum mismatch"
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return {}, f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"
    if not isinstance(parsed, dict) or len(parsed) != header.get("entries"):
        return {}, "entry count differs from its header"
    entries: Entries = {}
    for key, value in parsed.items():
        problem = _entry_problem(key, value)
        if problem:
            return {}, f"entry {key[:40]!r}: {problem}"
        entries[key] = (value[0], value[1], value[2])
    return entries, None


def _entry_problem(key: str, value: Any) -> str | None:
    if not _KEY.fullmatch(key):
        return "not a node key"
    if not isinstance(value, list) or len(value) != 3 or not isinstance(value[2], str):
        return "not [kind, summary, fingerprint]"
    return summary_problem(value[0], value[1])


# -- what the stores do with them ---------------------------------------------------------------


def lookup(
    store: IndexedStore, nodes: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The stored nodes among ``nodes`` (key -> kind), in summary form, and which of them the
    index held. Where the store checks (local roots; URL roots with
    ``giflab.results.verify-index: listing``) an entry counts only while its document is the
    one it was made from (same fingerprint: size and ETag, or size, mtime and inode); other
    nodes are read from their documents (verified as :meth:`ResultStore.get` does) and
    recorded anew."""
    if not nodes:
        return {}, set()
    read = _read_index(store, nodes)
    found: dict[str, dict[str, Any]] = {}
    fingerprints: dict[str, str] | None = None
    candidates = dict(nodes)
    if read is not None:
        # None: entries are trusted. With no entry yet, the listing says which nodes exist:
        # a cold batch is a request per thousand nodes, not a GET per node that misses.
        fingerprints = store._fingerprints(list(nodes), listing=read.empty)
        for key, kind in nodes.items():
            entry = read.entries.get(key)
            if entry is None or entry[0] != kind:
                continue
            if fingerprints is None or entry[2] == fingerprints.get(key):
                found[key] = entry[1]
        candidates = {
            k: v
            for k, v in nodes.items()
            if k not in found and (fingerprints is None or k in fingerprints)
        }
    from_index = set(found)
    heal: dict[str, tuple[str, dict[str, Any]]] = {}
    for kind in set(candidates.values()):
        keys = [key for key, wanted in candidates.items() if wanted == kind]
        for key, data in store.get_many(keys, kind).items():
            if data is not None:
                heal[key] = (kind, summary_of(kind, data))
                found[key] = heal[key][1]
    if read is not None and read.complete:
        # a node in a segment left undecoded is indexed already: recording it would repeat it
        heal = {k: v for k, v in heal.items() if k not in read.undecoded}
        record(store, heal, fingerprints, checked=True)
    return found, from_index


def record(
    store: IndexedStore,
    entries: Mapping[str, tuple[str, dict[str, Any]]],
    fingerprints: Mapping[str, str] | None = None,
    *,
    checked: bool = False,
) -> None:
    """Write segments holding ``entries`` (key -> (kind, data or its summary) of nodes
    already stored) with their documents' fingerprints (looked up unless ``checked``: then
    ``fingerprints`` are the store's answer, None where it does not check), when the store
    keeps an index. A failed write costs only speed: the nodes are in their documents."""
    if not entries or not store.indexed:
        return
    if not checked:
        if not _scans(store._index_names(), len(entries)):
            return  # a lookup this small would not read the index: spare the listing
        fingerprints = store._fingerprints(list(entries))
    stamped = {
        key: (kind, summary_of(kind, data) if kind == "metric" and _has_vectors(data) else data,
              "" if fingerprints is None else fingerprints[key])
        for key, (kind, data) in entries.items()
        if fingerprints is None or key in fingerprints
    }  # fmt: skip
    for name, body in encode_segments(stamped):
        try:
            store._index_write(name, body)
        except (CacheWriteError, OSError):
            return
        _SEEN.learn(str(store.root), name, body)


def _scans(names: Iterable[str], n_nodes: int) -> bool:
    """Whether a lookup of ``n_nodes`` would scan an index of these segments whole."""
    total = sum(segment_entries(n) or 0 for n in names)
    return total <= _SCAN_PER_NODE * n_nodes + _ENTRIES_FLOOR


def _has_vectors(data: Mapping[str, Any]) -> bool:
    return any("per_frame" in output for output in data.get("outputs", {}).values())


class _SeenKeys:
    """Which keys each segment holds, per (root, segment name), as sorted hashes of the keys
    (this process's ``hash``: a hint, never stored). A segment never changes once written,
    so this is learned once; a name no longer listed is forgotten."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()
        self.scanned = 0  # entries scanned, for tests

    def learn(self, root: str, name: str, raw: bytes) -> np.ndarray:
        """Scan a segment's bytes for its keys; their sorted hashes."""
        keys = _BODY_KEY.findall(raw.partition(b"\n")[2])
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        hashes.sort()
        with self._lock:
            self.scanned += len(keys)
            if sum(len(h) for h in self._keys.values()) + len(hashes) > _SEEN_MAX_ENTRIES:
                self._keys.clear()
            self._keys[root, name] = hashes
        return hashes

    def known(self, root: str, names: list[str]) -> dict[str, np.ndarray]:
        """The key hashes of the ``names`` learned before (the root's other names dropped)."""
        listed = set(names)
        with self._lock:
            for gone in [k for k in self._keys if k[0] == root and k[1] not in listed]:
                del self._keys[gone]
            return {n: self._keys[root, n] for n in names if (root, n) in self._keys}


_SEEN = _SeenKeys()


@dataclass
class _Read:
    """What a lookup took from the index: ``entries`` (of the segments it decoded, its own
    keys), whether the index is ``empty``, whether every segment's keys are known
    (``complete``: a key in none of them is not indexed), and the keys it wants that are in
    segments left ``undecoded`` (too large for the lookup)."""

    entries: Entries
    empty: bool
    complete: bool
    undecoded: set[str] = field(default_factory=set)


def _read_index(store: IndexedStore, nodes: Mapping[str, str]) -> _Read | None:
    """The entries of ``nodes`` in the segments holding them (as many as pay for this
    lookup), decoded and verified, newest last. Segments not seen yet are scanned for their
    keys first, oldest first, as many as pay. Many small segments are all read and compacted,
    as before there was a choice. None when the store keeps no index."""
    if not store.indexed:
        return None
    root = str(store.root)
    names = sorted(n for n in store._index_names() if segment_entries(n) is not None)
    sizes = {n: segment_entries(n) or 0 for n in names}
    limit = _ENTRIES_PER_NODE * len(nodes) + _ENTRIES_FLOOR
    wanted = list(nodes)
    hashes = np.fromiter((hash(k.encode()) for k in wanted), dtype=np.int64, count=len(wanted))
    raws: dict[str, bytes | None] = {}
    undecoded: set[str] = set()
    if len(names) >= COMPACT_AT and sum(sizes.values()) <= limit:
        chosen = names
    else:
        raws = _scan(store, root, names, sizes, hashes, _SCAN_PER_NODE * len(nodes))
        holding = {n: _held(keys, hashes) for n, keys in _SEEN.known(root, names).items()}
        holding = {n: held for n, held in holding.items() if held.any()}
        chosen = []
        for name in sorted(holding, key=lambda n: -int(holding[n].sum()) / max(sizes[n], 1)):
            if sum(sizes[n] for n in chosen) + sizes[name] <= limit:
                chosen.append(name)  # the segments holding most of the keys first
            else:
                undecoded.update(k for k, held in zip(wanted, holding[name], strict=True) if held)
        chosen.sort()  # newest last: a node recorded again supersedes its older entry
    missing = [n for n in chosen if n not in raws]
    raws.update(zip(missing, store._index_read(missing), strict=True))
    merged: Entries = {}
    read: list[str] = []
    for name in chosen:
        raw = raws[name]
        if raw is None:
            continue  # removed since the listing (compacted by another run)
        entries, problem = decode_segment(raw)
        if problem:
            store._index_reject(name, problem, segment_age_s(name))
            continue
        merged.update(entries)
        read.append(name)
    if len(read) >= COMPACT_AT:
        _compact(store, merged, read)
    known = _SEEN.known(root, names)
    complete = all(n in known or n in raws for n in names)
    ours = {k: merged[k] for k in wanted if k in merged}
    return _Read(ours, empty=not any(sizes.values()), complete=complete, undecoded=undecoded)


def _scan(
    store: IndexedStore,
    root: str,
    names: list[str],
    sizes: Mapping[str, int],
    hashes: np.ndarray,
    budget: int,
) -> dict[str, bytes | None]:
    """Learn the keys of the segments not seen yet, oldest first, up to ``budget`` entries
    (plus the floor); the bytes of those holding some of ``hashes`` (to decode them next)."""
    known = _SEEN.known(root, names)
    unseen: list[str] = []
    total = 0
    for name in (n for n in names if n not in known):
        total += sizes[name]
        if total > budget + _ENTRIES_FLOOR:
            break
        unseen.append(name)
    kept: dict[str, bytes | None] = {}
    for group in _groups(unseen, sizes):  # read a few at a time: bounded bytes held
        for name, raw in zip(group, store._index_read(group), strict=True):
            if raw is None:
                continue  # removed since the listing (compacted by another run)
            keys = _SEEN.learn(root, name, raw)
            if _held(keys, hashes).any():
                kept[name] = raw
    return kept


def _groups(names: list[str], sizes: Mapping[str, int]) -> Iterable[list[str]]:
    group: list[str] = []
    for name in names:
        if group and sum(sizes[n] for n in group) + sizes[name] > _GROUP_ENTRIES:
            yield group
            group = []
        group.append(name)
    if group:
        yield group


def _held(keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` are among the sorted ``keys``."""
    if not len(keys):
        return np.zeros(len(hashes), dtype=bool)
    at = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
    return np.asarray(keys[at] == hashes)


def _compact(store: IndexedStore, merged: Entries, read: Iterable[str]) -> None:
    """Replace the segments ``read`` by their union: written first, so a reader in between
    sees the entries in one or the other; segments written meanwhile are not touched."""
    try:
        for name, body in encode_segments(merged):
            store._index_write(name, body)
            _SEEN.learn(str(store.root), name, body)
        store._index_remove(list(read))
    except (CacheWriteError, OSError):
        pass  # the old segments stay: correct, only slower
