"""Frame store and result store on fsspec URLs: memory://, and s3:// against a local moto server.

The S3 tests start moto's server on 127.0.0.1 (no other network) and need the ``s3`` extra
(s3fs, moto[server]); they skip without it, except under GIFLAB_REQUIRE_TOOLS=1 (CI), where a
missing extra is a failure.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.decode import iter_frames
from giflab_dask.demo import write_demo_data
from giflab_dask.errors import (
    CacheIntegrityWarning,
    ConfigError,
    FrameStoreCorruptError,
    FrameStoreError,
    GiflabError,
)
from giflab_dask.framestore import (
    ACCESS,
    MANIFEST,
    FrameStore,
    FsspecFrameStore,
    open_frame_store,
)
from giflab_dask.framestore import listing as framestore_listing
from giflab_dask.framestore import remote as framestore_remote
from giflab_dask.framestore.read import read_entry_chunk
from giflab_dask.inputs import collect_pairs
from giflab_dask.keys import GifSource, gif_key
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.results import batch_table
from giflab_dask.resultstore import FsspecResultStore, ResultStore, open_result_store

from .conftest import missing, write_pillow_gif

METRICS = "ssim,psnr"


def reference_frames(path: Path) -> np.ndarray:
    return np.stack([rgb.copy() for rgb, _ in iter_frames(path)])


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _memory_url(name: str) -> str:
    return f"memory://giflab-test-{uuid.uuid4().hex[:12]}/{name}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-demo")
    write_demo_data(root / "demo", n_originals=1, n_frames=6, size=(48, 32))
    return root / "demo"


@pytest.fixture(scope="module")
def local_table(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The batch's table with local cache roots: what every URL root must reproduce."""
    cache = tmp_path_factory.mktemp("local-cache")
    with dask.config.set({"giflab.cache-dir": str(cache)}):
        batch = validate_batch(collect_pairs(demo), metrics=METRICS)
    assert batch.counts()["error"] == 0
    return batch_table(batch.outcomes)


def _assert_one_valid_entry_per_key(store: FsspecFrameStore, keys: set[str]) -> None:
    """Exactly the given keys, each with one manifest naming the one data directory there."""
    assert {e.key for e in store.entries()} == keys
    for key in keys:
        children = {c.rsplit("/", 1)[-1] for c in store.fs.ls(store._p(key), detail=False)}
        data_dirs = {c for c in children if c.startswith("w-")}
        manifest = json.loads(store.fs.cat_file(store._p(key, MANIFEST)))
        assert data_dirs == {manifest["data"]}, f"{key}: {children}"
        for rel, (size, digest) in manifest["files"].items():
            body = store.fs.cat_file(store._p(key, manifest["data"], rel))
            assert (len(body), _digest(body)) == (size, digest), rel
        assert store.open(key, verify="checksum") is not None


# -- memory:// --------------------------------------------------------------------------------


def test_batch_on_memory_roots_equals_local_roots(demo: Path, local_table: pd.DataFrame) -> None:
    frames = open_frame_store(_memory_url("frames"))
    results = open_result_store(_memory_url("results"))
    assert isinstance(frames, FsspecFrameStore) and isinstance(results, FsspecResultStore)
    pairs = collect_pairs(demo)
    batch = validate_batch(pairs, metrics=METRICS, store=frames, results=results)
    pd.testing.assert_frame_equal(batch_table(batch.outcomes), local_table)
    keys = {gif_key(p.original) for p in pairs} | {gif_key(p.compressed) for p in pairs}
    _assert_one_valid_entry_per_key(frames, keys)
    assert len(results.entries()) == len(pairs) * 3  # alignment + one node per metric
    assert results.nbytes() > 0
    again = plan_batch(pairs, metrics=METRICS, store=frames, results=results)
    assert again.n_decode_tasks == 0 and again.n_metric_tasks == 0
    second = again.compute()
    assert second.stats["node_misses"] == 0
    pd.testing.assert_frame_equal(batch_table(second.outcomes), local_table)


