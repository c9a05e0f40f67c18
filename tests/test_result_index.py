"""Bulk lookups in the result store and its index (decision 60): ``get_many`` answers like one
``get`` per node on every store; a hot batch on S3 asks for a listing and a few segments, not
one object per node; the node documents stay the source of truth (an interrupted batch, two
writers, a corrupted segment)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.demo import write_demo_data
from giflab_dask.errors import CacheIntegrityWarning
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.reduce import STATS
from giflab_dask.results import batch_table
from giflab_dask.resultstore import ResultStore, index, open_result_store
from giflab_dask.resultstore import local as local_store
from giflab_dask.resultstore import remote as remote_store
from giflab_dask.resultstore.documents import summary_of

from .conftest import CountingS3

METRICS = "ssim,psnr"


def _metric(seed: int, n: int = 5) -> dict[str, Any]:
    values = np.random.default_rng(seed).random(n).tolist()
    summary = np.random.default_rng(seed + 1).random(len(STATS)).tolist()
    return {
        "metric": "mse",
        "outputs": {"mse": {"per_frame": values, "summary": summary}},
        "pair_summary": {"x": float(seed)},
        "compute_seconds": 0.25,
    }


def _alignment(seed: int) -> dict[str, Any]:
    return {
        "mapping": [0, 1, 1, seed % 3],
        "mode": "timeline",
        "size": [32, 48],
        "original_size": [32, 48],
        "compressed_size": [32, 48],
        "notes": [],
        "facts": {"compressed_frames": 3.0, "timing_drift": 0.0},
    }


def _key() -> str:
    return uuid.uuid4().hex


def _nodes(n: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """``n`` metric and ``n`` alignment nodes: key -> (kind, data)."""
    out = {}
    for i in range(n):
        out[_key()] = ("metric", _metric(i))
        out[_key()] = ("alignment", _alignment(i))
    return out


# -- stores: local, memory://, s3:// (moto on 127.0.0.1, every request counted) -------------


@pytest.fixture(params=["local", "memory", "s3"])
def store_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh result-store root of each kind (the storage options configured for S3)."""
    if request.param == "local":
        yield str(tmp_path / "results")
    elif request.param == "memory":
        yield f"memory://giflab-index-{uuid.uuid4().hex[:12]}/results"
    else:
        server = request.getfixturevalue("s3")
        with dask.config.set({"giflab.storage-options": server.options}):
            yield f"s3://giflab/{uuid.uuid4().hex[:12]}/results"


