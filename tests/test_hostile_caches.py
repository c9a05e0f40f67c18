"""Caches that others can write, fill or break (issue 21, items 3, 5, 6, 7, 8 and 10).

Every cache tree here is built by the test: corrupted and hostile documents, planted symlinks,
FIFOs, devices, and writers patched to fail with ENOSPC or EACCES.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.demo import write_demo_data
from giflab_dask.errors import CacheIntegrityWarning, FrameStoreCorruptError
from giflab_dask.framestore import ACCESS, MANIFEST, FrameStore, open_frame_store, read_frames
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import validate_batch
from giflab_dask.resultstore import ResultStore, open_result_store
from giflab_dask.resultstore import local as resultstore_local
from giflab_dask.resultstore.documents import checksum as _checksum

from .conftest import write_pillow_gif

KEY = "ab" * 16


def _metric_data(n: int = 3) -> dict:
    summary = [0.5] * 12
    return {
        "metric": "psnr",
        "outputs": {"psnr": {"per_frame": [30.0] * n, "summary": summary}},
        "pair_summary": {},
        "compute_seconds": 0.1,
    }


def _forge(data: object, kind: str = "metric", key: str = KEY) -> bytes:
    """A document with a correct checksum around any data (what an attacker can write)."""
    document = {"schema": 1, "key": key, "kind": kind, "checksum": _checksum(data), "data": data}
    return json.dumps(document).encode()


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    write_demo_data(tmp_path / "demo", n_originals=2, n_frames=6, size=(48, 32))
    return tmp_path / "demo"


# -- item 3: any unreadable result document is a miss ------------------------------------------


UNREADABLE = {
    "flipped high bit": lambda raw: raw.replace(b'"psnr"', b'"ps\xeer"', 1),
    "deeply nested": lambda raw: b"[" * 200_000 + b"]" * 200_000,
    "truncated": lambda raw: raw[: len(raw) // 2],
    "empty": lambda raw: b"",
    "a JSON list": lambda raw: b"[1, 2]",
    "NUL bytes": lambda raw: b"\x00" * 64,
}


@pytest.mark.parametrize("corruption", list(UNREADABLE))
def test_unreadable_result_document_is_a_miss_warned_once(corruption: str) -> None:
    store = open_result_store()
    store.put(KEY, "metric", _metric_data())
    path = store.path_for(KEY)
    path.write_bytes(UNREADABLE[corruption](path.read_bytes()))
    with pytest.warns(CacheIntegrityWarning, match=str(path)):
        assert store.get(KEY, "metric") is None
    assert not path.exists(), "removed, so the next run does not warn again"
    assert store.get(KEY, "metric") is None  # a plain miss now: no warning (warnings are errors)
    store.put(KEY, "metric", _metric_data())
    assert store.get(KEY, "metric") == _metric_data()


def test_deeply_nested_result_in_a_batch_is_recomputed(demo: Path) -> None:
    pairs = collect_pairs(demo)[:1]
    first = validate_batch(pairs, metrics="psnr")
    store = open_result_store()
    node = store.path_for(first.outcomes[0].metric_keys["psnr"])
    node.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.warns(CacheIntegrityWarning, match="RecursionError"):
        again = validate_batch(pairs, metrics="psnr")
    assert again.stats["node_misses"] == 1
    assert (
        again.outcomes[0].result.summaries["psnr_mean"]
        == first.outcomes[0].result.summaries["psnr_mean"]
    )


# -- item 6: documents are checked for shape, reads are capped ---------------------------------


HOSTILE_DATA = {
    "data is a list": ([], "metric", "not a JSON object"),
    "per_frame is a string": (
        {**_metric_data(), "outputs": {"psnr": {"per_frame": "abc", "summary": [0.0] * 12}}},
        "metric",
        "per_frame",
    ),
    "summary too short": (
        {**_metric_data(), "outputs": {"psnr": {"per_frame": [1.0], "summary": [0.0]}}},
        "metric",
        "summary",
    ),
    "no outputs": ({"metric": "psnr"}, "metric", "outputs"),
    "booleans for numbers": (
        {**_metric_data(), "outputs": {"psnr": {"per_frame": [True], "summary": [0.0] * 12}}},
        "metric",
        "per_frame",
    ),
    "alignment under a metric key": ({"mapping": [0]}, "alignment", "kind"),
    "mapping beyond the compressed frames": (
        {
            "mapping": [0, 7],
            "mode": "index",
            "size": [32, 48],
            "original_size": [32, 48],
            "compressed_size": [32, 48],
            "notes": [],
            "facts": {"original_frames": 2.0, "compressed_frames": 2.0},
        },
        "alignment",
        "mapping",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_DATA))
def test_result_documents_are_checked_for_shape(case: str) -> None:
    data, kind, reason = HOSTILE_DATA[case]
    expected = "alignment" if case.startswith("mapping") else "metric"
    store = open_result_store()
    store.put(KEY, "metric", _metric_data())
    store.path_for(KEY).write_bytes(_forge(data, kind))
    with pytest.warns(CacheIntegrityWarning, match=reason):
        assert store.get(KEY, expected) is None
    assert not store.path_for(KEY).exists()


def test_result_document_linked_to_dev_zero_or_a_fifo_is_never_read(tmp_path: Path) -> None:
    store = open_result_store()
    store.put(KEY, "metric", _metric_data())
    path = store.path_for(KEY)
    path.unlink()
    path.symlink_to("/dev/zero")
    started = time.perf_counter()
    with pytest.warns(CacheIntegrityWarning, match="symbolic link"):
        assert store.get(KEY, "metric") is None
    assert not os.path.lexists(path)  # the link went, /dev/zero did not
    os.mkfifo(path)  # a FIFO with no writer: a blocking open would hang here
    with pytest.warns(CacheIntegrityWarning, match="not a regular file"):
        assert store.get(KEY, "metric") is None
    assert time.perf_counter() - started < 5


def test_result_reads_are_size_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_result_store()
    store.put(KEY, "metric", _metric_data(n=1000))
    monkeypatch.setattr(resultstore_local, "max_document_bytes", lambda: 1000)
    with pytest.warns(CacheIntegrityWarning, match="more than the store writes"):
        assert store.get(KEY, "metric") is None


def _entry(store: FrameStore, gif: Path) -> tuple[str, Path]:
    stored = store.ensure(gif)
    return stored.key, Path(stored.path)


def _rewrite_manifest(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps(change(manifest)))


HOSTILE_MANIFESTS = {
    "a list": (lambda m: [], "not a JSON object"),
    "no nbytes": (lambda m: {k: v for k, v in m.items() if k != "nbytes"}, "nbytes"),
    "nbytes a string": (lambda m: {**m, "nbytes": "many"}, "nbytes"),
    "/dev/zero listed": (
        lambda m: {**m, "files": {**m["files"], "/dev/zero": [10**12, "0" * 32]}},
        "not a name inside the entry",
    ),
    "../../etc/hostname listed": (
        lambda m: {**m, "files": {**m["files"], "../../etc/hostname": [5, "0" * 32]}},
        "not a name inside the entry",
    ),
    "a record that is a string": (
        lambda m: {**m, "files": {**m["files"], "zarr.json": "x"}},
        "not \\[size, digest\\]",
    ),
    "another key": (lambda m: {**m, "key": "cd" * 16}, "for key"),
    "files missing": (lambda m: {**m, "files": {}}, "does not list"),
}


@pytest.mark.parametrize("verify", ["checksum", "size", "none"])
@pytest.mark.parametrize("case", list(HOSTILE_MANIFESTS))
def test_hostile_manifests_are_rebuilt_not_followed(anim_gif: Path, case: str, verify: str) -> None:
    store = open_frame_store()
    key, path = _entry(store, anim_gif)
    expected = store.open(key).frames().compute()
    change, reason = HOSTILE_MANIFESTS[case]
    _rewrite_manifest(path, change)
    assert all(e.key != key for e in store.entries())  # listed nowhere, never a traceback
    with pytest.warns(CacheIntegrityWarning, match=reason):
        assert store.open(key, verify=verify) is None
    np.testing.assert_array_equal(store.ensure(anim_gif).frames().compute(), expected)


def test_entry_documents_linked_outside_are_not_read(anim_gif: Path, tmp_path: Path) -> None:
    store = open_frame_store()
    key, path = _entry(store, anim_gif)
    (path / "zarr.json").unlink()
    (path / "zarr.json").symlink_to("/dev/zero")
    with pytest.warns(CacheIntegrityWarning, match="symbolic link"):
        assert store.open(key, verify="none") is None  # no size check: the read refuses
    key, path = _entry(store, anim_gif)
    outside = tmp_path / "outside"
    (path / "frames").rename(outside)
    (path / "frames").symlink_to(outside)  # a folder of the entry swapped for a link
    for verify in ("checksum", "size"):
        with pytest.warns(CacheIntegrityWarning, match="symbolic link"):
            assert store.open(key, verify=verify) is None
        key, path = _entry(store, anim_gif)
        (path / "frames").rename(tmp_path / f"outside-{verify}")
        (path / "frames").symlink_to(tmp_path / f"outside-{verify}")
    assert outside.is_dir() and any(outside.iterdir()), "the link's target is left alone"


def test_attributes_that_would_break_readers_are_rejected(anim_gif: Path) -> None:
    store = open_frame_store()
    key, path = _entry(store, anim_gif)
    expected = store.open(key).frames().compute()
    group = json.loads((path / "zarr.json").read_text())
    group["attributes"]["giflab"]["chunk_frames"] = 0
    body = json.dumps(group).encode()
    (path / "zarr.json").write_bytes(body)
    from giflab_dask.framestore.entry import file_digest as _digest

    _rewrite_manifest(
        path, lambda m: {**m, "files": {**m["files"], "zarr.json": [len(body), _digest(body)]}}
    )
    with pytest.warns(CacheIntegrityWarning, match="chunk_frames"):
        assert store.open(key) is None
    np.testing.assert_array_equal(store.ensure(anim_gif).frames().compute(), expected)


# -- item 5: no symlink inside a cache root is followed; housekeeping deletes only its own -----


def test_access_marker_replaced_by_a_link_is_not_appended_through(
    anim_gif: Path, tmp_path: Path
) -> None:
    store = open_frame_store()
    key, path = _entry(store, anim_gif)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (path / ACCESS).unlink(missing_ok=True)  # a write makes none; an open would
    (path / ACCESS).symlink_to(victim)
    for _ in range(3):
        assert store.open(key) is not None
    assert victim.read_bytes() == b"precious"
    assert [e.hits for e in store.entries() if e.key == key] == [0]


def test_linked_result_shard_is_neither_read_nor_cleared(tmp_path: Path) -> None:
    store = open_result_store()
    store.put("cd" * 16, "metric", _metric_data())  # the root and another shard exist
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = outside / f"{KEY}.json"
    planted.write_bytes(_forge(_metric_data()))
    (outside / "notes.json").write_text("{}")
    (store.root / KEY[:2]).symlink_to(outside, target_is_directory=True)
    assert store.entries() == [store.path_for("cd" * 16)]
    with pytest.warns(CacheIntegrityWarning, match="symbolic link"):
        assert store.get(KEY, "metric") is None  # a valid document, but behind a link
    assert store.clear() == 1
    assert planted.exists() and (outside / "notes.json").exists()
    store.put(KEY, "metric", _metric_data())  # the link is replaced by a folder of our own
    assert (store.root / KEY[:2]).is_dir() and not (store.root / KEY[:2]).is_symlink()
    assert planted.read_bytes() == _forge(_metric_data())
    assert store.get(KEY, "metric") == _metric_data()


def test_clear_and_prune_delete_only_what_the_store_wrote(anim_gif: Path, tmp_path: Path) -> None:
    store = open_frame_store()
    key, _ = _entry(store, anim_gif)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    root = store.root
    (root / "photos").mkdir()
    (root / "photos" / "a.png").write_text("png")
    (root / "notes.txt").write_text("notes")
    (root / ("ef" * 16)).symlink_to(outside, target_is_directory=True)  # named like an entry
    (root / f".tmp-{'12' * 16}-dead").symlink_to(outside, target_is_directory=True)
    (root / ".trash-x").symlink_to(outside, target_is_directory=True)
    results = open_result_store()
    results.put(KEY, "metric", _metric_data())
    (results.root / "mine").mkdir()
    (results.root / "mine" / "x.json").write_text("{}")
    (results.root / KEY[:2] / "notes.json").write_text("{}")  # not a node's name
    store.prune(max_bytes=10**12)
    assert (outside / "keep.txt").read_text() == "mine"
    result = CliRunner().invoke(cli, ["cache", "clear", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "removed 1 entries and 1 stored results" in result.output
    assert not (root / key).exists()
    assert (root / "photos" / "a.png").exists() and (root / "notes.txt").exists()
    assert (outside / "keep.txt").read_text() == "mine"
    assert not any(os.path.lexists(root / n) for n in ("ef" * 16, ".trash-x"))
    assert (results.root / "mine" / "x.json").exists()
    assert (results.root / KEY[:2] / "notes.json").exists()


def test_entry_folder_replaced_by_a_link_is_not_followed(anim_gif: Path, tmp_path: Path) -> None:
    store = open_frame_store()
    key, path = _entry(store, anim_gif)
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere, target_is_directory=True)  # a complete entry, behind a link
    with pytest.warns(CacheIntegrityWarning, match="not followed"):
        assert store.open(key) is None
    assert (elsewhere / MANIFEST).exists(), "the link is removed, not its target"
    assert store.ensure(anim_gif).n_frames == 6 and not path.is_symlink()


def test_lock_folder_replaced_by_a_link_is_not_written_through(
    anim_gif: Path, tmp_path: Path
) -> None:
    store = open_frame_store()
    store.root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / ".locks").symlink_to(outside, target_is_directory=True)
    store.ensure(anim_gif)
    assert list(outside.iterdir()) == []


def test_first_locks_taken_at_once_all_succeed(tmp_path: Path) -> None:
    """The lock folder is made by whichever caller comes first; the others must not take it
    for a planted file (a race that failed concurrent decodes with IsADirectoryError)."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(20):
        store = FrameStore(tmp_path / f"root-{round_}")
        with ThreadPoolExecutor(8) as pool:
            locks = list(pool.map(store._lock, [f"{i:032x}" for i in range(16)]))
        assert len(locks) == 16 and (store.root / ".locks").is_dir()
        assert not (store.root / ".locks").is_symlink()