def test_url_entries_are_read_by_url_tasks(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=11, size=(40, 30))
    store = open_frame_store(_memory_url("frames"))
    with dask.config.set({"giflab.framestore.chunk-mib": 4 * 40 * 30 * 3 / 2**20}):
        stored = store.ensure(gif)
    assert isinstance(stored.path, str) and stored.path.startswith(store.entry_path(stored.key))
    frames = stored.frames(tag="p0")
    assert frames.name == f"gif-frames-{stored.key}-p0"
    assert frames.chunks == ((4, 4, 3), (30,), (40,), (3,))
    graph = dict(frames.__dask_graph__())
    # every task names the entry by URL: no arrays, no filesystem objects in the graph
    assert sorted(graph.values(), key=lambda t: t[3]) == [
        (read_entry_chunk, stored.path, "frames", start, min(start + 4, 11)) for start in (0, 4, 8)
    ]
    np.testing.assert_array_equal(frames.compute(), reference_frames(gif))
    assert stored.alpha() is None


def test_half_written_entry_is_never_read_and_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=9, size=(40, 30), noise=True)
    store = open_frame_store(_memory_url("frames"))
    with dask.config.set({"giflab.framestore.chunk-mib": 0.01}):
        first = store.ensure(gif)
    key = first.key
    wreck = first.path.rsplit("/", 1)[-1]
    # A writer that died before its manifest: chunks (one of them missing), no manifest.
    store.fs.rm_file(store._p(key, MANIFEST))
    store.fs.rm_file(store._p(key, wreck, "frames/c.1.0.0.0"))
    assert store.open(key) is None
    assert store.entries() == []
    rebuilt = store.ensure(gif)
    assert rebuilt.path != first.path and rebuilt.attrs["created"] > first.attrs["created"]
    np.testing.assert_array_equal(rebuilt.frames().compute(), reference_frames(gif))
    store.prune()  # the wreck is young: it might be a live writer's, so it stays
    assert store.fs.exists(store._p(key, wreck))
    monkeypatch.setattr(framestore_remote, "_stale_after_s", lambda: -1.0)
    store.prune()
    assert not store.fs.exists(store._p(key, wreck))
    _assert_one_valid_entry_per_key(store, {key})


def test_losing_writer_discards_its_copy(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=5)
    store = open_frame_store(_memory_url("frames"))
    first = store.ensure(gif)
    # A second writer that missed the first one's manifest (as a racing process would).
    second = store._write(GifSource.from_path(gif))
    assert second.path == first.path and second.attrs["created"] == first.attrs["created"]
    _assert_one_valid_entry_per_key(store, {first.key})


def test_broken_remote_entry_is_reported_and_rebuilt(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=5)
    store = open_frame_store(_memory_url("frames"))
    stored = store.ensure(gif)
    data = stored.path.rsplit("/", 1)[-1]
    chunk = store._p(stored.key, data, "frames/c.0.0.0.0")
    body = bytearray(store.fs.cat_file(chunk))
    body[len(body) // 2] ^= 0x10
    store.fs.pipe_file(chunk, bytes(body))
    with pytest.warns(CacheIntegrityWarning, match="checksum"):
        assert store.open(stored.key, verify="checksum") is None
    assert not store.fs.exists(store._p(stored.key, data))  # removed with its manifest
    # the default (size) check passes a chunk of the same size; its CRC32C fails the read,
    # which removes the entry (issue 21, item 8), so the next ensure decodes it again
    stored = store.ensure(gif)
    data = stored.path.rsplit("/", 1)[-1]
    chunk = store._p(stored.key, data, "frames/c.0.0.0.0")
    store.fs.pipe_file(chunk, bytes(body))
    assert store.open(stored.key) is not None
    with pytest.raises(FrameStoreCorruptError, match=r"CRC32C.*decoded again on the next run"):
        store.open(stored.key).frames().compute()
    assert store.open(stored.key) is None and not store.fs.exists(store._p(stored.key, data))
    rebuilt = store.ensure(gif)
    np.testing.assert_array_equal(rebuilt.frames().compute(), reference_frames(gif))
    _assert_one_valid_entry_per_key(store, {stored.key})


def test_lru_prune_and_clear_on_a_url_root(tmp_path: Path) -> None:
    store = open_frame_store(_memory_url("frames"))
    gifs = [
        write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=4, size=(64, 48), seed=i, noise=True)
        for i in range(3)
    ]
    stored = []
    for gif in gifs:
        stored.append(store.ensure(gif))
        time.sleep(0.02)
    store.ensure(gifs[0])  # g0 becomes the most recently used; g1 the least
    entries = store.entries()
    assert [e.key for e in entries] == [stored[1].key, stored[2].key, stored[0].key]
    assert entries[-1].hits == 1 and entries[0].hits == 0
    per_entry = max(e.nbytes for e in entries)
    assert store.nbytes() == sum(e.nbytes for e in entries)
    assert store.prune(2 * per_entry) == [stored[1].key]
    assert store.clear() == 2
    assert store.entries() == [] and store.fs.find(store._base) == []