def _populate(store: ResultStore, cap: int) -> dict[str, str]:
    """Present, absent, corrupt, oversized and wrong-kind nodes: key -> kind to ask for."""
    good_m, good_a, absent, corrupt, big, wrong = (_key() for _ in range(6))
    store.put(good_m, "metric", _metric(1))
    store.put(good_a, "alignment", _alignment(1))
    store.put(wrong, "alignment", _alignment(2))  # asked for as a metric
    document = json.loads(json.dumps({"schema": 1, "key": corrupt, "kind": "metric"}))
    document.update(checksum="0" * 32, data=_metric(3))
    raw = {corrupt: json.dumps(document).encode(), big: b" " * (cap + 10)}
    for key, body in raw.items():
        if isinstance(store.root, Path):
            path = store.path_for(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        else:
            store.fs.pipe_file(store._p(key), body)  # type: ignore[attr-defined]
    kinds = {good_m: "metric", absent: "metric", corrupt: "metric", big: "metric"}
    return {**kinds, good_a: "alignment", wrong: "metric"}


def test_get_many_equals_get(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = 4000  # documents above it are refused, as by get
    monkeypatch.setattr(local_store, "max_document_bytes", lambda: cap)
    monkeypatch.setattr(remote_store, "max_document_bytes", lambda: cap)
    one, bulk = (open_result_store(f"{store_root}/{name}") for name in ("one", "bulk"))
    asked = _populate(one, cap)
    for key in asked:  # the same documents in the second store
        raw = one.path_for(key) if isinstance(one.root, Path) else None
        if raw is not None and raw.exists():
            target = bulk.path_for(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw.read_bytes())
        elif raw is None and one.fs.exists(one._p(key)):  # type: ignore[attr-defined]
            bulk.fs.pipe_file(bulk._p(key), one.fs.cat_file(one._p(key)))  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as seen_one:
        warnings.simplefilter("always")
        expected = {key: one.get(key, kind) for key, kind in asked.items()}
    with warnings.catch_warnings(record=True) as seen_bulk:
        warnings.simplefilter("always")
        got = {}
        for kind in ("metric", "alignment"):
            got.update(bulk.get_many([k for k, v in asked.items() if v == kind], kind))
    assert got == expected
    assert sum(v is not None for v in got.values()) == 2  # the good metric and alignment
    assert len(seen_bulk) == len(seen_one) == 3  # corrupt, oversized, wrong kind: warned
    assert all(issubclass(w.category, CacheIntegrityWarning) for w in seen_bulk)
    if isinstance(one.root, Path):  # a local store removes what failed, in both paths
        assert sorted(p.name for p in bulk.entries()) == sorted(p.name for p in one.entries())


def _counted(store_root: str, s3: CountingS3 | None) -> Counter[str]:
    return s3.take() if s3 is not None and store_root.startswith("s3://") else Counter()


def test_lookup_is_one_listing_and_a_segment(
    store_root: str, request: pytest.FixtureRequest
) -> None:
    s3 = request.getfixturevalue("s3") if store_root.startswith("s3://") else None
    nodes = _nodes(100)  # 200 nodes
    writer = open_result_store(store_root)
    for key, (kind, data) in nodes.items():
        writer.put(key, kind, data)
    _counted(store_root, s3)
    absent = {_key(): "metric" for _ in range(50)}  # a cold lookup, no segment yet: a listing
    assert writer.lookup(absent) == ({}, set())
    assert sum(_counted(store_root, s3).values()) <= 3  # index prefix, store (+ its probe)
    writer.record(nodes)
    asked = {key: kind for key, (kind, _) in nodes.items()}
    asked[_key()] = "metric"  # one absent node: fetched on its own
    _counted(store_root, s3)
    found, from_index = open_result_store(store_root).lookup(asked)
    requests = _counted(store_root, s3)
    assert from_index == set(nodes)
    assert found == {key: summary_of(kind, data) for key, (kind, data) in nodes.items()}
    if s3 is not None:  # a listing, one segment, the absent node: not one GET per node
        assert sum(requests.values()) <= 4, requests
    # Per-frame vectors stay in the documents, read when asked for.
    metric = next(k for k, (kind, _) in nodes.items() if kind == "metric")
    assert "per_frame" not in found[metric]["outputs"]["mse"]
    assert writer.get(metric, "metric") == nodes[metric][1]


def test_interrupted_batch_and_two_writers(store_root: str) -> None:
    store = open_result_store(store_root)
    first, second, unindexed = _nodes(3), _nodes(3), _nodes(3)
    for nodes in (first, second, unindexed):
        for key, (kind, data) in nodes.items():
            store.put(key, kind, data)
    # Two writers record their own segments at once; a third batch died before recording.
    open_result_store(store_root).record(first)
    open_result_store(store_root).record(second)
    everything = {**first, **second, **unindexed}
    asked = {key: kind for key, (kind, _) in everything.items()}
    found, from_index = open_result_store(store_root).lookup(asked)
    assert found == {key: summary_of(kind, data) for key, (kind, data) in everything.items()}
    assert from_index == set(first) | set(second)
    # The unindexed nodes were found in their documents and recorded: now all from the index.
    found_again, from_index = open_result_store(store_root).lookup(asked)
    assert found_again == found and from_index == set(asked)
    assert len(store._index_names()) == 3
    # A document replaced since it was indexed: read again where the store checks (local
    # roots; URL roots with verify-index: listing), the index's answer otherwise.
    key = next(k for k, (kind, _) in first.items() if kind == "metric")
    store.put(key, "metric", _metric(99, n=7))
    url = not isinstance(store.root, Path)
    found, from_index = open_result_store(store_root).lookup(asked)
    assert found[key] == summary_of("metric", (first[key] if url else ("", _metric(99, n=7)))[1])
    assert from_index == set(asked) - (set() if url else {key})
    if url:
        with dask.config.set({"giflab.results.verify-index": "listing"}):
            # entries recorded unchecked are checked once (read and recorded with fingerprints)
            found, from_index = open_result_store(store_root).lookup(asked)
            assert found[key] == summary_of("metric", _metric(99, n=7)) and from_index == set()
            assert open_result_store(store_root).lookup(asked) == (found, set(asked))
            store.put(key, "metric", _metric(98, n=7))
            found, from_index = open_result_store(store_root).lookup(asked)
        assert found[key] == summary_of("metric", _metric(98, n=7))
        assert from_index == set(asked) - {key}


def _one_segment(store: Any, nodes: dict[str, tuple[str, dict[str, Any]]]) -> tuple[str, bytes]:
    """Store ``nodes`` and record them: the index's one segment, its name and bytes."""
    for key, (kind, data) in nodes.items():
        store.put(key, kind, data)
    store.record(nodes)
    (name,) = store._index_names()
    (raw,) = store._index_read([name])
    assert raw is not None
    return name, raw


def test_corrupted_segment_is_ignored_and_rebuilt(store_root: str) -> None:
    store = open_result_store(store_root)
    nodes = _nodes(4)
    name, raw = _one_segment(store, nodes)
    # A value changed (the checksum catches it) ...
    tampered = raw.replace(b'"x": 1.0', b'"x": 9.0')
    assert tampered != raw
    bad_shape = raw.replace(b'"timeline"', b"7")  # ... or a shape check (checksum redone)
    head, _, body = bad_shape.partition(b"\n")
    header = json.loads(head)
    header["checksum"] = hashlib.blake2b(body, digest_size=16).hexdigest()
    bad_shape = json.dumps(header).encode() + b"\n" + body
    asked = {key: kind for key, (kind, _) in nodes.items()}
    expected = {key: summary_of(kind, data) for key, (kind, data) in nodes.items()}
    for broken in (tampered, bad_shape):
        assert index.decode_segment(broken)[1] is not None
        store._index_remove(store._index_names())
        store._index_write(name, broken)
        with pytest.warns(CacheIntegrityWarning, match="segment .* failed verification"):
            found, from_index = open_result_store(store_root).lookup(asked)
        assert found == expected and from_index == set()  # from the node documents
        names = store._index_names()
        # rebuilt: a new segment of the nodes; a local reader also removed the broken one (on
        # an object store it may be a write in flight until it is 10 minutes old)
        assert len(names) == (1 if isinstance(store.root, Path) else 2)
        store._index_remove([name])
        found, from_index = open_result_store(store_root).lookup(asked)
        assert found == expected and from_index == set(asked)


def test_many_segments_are_compacted(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    everything = {}
    for _ in range(index.COMPACT_AT + 1):
        nodes = _nodes(2)
        for key, (kind, data) in nodes.items():
            store.put(key, kind, data)
        store.record(nodes)
        everything.update(nodes)
    asked = {key: kind for key, (kind, _) in everything.items()}
    found, from_index = store.lookup(asked)
    assert from_index == set(asked) and len(found) == len(asked)
    assert len(store._index_names()) == 1
    assert store.lookup(asked) == (found, from_index)


# -- the batch: hot runs on S3 ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("index-demo")
    write_demo_data(root / "demo", n_originals=2, n_frames=5, size=(40, 32))
    return root / "demo"


def test_hot_batch_on_s3_asks_for_a_few_objects(demo: Path, s3: CountingS3) -> None:
    url = f"s3://giflab/{uuid.uuid4().hex[:12]}"
    pairs = collect_pairs(demo)
    with dask.config.set({"giflab.cache-dir": url, "giflab.storage-options": s3.options}):
        cold = validate_batch(pairs, metrics=METRICS)
        assert cold.counts()["error"] == 0
        s3.take()
        plan = plan_batch(pairs, metrics=METRICS)
        planning = s3.take()
        hot = plan.compute()
        after = s3.take()
        nodes = len(pairs) * 3  # alignment, ssim, psnr
        assert hot.stats["node_hits"] == len(pairs) * 2 and plan.n_metric_tasks == 0
        # one listing and one segment: a per-node lookup would make one GET per node
        assert sum(planning.values()) <= 3 < nodes, planning
        assert sum(after.values()) == 0, after
        pd.testing.assert_frame_equal(batch_table(hot.outcomes), batch_table(cold.outcomes))
        for c, h in zip(cold.outcomes, hot.outcomes, strict=True):  # vectors read lazily
            assert c.result is not None and h.result is not None
            for name, values in c.result.per_frame.items():
                np.testing.assert_array_equal(h.result.per_frame[name], values)


def test_cache_commands_handle_segments(demo: Path, tmp_path: Path) -> None:
    with dask.config.set({"giflab.cache-dir": str(tmp_path / "cache")}):
        pairs = collect_pairs(demo)[:2]
        assert validate_batch(pairs, metrics="psnr").counts()["error"] == 0
        store = open_result_store()
        segments = store._index_names()
        assert len(segments) == 1 and len(store.entries()) == 4  # the index is not a node
        documents = sum(p.stat().st_size for p in store.entries())
        info = json.loads(CliRunner().invoke(cli, ["cache", "info", "--json"]).output)
        assert info["result_nodes"] == 4 and info["result_bytes"] > documents
        leftover = store.root / index.INDEX_FOLDER / f".tmp-{segments[0]}"
        leftover.write_bytes(b"half")
        assert store.temporaries()  # a segment's temporary is a temporary too
        assert CliRunner().invoke(cli, ["cache", "prune"]).exit_code == 0
        assert leftover.exists()  # young: may be a write in flight
        assert store.prune_temporaries(min_age_s=0) == 1
        result = CliRunner().invoke(cli, ["cache", "clear", "--yes"])
        assert result.exit_code == 0 and "4 stored results" in result.output
        assert store._index_names() == [] and store.nbytes() == 0


def test_an_index_too_large_for_the_lookup_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path / "results")
    nodes = _nodes(3)
    for key, (kind, data) in nodes.items():
        store.put(key, kind, data)
    store.record(nodes)
    monkeypatch.setattr(index, "_ENTRIES_FLOOR", 0)
    monkeypatch.setattr(index, "_ENTRIES_PER_NODE", 1)  # 6 entries for 1 node asked: too many
    key, (kind, data) = next(iter(nodes.items()))
    found, from_index = store.lookup({key: kind})
    assert found == {key: summary_of(kind, data)} and from_index == set()
    assert len(store._index_names()) == 1  # and nothing recorded for so small a lookup


def test_a_lookup_decodes_only_the_segments_holding_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The windows of a huge batch: each recorded its own segment, each rerun looks up its own.
    store = ResultStore(tmp_path / "results")
    windows = [_nodes(10) for _ in range(20)]  # 20 segments of 20 entries: 400 in the index
    for nodes in windows:
        for key, (kind, data) in nodes.items():
            store.put(key, kind, data)
        store.record(nodes)
    decoded: list[int] = []
    decode = index.decode_segment

    def counting(raw: bytes) -> Any:
        entries, problem = decode(raw)
        decoded.append(len(entries))
        return entries, problem

    monkeypatch.setattr(index, "decode_segment", counting)
    monkeypatch.setattr(local_store.ResultStore, "get_many", None)  # no document is read
    for nodes in (windows[3], windows[17], windows[3]):
        asked = {key: kind for key, (kind, _) in nodes.items()}
        scanned = index._SEEN.scanned
        found, from_index = open_result_store(store.root).lookup(asked)
        assert from_index == set(asked)
        assert found == {key: summary_of(kind, data) for key, (kind, data) in nodes.items()}
        # one segment of 20 entries for 20 nodes: not the 400 of the whole index (20x the
        # nodes asked; before, more than the 8x a lookup would read, so one GET per node)
        assert decoded == [20]
        assert index._SEEN.scanned == scanned  # the keys of segments it wrote were known
        decoded.clear()
    assert len(store._index_names()) == 20  # nothing recorded again


def test_segments_written_elsewhere_are_scanned_once(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    nodes = _nodes(10)
    name, raw = _one_segment(store, nodes)
    store._index_remove([name])  # written again by "another process": its keys are not known
    renamed = f"{time.time_ns():020d}-{uuid.uuid4().hex}-20.json"
    store._index_write(renamed, raw)
    asked = {key: kind for key, (kind, _) in nodes.items()}
    for scans in (20, 0):  # its 20 keys scanned by the first lookup, not by the next
        scanned = index._SEEN.scanned
        assert store.lookup(asked)[1] == set(asked)
        assert index._SEEN.scanned - scanned == scans