# -- item 7: an unwritable or full cache is one line, and the table is still written ----------


def _cli_batch(demo: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    args = ["batch", str(demo), "--no-progress", "--metrics", "psnr,ssim", "--out", str(out)]
    return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)


def test_full_result_store_is_one_line_and_the_table_is_written(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    pairs = collect_pairs(demo)
    validate_batch(pairs[:1], metrics="psnr,ssim")  # this pair's results are stored
    validate_batch(pairs, metrics="psnr,ssim", use_cache=False)  # every GIF's frames too

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ResultStore, "_write", full)
    out = tmp_path / "table.csv"
    result = _cli_batch(demo, out)
    assert "Traceback" not in result.output
    root = str(open_result_store().root)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert root in lines[0] and "No space left on device" in lines[0]
    assert result.exit_code == 1
    table = pd.read_csv(out)
    assert len(table) == len(pairs)
    finished = table[table["verdict"] != "error"]
    assert list(finished["compressed"]) == [str(pairs[0].compressed)]
    assert finished["psnr_mean"].notna().all()


def test_unwritable_frame_store_names_the_root_and_the_cause(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(FrameStore, "_write_local", denied)
    out = tmp_path / "table.csv"
    result = _cli_batch(demo, out)
    assert "Traceback" not in result.output and result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(open_frame_store().root) in lines[0], result.output
    assert "Permission denied" in lines[0]
    assert out.exists()


# -- item 8: a chunk failing its CRC on read removes the entry; verify: none from the env ------


def test_crc_failure_on_read_removes_the_entry_and_it_is_decoded_again(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=8, size=(40, 30), noise=True)
    with dask.config.set({"giflab.framestore.verify": "size"}):
        store = open_frame_store()
        key, path = _entry(store, gif)
        expected = store.open(key).frames().compute()
        chunk = sorted((path / "frames").glob("c.*"))[0]
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x10  # same size: verify=size passes it
        chunk.write_bytes(bytes(data))
        stored = store.open(key)
        assert stored is not None
        with pytest.raises(FrameStoreCorruptError, match=r"CRC32C.*decoded again on the next run"):
            read_frames(str(path), "frames", slice(0, 8))
        assert store.open(key) is None, "no longer an entry"
        again = store.ensure(gif)  # decoded again, in the same folder
        np.testing.assert_array_equal(again.frames().compute(), expected)


def test_crc_failure_in_a_batch_heals_on_the_next_run(demo: Path) -> None:
    pairs = collect_pairs(demo)[:1]
    with dask.config.set({"giflab.framestore.verify": "size"}):
        first = validate_batch(pairs, metrics="psnr", use_cache=False)
        store = open_frame_store()
        entry = Path(store.entry_path(first.outcomes[0].original_key))
        for chunk in (entry / "frames").glob("c.*"):
            data = bytearray(chunk.read_bytes())
            data[len(data) // 2] ^= 0x10
            chunk.write_bytes(bytes(data))
        broken = validate_batch(pairs, metrics="psnr", use_cache=False)
        outcome = broken.outcomes[0]
        reason = outcome.error or " ".join(outcome.missing.values())
        assert "CRC32C" in reason and "decoded again" in reason
        healed = validate_batch(pairs, metrics="psnr", use_cache=False)
    assert healed.stats["decode_tasks"] == 1
    assert (
        healed.outcomes[0].result.summaries["psnr_mean"]
        == first.outcomes[0].result.summaries["psnr_mean"]
    )


def test_verify_none_from_the_environment(anim_gif: Path) -> None:
    env = {**os.environ, "DASK_GIFLAB__FRAMESTORE__VERIFY": "none"}
    code = (
        "from giflab_dask import config; "
        "print(config.choice('framestore.verify', ('checksum', 'size', 'none')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "none"
    with dask.config.set({"giflab.framestore.verify": None}):  # what the env var parses to
        store = open_frame_store()
        key, path = _entry(store, anim_gif)
        chunk = sorted((path / "frames").glob("c.*"))[0]
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x10
        chunk.write_bytes(bytes(data))
        assert store.open(key) is not None  # no file checked (checksum would reject it)
    with dask.config.set({"giflab.align.mode": None}), pytest.raises(ValueError, match="None"):
        from giflab_dask import config

        config.choice("align.mode", ("auto", "time", "index", "content"))


# -- item 10: cache info says which temporaries prune keeps -----------------------------------


def test_cache_info_says_young_temporaries_survive_prune() -> None:
    results = open_result_store()
    results.put(KEY, "metric", _metric_data())
    tmp = results.root / KEY[:2] / f".tmp-{KEY}-0123.json"
    tmp.write_text("{")
    info = json.loads(CliRunner().invoke(cli, ["cache", "info", "--json"]).output)
    assert info["result_temporaries"] == 1 and info["result_temporaries_recent"] == 1
    text = CliRunner().invoke(cli, ["cache", "info"]).output
    assert "younger than 10 minutes:\n             prune keeps" in text
    pruned = CliRunner().invoke(cli, ["cache", "prune"])
    assert tmp.exists() and "kept 1 temporaries" in pruned.output
    old = time.time() - 601
    os.utime(tmp, (old, old))
    CliRunner().invoke(cli, ["cache", "prune"])
    assert not tmp.exists()


@pytest.mark.parametrize("case", ["/dev/zero listed", "../../etc/hostname listed", "no nbytes"])
def test_hostile_manifests_on_a_url_root(anim_gif: Path, case: str) -> None:
    import uuid

    store = open_frame_store(f"memory://giflab-test-{uuid.uuid4().hex[:12]}/frames")
    stored = store.ensure(anim_gif)
    expected = stored.frames().compute()
    path = store._p(stored.key, MANIFEST)
    change, reason = HOSTILE_MANIFESTS[case]
    store.fs.pipe_file(path, json.dumps(change(json.loads(store.fs.cat_file(path)))).encode())
    assert store.entries() == []
    with pytest.warns(CacheIntegrityWarning, match=reason):
        assert store.open(stored.key) is None
    np.testing.assert_array_equal(store.ensure(anim_gif).frames().compute(), expected)


def test_stat_index_replaced_by_a_link_is_not_written_through(
    anim_gif: Path, tmp_path: Path, isolated_cache: Path
) -> None:
    from giflab_dask.keys import gif_key

    victim = tmp_path / "victim.db"
    victim.write_bytes(b"")  # an empty file is a valid SQLite database to write tables into
    isolated_cache.mkdir(parents=True)
    (isolated_cache / "stat-index.sqlite").symlink_to(victim)
    key = gif_key(anim_gif)
    assert gif_key(anim_gif) == key  # hashed again each time: the index is refused, not used
    assert victim.read_bytes() == b""