def test_result_store_on_a_url_root() -> None:
    results = open_result_store(_memory_url("results"))
    data = {"metric": "psnr", "outputs": {"psnr": {"per_frame": [1.0, float("inf")]}}}
    results.put("ab" * 16, "metric", data)
    assert results.get("ab" * 16) == data
    assert results.contains("ab" * 16) and results.get("cd" * 16) is None
    assert results.entries() == [results.path_for("ab" * 16)]
    path = results._p("ab" * 16)
    document = json.loads(results.fs.cat_file(path))
    document["data"]["metric"] = "mse"
    results.fs.pipe_file(path, json.dumps(document).encode())
    with pytest.warns(CacheIntegrityWarning, match="checksum mismatch"):
        assert results.get("ab" * 16) is None
    results.put("ab" * 16, "metric", data)  # the recomputed node replaces it
    assert results.get("ab" * 16) == data
    assert results.prune_temporaries() == 0
    assert results.clear() == 1 and results.entries() == [] and results.nbytes() == 0


def test_roots_from_config_and_cli_accept_urls(tmp_path: Path) -> None:
    url = _memory_url("cache")
    with dask.config.set({"giflab.cache-dir": url}):
        assert open_frame_store().root == f"{url}/frames"
        assert open_result_store().root == f"{url}/results"
    with dask.config.set({"giflab.framestore.root": f"file://{tmp_path}/f"}):
        local = open_frame_store()
        assert type(local) is FrameStore and local.root == tmp_path / "f"
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=3)
    runner = CliRunner()
    out = runner.invoke(cli, ["--cache-dir", url, "decode", str(gif)])
    assert out.exit_code == 0, out.output
    info = runner.invoke(cli, ["--cache-dir", url, "cache", "info", "--json"])
    assert info.exit_code == 0, info.output
    facts = json.loads(info.output)
    assert facts["framestore"] == f"{url}/frames" and facts["entries"] == 1
    assert runner.invoke(cli, ["--cache-dir", url, "cache", "prune"]).exit_code == 0
    cleared = runner.invoke(cli, ["--cache-dir", url, "cache", "clear", "--yes"])
    assert cleared.exit_code == 0 and "removed 1 entries" in cleared.output


def test_local_store_classes_refuse_urls_and_name_the_factory() -> None:
    url = _memory_url("cache")
    with pytest.raises(FrameStoreError, match=r"memory://.*open_frame_store"):
        FrameStore(f"{url}/frames")
    with pytest.raises(GiflabError, match=r"memory://.*open_result_store"):
        ResultStore(f"{url}/results")
    with dask.config.set({"giflab.cache-dir": url}), pytest.raises(FrameStoreError):
        FrameStore()  # the configured root is a URL too


def test_unknown_protocol_and_bad_options_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="nosuchfs://x"):
        open_frame_store("nosuchfs://x/frames").entries()
    with (
        dask.config.set({"giflab.storage-options": "endpoint=1"}),
        pytest.raises(ConfigError, match="storage-options must be a mapping"),
    ):
        open_result_store(_memory_url("r")).get("ab" * 16)


# -- s3:// on a local moto server -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server on 127.0.0.1 and the storage options that reach it."""
    try:
        import boto3
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        missing(f"the s3 extra is not installed ({exc}): pip install 'giflab-dask[s3]'")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket="giflab")  # fmt: skip
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    try:
        yield options
    finally:
        server.stop()


@pytest.fixture
def s3_cache(s3_server: dict[str, Any]) -> Iterator[str]:
    """A fresh ``s3://giflab/<uuid>`` cache-dir, with the storage options configured."""
    url = f"s3://giflab/{uuid.uuid4().hex[:12]}"
    with dask.config.set({"giflab.cache-dir": url, "giflab.storage-options": s3_server}):
        yield url


def test_s3_batch_then_all_cache_hits(demo: Path, local_table: pd.DataFrame, s3_cache: str) -> None:
    pairs = collect_pairs(demo)
    first = validate_batch(pairs, metrics=METRICS)
    pd.testing.assert_frame_equal(batch_table(first.outcomes), local_table)
    frames = open_frame_store()
    assert isinstance(frames, FsspecFrameStore) and frames.root == f"{s3_cache}/frames"
    keys = {gif_key(p.original) for p in pairs} | {gif_key(p.compressed) for p in pairs}
    _assert_one_valid_entry_per_key(frames, keys)
    again = plan_batch(pairs, metrics=METRICS)
    assert again.n_decode_tasks == 0 and again.n_metric_tasks == 0
    second = again.compute()
    assert second.stats["node_hits"] == len(pairs) * 2 and second.stats["node_misses"] == 0
    pd.testing.assert_frame_equal(batch_table(second.outcomes), local_table)
    # Another metric reads the stored frames in worker processes that get only URLs (and the
    # configuration, shipped by the batch): nothing is decoded again.
    plan = plan_batch(pairs, metrics="mse")
    assert plan.n_decode_tasks == 0 and plan.n_metric_tasks == len(pairs)
    third = plan.compute(scheduler="processes", num_workers=2)
    assert third.counts()["error"] == 0 and third.stats["node_misses"] == len(pairs)


def test_s3_alignment_nodes_are_stored_by_the_graph(
    demo: Path, s3_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giflab_dask.align import AlignOptions
    from giflab_dask.resultstore import alignment_node_key

    pairs = collect_pairs(demo)
    client_puts: list[str] = []
    real = FsspecResultStore.put

    def put(store: FsspecResultStore, key: str, kind: str, data: dict[str, Any]) -> None:
        if threading.current_thread() is threading.main_thread():
            client_puts.append(kind)
        real(store, key, kind, data)

    monkeypatch.setattr(FsspecResultStore, "put", put)
    plan = plan_batch(pairs, metrics="psnr")
    assert client_puts == []
    result = plan.compute(scheduler="threads", num_workers=2)
    assert result.counts()["error"] == 0 and client_puts == []
    results = open_result_store()
    options = AlignOptions.from_config()
    for pair, outcome in zip(pairs, result.outcomes, strict=True):
        key = alignment_node_key(gif_key(pair.original), gif_key(pair.compressed), options)
        node = results.get(key, "alignment")
        assert node is not None and outcome.result is not None
        assert node["facts"].items() <= outcome.result.summaries.items()
        assert "frame_count_change" in node["facts"]


_WRITER = """
import json, sys, time
from pathlib import Path
import dask
url, options, go, demo = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
dask.config.set({"giflab.cache-dir": url, "giflab.storage-options": options,
                 "giflab.framestore.chunk-mib": 0.02})
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import validate_batch
pairs = collect_pairs(demo)[:1]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
batch = validate_batch(pairs, metrics="psnr")
print(json.dumps({p.original + " " + p.compressed: o.result.summaries["psnr_mean"]
                  for p, o in zip(pairs, batch.outcomes)}))
"""


def test_two_processes_write_the_same_entries_on_s3(
    demo: Path, s3_server: dict[str, Any], tmp_path: Path
) -> None:
    url = f"s3://giflab/{uuid.uuid4().hex[:12]}"
    go = tmp_path / "go"
    args = [sys.executable, "-c", _WRITER, url, json.dumps(s3_server), str(go), str(demo)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:  # both have imported everything: start them together
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])
    with dask.config.set({"giflab.storage-options": s3_server}):
        frames = open_frame_store(f"{url}/frames")
        pairs = collect_pairs(demo)[:1]
        keys = {gif_key(p.original) for p in pairs} | {gif_key(p.compressed) for p in pairs}
        _assert_one_valid_entry_per_key(frames, keys)
        results = open_result_store(f"{url}/results")
        assert len(results.entries()) == len(pairs) * 2  # alignment + psnr, once each
        with dask.config.set({"giflab.cache-dir": url}):
            again = plan_batch(pairs, metrics="psnr")
        assert again.n_decode_tasks == 0 and again.n_metric_tasks == 0


def test_s3_half_written_entry_and_access_marker(s3_cache: str, tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=7, size=(40, 30), noise=True)
    store = open_frame_store()
    stored = store.ensure(gif)
    assert not store.fs.exists(store._p(stored.key, ACCESS))  # the writer's open, not written
    assert store.open(stored.key) is not None and [e.hits for e in store.entries()] == [1]
    assert json.loads(store.fs.cat_file(store._p(stored.key, ACCESS)))["opens"] == 2
    store.fs.rm_file(store._p(stored.key, MANIFEST))  # chunks without a manifest
    assert store.open(stored.key) is None and store.entries() == []
    rebuilt = store.ensure(gif)
    assert rebuilt.path != stored.path
    np.testing.assert_array_equal(rebuilt.frames().compute(), reference_frames(gif))


# -- open_many: the batch's bulk open -----------------------------------------------------------


def _store_with_damage(kind: str, gifs: list[Path], root: Path) -> tuple[FrameStore, list[str]]:
    """A store holding ``gifs``: the first intact, then a manifest that is not JSON, one that is
    not an object, an entry with a file missing; and the keys to open (plus one never stored)."""
    url = _memory_url("frames") if kind == "memory" else str(root / uuid.uuid4().hex[:8])
    store = open_frame_store(url)
    keys = [store.ensure(gif).key for gif in gifs]

    def write(key: str, rel: str, body: bytes | None) -> None:
        if isinstance(store, FsspecFrameStore):
            path = store._p(key, *rel.split("/"))
            store.fs.rm_file(path) if body is None else store.fs.pipe_file(path, body)
        else:
            path = Path(store.entry_path(key), rel)
            path.unlink() if body is None else path.write_bytes(body)

    write(keys[1], MANIFEST, b"{not json")
    write(keys[2], MANIFEST, b"[1, 2]")
    data = str(store.open(keys[3]).path).replace("\\", "/").rsplit("/", 1)[-1]
    chunk = "frames/c.0.0.0.0"
    write(keys[3], chunk if kind == "local" else f"{data}/{chunk}", None)
    return store, [*keys, "0" * 32, keys[0]]


def _opened_view(store: FrameStore, found: list[Any], caught: list[Any]) -> Any:
    """What opening showed: each entry's identity, the warnings (root-free), what is left."""
    entries = [
        None if s is None else (s.key, s.n_frames, s.height, s.width, s.attrs["created"] > 0)
        for s in found
    ]
    messages = [str(w.message).replace(str(store.root), "<root>") for w in caught]
    return entries, messages, sorted(e.key for e in store.entries())


@pytest.mark.parametrize("kind", ["memory", "memory-listed", "local"])
def test_open_many_equals_open(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "memory-listed":  # the root's listing answers for the keys it does not show
        monkeypatch.setattr(framestore_listing, "GETS_PER_PAGE", 1)
        kind = "memory"
    gifs = [write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=3 + i, noise=True) for i in range(4)]
    views = []
    for bulk in (False, True):
        store, keys = _store_with_damage(kind, gifs, tmp_path)
        with pytest.warns(CacheIntegrityWarning) as caught:
            if bulk:
                opened = store.open_many(keys)
                assert list(opened) == list(dict.fromkeys(keys))  # distinct, in order
                found = [opened[k] for k in keys]
            else:
                found = [store.open(k) for k in keys]
        views.append(_opened_view(store, found, list(caught)))
    assert views[0] == views[1]
    entries, messages, left = views[1]
    assert entries[0] is not None and entries[0] == entries[-1]
    assert entries[1:5] == [None] * 4 and len(messages) == 3
    assert "unreadable metadata" in messages[0] and "not a JSON object" in messages[1]
    assert "frames/c.0.0.0.0 is missing" in messages[2]
    assert left == [entries[0][0]]  # the broken entries were removed, as open removes them


def test_open_many_maps_an_open_error_to_its_key(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=3)
    store = open_frame_store(_memory_url("frames"))
    key = store.ensure(gif).key

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise FrameStoreError("frame store entry x: cannot be read")

    store._touch_remote = broken  # type: ignore[method-assign]  # after verification
    opened = store.open_many([key, "0" * 32])
    assert isinstance(opened[key], FrameStoreError) and opened["0" * 32] is None
    with pytest.raises(FrameStoreError, match="cannot be read"):
        store.open(key)


def test_s3_planning_fetches_the_manifests_in_one_call(
    demo: Path, s3_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    single: list[str] = []
    bulk: list[list[str]] = []
    real_read, real_many = framestore_remote.read_manifest, FsspecFrameStore.open_many

    def read_manifest(fs: Any, entry: str) -> Any:
        single.append(entry)
        return real_read(fs, entry)

    def open_many(store: FsspecFrameStore, keys: Any, **kwargs: Any) -> Any:
        bulk.append(list(keys))
        return real_many(store, bulk[-1], **kwargs)

    monkeypatch.setattr(framestore_remote, "read_manifest", read_manifest)
    monkeypatch.setattr(FsspecFrameStore, "open_many", open_many)
    gifs = {gif_key(p) for pair in pairs for p in (pair.original, pair.compressed)}
    plan = plan_batch(pairs, metrics="psnr")  # cold: every GIF is decoded by the graph
    assert single == [] and len(bulk) == 1 and set(bulk[0]) == gifs
    assert plan.compute(scheduler="threads").counts()["error"] == 0
    bulk.clear()
    single.clear()
    # warm frame store, results cleared: entries opened (and verified) from one bulk fetch
    open_result_store().clear()
    plan = plan_batch(pairs, metrics="psnr")
    assert single == [] and len(bulk) == 1 and set(bulk[0]) == gifs
    assert plan.compute(scheduler="threads").counts()["error"] == 0


def test_an_open_error_is_the_error_row_of_each_pair_that_needs_the_entry(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    with dask.config.set({"giflab.cache-dir": _memory_url("cache")}):
        assert validate_batch(pairs, metrics="psnr").counts()["error"] == 0
        open_result_store().clear()  # frames stored, results not: planning opens every entry
        bad = gif_key(pairs[0].compressed)
        real = FsspecFrameStore._touch_remote

        def touch(store: FsspecFrameStore, key: str) -> None:
            if key == bad:
                raise FrameStoreError(f"frame store entry {key}: cannot be read")
            real(store, key)

        monkeypatch.setattr(FsspecFrameStore, "_touch_remote", touch)
        plan = plan_batch(pairs, metrics="psnr")
    errors = [o.error for o in plan.outcomes]
    needs = [gif_key(p.compressed) == bad for p in pairs]
    assert sum(needs) >= 1 and len(pairs) > sum(needs)
    for error, need in zip(errors, needs, strict=True):
        assert (error == f"frame store entry {bad}: cannot be read") if need else error is None
