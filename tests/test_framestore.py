from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.errors import CacheIntegrityWarning, FrameStoreCorruptError
from giflab_dask.framestore import (
    MANIFEST,
    FrameStore,
    StoredGif,
    chunk_frames_for,
    decode_gif,
    open_frame_store,
    open_frames,
    read_frames,
)
from giflab_dask.framestore.local import _hash_file
from giflab_dask.keys import gif_key

from .conftest import write_pillow_gif


def reference_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(rgb.copy(), a.copy()) for rgb, a in iter_frames(path)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_lazy_frames_have_name_shape_chunks_and_dtype(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=11, size=(40, 30))
    with dask.config.set({"giflab.framestore.chunk-mib": 4 * 40 * 30 * 3 / 2**20}):
        stored = decode_gif(gif)
    frames = stored.frames()
    assert isinstance(frames, da.Array)
    assert frames.name == f"gif-frames-{gif_key(gif)}"
    assert frames.shape == (11, 30, 40, 3)
    assert frames.dtype == np.uint8
    assert frames.chunks == ((4, 4, 3), (30,), (40,), (3,))
    np.testing.assert_array_equal(frames.compute(), reference_frames(gif)[0])
    assert stored.alpha() is None  # opaque GIF: no alpha array stored
    np.testing.assert_array_equal(stored.durations_ms, [50] * 11)


def test_chunking_targets_configured_mib() -> None:
    assert chunk_frames_for(360, 640, 4) == 6  # 640x360 RGB frames are 675 KiB
    assert chunk_frames_for(4000, 4000, 4) == 1  # never less than one frame
    with dask.config.set({"giflab.framestore.chunk-mib": 1}):
        assert chunk_frames_for(100, 100) == 34


def test_decode_once_then_lookup(anim_gif: Path, tmp_path: Path) -> None:
    store = open_frame_store()
    first = store.ensure(anim_gif)
    copy = tmp_path / "copy.gif"
    copy.write_bytes(anim_gif.read_bytes())
    second = store.ensure(copy)
    assert second.key == first.key
    assert second.attrs["created"] == first.attrs["created"]  # not decoded again
    assert [e.key for e in store.entries()] == [first.key]
    assert store.entries()[0].hits >= 1


def test_concurrent_decoders_of_one_gif_decode_it_once_and_leave_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lock files go when their decode ends (before, ``.locks/`` kept one file per GIF ever
    decoded); threads waiting on the removed file still decode each GIF once."""
    from concurrent.futures import ThreadPoolExecutor

    from giflab_dask.framestore import FrameStore

    decoded: list[str] = []
    real_write = FrameStore._write_local

    def slow_write(self: FrameStore, source: object) -> object:
        decoded.append(source.key)  # type: ignore[attr-defined]
        time.sleep(0.05)  # the other threads are waiting on the lock meanwhile
        return real_write(self, source)  # type: ignore[arg-type]

    monkeypatch.setattr(FrameStore, "_write_local", slow_write)
    gifs = [
        write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=3, size=(24, 16), seed=i, noise=True)
        for i in range(5)
    ]
    store = open_frame_store()
    with ThreadPoolExecutor(6) as pool:
        for gif in gifs:
            stored = list(pool.map(store.ensure, [gif] * 6))
            assert {s.key for s in stored} == {gif_key(gif)}
    assert sorted(decoded) == sorted(gif_key(g) for g in gifs)
    assert list((store.root / ".locks").iterdir()) == []


#: Holds a key's lock file until its standard input closes.
_HOLD_LOCK = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_prune_removes_the_lock_files_no_one_holds(tmp_path: Path) -> None:
    store = open_frame_store()
    locks = store.root / ".locks"
    locks.mkdir(parents=True)
    stale = [locks / f"{i:032x}.lock" for i in range(3)]  # a version that kept them, or a crash
    for path in stale:
        path.touch()
    (locks / "notes.txt").touch()  # not a name the store gives
    held = locks / f"{'f' * 32}.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(held)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store.prune(None)
        assert sorted(p.name for p in locks.iterdir()) == sorted(["notes.txt", held.name])
    finally:
        holder.communicate(timeout=60)
    store.prune(None)
    assert [p.name for p in locks.iterdir()] == ["notes.txt"]


def test_store_root_comes_from_config(anim_gif: Path, tmp_path: Path) -> None:
    root = tmp_path / "custom-frames"
    with dask.config.set({"giflab.framestore.root": str(root)}):
        stored = decode_gif(anim_gif)
    assert stored.path.parent == root


def test_store_root_from_environment(anim_gif: Path, tmp_path: Path) -> None:
    root = tmp_path / "env-frames"
    code = (
        "import sys; from giflab_dask.framestore import decode_gif; "
        "print(decode_gif(sys.argv[1]).path.parent)"
    )
    env = {**os.environ, "DASK_GIFLAB__FRAMESTORE__ROOT": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(anim_gif)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == root


def test_transparent_gif_stores_alpha(tmp_path: Path) -> None:
    from PIL import Image

    frames = []
    for i in range(3):
        im = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
        im.paste((255, 0, 0, 255), (i * 3, 2, i * 3 + 5, 7))
        frames.append(im)
    gif = tmp_path / "t.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=40, disposal=2)
    stored = decode_gif(gif)
    assert stored.has_alpha
    alpha = stored.alpha()
    assert alpha is not None and alpha.name == f"gif-alpha-{stored.key}"
    np.testing.assert_array_equal(alpha.compute(), reference_frames(gif)[1])
    assert (alpha[0].compute() == 0).any()


def _chunk_files(stored_path: Path) -> list[Path]:
    return sorted((stored_path / "frames").glob("c.*"))


def test_flipped_byte_is_detected_and_rebuilt(anim_gif: Path) -> None:
    store = open_frame_store()
    stored = store.ensure(anim_gif)
    expected = stored.frames().compute()
    chunk = _chunk_files(stored.path)[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    with pytest.warns(CacheIntegrityWarning, match="checksum"):
        rebuilt = store.ensure(anim_gif)
    assert rebuilt.attrs["created"] > stored.attrs["created"]
    np.testing.assert_array_equal(rebuilt.frames().compute(), expected)


def test_flipped_byte_fails_the_read_when_not_verified_on_open(anim_gif: Path) -> None:
    store = open_frame_store()
    stored = store.ensure(anim_gif)
    chunk = _chunk_files(stored.path)[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    reopened = store.open(stored.key, verify="none")
    assert reopened is not None
    # each chunk file's CRC32C catches what the manifest check was told to skip
    with pytest.raises(FrameStoreCorruptError, match=f"{chunk.name}.* CRC32C"):
        reopened.frames().compute()


def test_direct_reads_name_a_corrupt_chunk(anim_gif: Path) -> None:
    stored = open_frame_store().ensure(anim_gif)
    chunk = _chunk_files(stored.path)[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    with pytest.raises(FrameStoreCorruptError, match=f"{chunk.name}.* corrupt"):
        read_frames(str(stored.path), "frames", slice(0, 1))
    chunk.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(FrameStoreCorruptError, match="corrupt"):
        read_frames(str(stored.path), "frames", slice(0, 1))


def test_missing_chunk_is_detected(anim_gif: Path) -> None:
    store = open_frame_store()
    stored = store.ensure(anim_gif)
    _chunk_files(stored.path)[0].unlink()
    reopened = store.open(stored.key, verify="none")
    assert reopened is not None
    with pytest.raises(FrameStoreCorruptError, match="missing"):
        reopened.frames().compute()  # never silently zeros
    with pytest.raises(FrameStoreCorruptError, match="missing"):
        read_frames(str(stored.path), "frames", np.array([0]))
    with pytest.warns(CacheIntegrityWarning, match="missing"):
        assert store.open(stored.key, verify="size") is None
    assert store.ensure(anim_gif).frames().shape[0] == 6


def test_open_reads_the_documents_it_wrote_without_zarr(tmp_path: Path) -> None:
    gif = write_pillow_gif(
        tmp_path / "a.gif", n_frames=7, size=(40, 30), durations=[70, 40, 70, 90, 70, 70, 120]
    )
    store = open_frame_store()
    stored = store.ensure(gif)
    direct = StoredGif.from_documents(
        stored.key, stored.path, lambda r: (stored.path / r).read_bytes()
    )
    via_zarr = StoredGif.from_group(stored.key, stored.path, zarr.open_group(str(stored.path)))
    assert direct is not None
    for other in (via_zarr, stored):
        assert (direct.key, direct.path, direct.attrs, direct.shape) == (
            other.key, other.path, other.attrs, other.shape,
        )  # fmt: skip
        np.testing.assert_array_equal(direct.durations_ms, other.durations_ms)
    np.testing.assert_array_equal(direct.durations_ms, scan_gif(gif).durations_ms)
    assert direct.durations_ms.dtype == np.int32


def test_open_falls_back_to_zarr_for_other_durations_codecs(tmp_path: Path) -> None:
    gif = write_pillow_gif(
        tmp_path / "a.gif", n_frames=7, size=(40, 30), durations=[70, 40, 70, 90, 70, 70, 120]
    )
    store = open_frame_store()
    stored = store.ensure(gif)
    # durations rewritten by plain Zarr with its default codecs and chunk keys; the manifest
    # is brought up to date, so the entry is intact, only not in this layout's own encoding
    shutil.rmtree(stored.path / "durations_ms")
    group = zarr.open_group(str(stored.path), mode="a")
    group.create_array("durations_ms", data=np.arange(7, dtype=np.int32) * 10)
    files = {
        p.relative_to(stored.path).as_posix(): [p.stat().st_size, _hash_file(p)]
        for p in stored.path.rglob("*")
        if p.is_file() and p.name not in (MANIFEST, "giflab-access")
    }
    manifest = json.loads((stored.path / MANIFEST).read_text())
    (stored.path / MANIFEST).write_text(json.dumps({**manifest, "files": files}))
    read = lambda r: (stored.path / r).read_bytes()  # noqa: E731
    assert StoredGif.from_documents(stored.key, stored.path, read) is None
    reopened = store.open(stored.key)
    assert reopened is not None
    np.testing.assert_array_equal(reopened.durations_ms, np.arange(7) * 10)


def test_corrupt_durations_chunk_is_rebuilt(tmp_path: Path) -> None:
    gif = write_pillow_gif(
        tmp_path / "a.gif", n_frames=7, size=(40, 30), durations=[70, 40, 70, 90, 70, 70, 120]
    )
    store = open_frame_store()
    stored = store.ensure(gif)
    chunk = stored.path / "durations_ms" / "c.0"
    data = bytearray(chunk.read_bytes())
    data[0] ^= 0x01
    chunk.write_bytes(bytes(data))
    read = lambda r: (stored.path / r).read_bytes()  # noqa: E731
    with pytest.raises(FrameStoreCorruptError, match=r"c\.0 is corrupt: CRC32C"):
        StoredGif.from_documents(stored.key, stored.path, read)
    # not caught by a size-only check: the read itself names the chunk, and the entry rebuilds
    with pytest.warns(CacheIntegrityWarning, match=r"c\.0 is corrupt"):
        assert store.open(stored.key, verify="size") is None
    np.testing.assert_array_equal(store.ensure(gif).durations_ms, scan_gif(gif).durations_ms)


def test_layout_version_mismatch_is_rebuilt(anim_gif: Path) -> None:
    store = open_frame_store()
    stored = store.ensure(anim_gif)
    manifest = json.loads((stored.path / MANIFEST).read_text())
    manifest["layout_version"] = -1
    (stored.path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.warns(CacheIntegrityWarning, match="layout version"):
        assert store.ensure(anim_gif).attrs["layout_version"] != -1


def test_entry_without_manifest_is_never_read(anim_gif: Path) -> None:
    store = open_frame_store()
    stored = store.ensure(anim_gif)
    (stored.path / MANIFEST).unlink()
    assert store.open(stored.key) is None
    assert store.entries() == []


def test_lru_eviction_keeps_store_under_max_bytes(tmp_path: Path) -> None:
    store = open_frame_store()
    gifs = [
        write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=4, size=(64, 48), seed=i, noise=True)
        for i in range(4)
    ]
    sizes = {}
    with dask.config.set({"giflab.framestore.max-bytes": None}):
        for gif in gifs[:3]:
            sizes[gif.name] = store.ensure(gif)
            time.sleep(0.02)
        store.ensure(gifs[0])  # g0 is now the most recently used; g1 the least
        time.sleep(0.02)
    per_entry = max(e.nbytes for e in store.entries())
    limit = 3 * per_entry + per_entry // 2
    with dask.config.set({"giflab.framestore.max-bytes": limit}):
        store.ensure(gifs[3])
    remaining = {e.key for e in store.entries()}
    assert sizes["g1.gif"].key not in remaining
    assert {sizes["g0.gif"].key, sizes["g2.gif"].key, gif_key(gifs[3])} <= remaining
    assert store.nbytes() <= limit
    # explicit prune to a smaller bound evicts in LRU order
    evicted = store.prune(2 * per_entry)
    assert evicted[0] == sizes["g2.gif"].key  # g2 is now the least recently used
    assert store.nbytes() <= 2 * per_entry
    n_left = len(store.entries())
    assert store.clear() == n_left
    assert store.entries() == []


def test_decodes_list_the_root_once_per_process_and_sweep_dead_writers_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode no longer looks for its key's dead writers by listing the root (N new GIFs
    cost O(N^2)); a process's first write sweeps every leftover, even in an unbounded store."""
    gifs = [
        write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=3, size=(40, 30), seed=i, noise=True)
        for i in range(4)
    ]
    store = open_frame_store()
    store.root.mkdir(parents=True)
    wrecks = [store.root / f".tmp-{gif_key(g)}-dead" for g in gifs[:2]]
    for wreck in wrecks:
        (wreck / "frames").mkdir(parents=True)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: object = ".") -> object:
        if Path(str(path)) == store.root:
            listed.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    with dask.config.set({"giflab.framestore.max-bytes": None}):
        for gif in gifs:
            store.ensure(gif)
    assert not any(w.exists() for w in wrecks)
    assert len(listed) == 1
    assert sorted(e.key for e in store.entries()) == sorted(gif_key(g) for g in gifs)


def test_store_size_is_checked_once_per_slack_not_after_every_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each size check lists every entry: checking after each decode made N new GIFs cost
    O(N^2) manifest reads. A process checks on its first write, then once it has written
    max-bytes x PRUNE_SLACK since its last check."""
    from giflab_dask.framestore import local as framestore

    gifs = [
        write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=3, size=(40, 30), seed=i, noise=True)
        for i in range(10)
    ]
    store = open_frame_store()
    checks: list[int] = []
    real_evict = FrameStore._evict

    def counting_evict(self: FrameStore, *args: object, **kwargs: object) -> list[str]:
        checks.append(len(self.entries()))
        return real_evict(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FrameStore, "_evict", counting_evict)
    with dask.config.set({"giflab.framestore.max-bytes": 10**10}):  # slack: 156 MB
        for gif in gifs[:5]:
            store.ensure(gif)
    assert checks == [1]  # the first write only
    per_entry = max(e.nbytes for e in store.entries())
    # a slack below one entry: every write checks, and the bound holds after each
    limit = int(3 * per_entry)
    assert limit * framestore.PRUNE_SLACK < per_entry
    with dask.config.set({"giflab.framestore.max-bytes": limit}):
        for gif in gifs[5:]:
            store.ensure(gif)
            assert store.nbytes() <= limit
    assert len(checks) == 6


_KILLABLE = """
import sys, dask
dask.config.set({"giflab.cache-dir": sys.argv[2], "giflab.framestore.chunk-mib": 0.05})
from giflab_dask.framestore import decode_gif
stored = decode_gif(sys.argv[1])
import hashlib
print(stored.attrs["created"], hashlib.sha256(stored.frames().compute().tobytes()).hexdigest())
"""


@pytest.fixture
def big_gif(tmp_path: Path) -> Path:
    return write_pillow_gif(tmp_path / "big.gif", n_frames=120, size=(160, 120), noise=True)


def test_decode_killed_mid_write_leaves_no_entry(
    big_gif: Path, isolated_cache: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(big_gif), str(isolated_cache)])
    frames_root = isolated_cache / "frames"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        temps = list(frames_root.glob(".tmp-*/frames/c.*")) if frames_root.exists() else []
        if len(temps) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert temps, "the decode never started writing chunks"
    store = open_frame_store()
    key = gif_key(big_gif)
    assert store.open(key) is None
    assert store.entries() == []
    assert list(frames_root.glob(".tmp-*"))  # the wreck is there ...
    stored = store.ensure(big_gif)  # ... and the next run rebuilds and cleans it up
    assert not list(frames_root.glob(".tmp-*"))
    np.testing.assert_array_equal(stored.frames().compute(), reference_frames(big_gif)[0])


def test_prune_removes_leftovers_of_dead_writers(big_gif: Path, isolated_cache: Path) -> None:
    wreck = isolated_cache / "frames" / f".tmp-{gif_key(big_gif)}-dead"
    (wreck / "frames").mkdir(parents=True)
    open_frame_store().prune()
    assert not wreck.exists()


def test_two_processes_decoding_the_same_gif(big_gif: Path, isolated_cache: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _KILLABLE, str(big_gif), str(isolated_cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    import hashlib

    expected = hashlib.sha256(reference_frames(big_gif)[0].tobytes()).hexdigest()
    assert outs[0][1] == outs[1][1] == expected
    assert outs[0][0] == outs[1][0]  # both read the one entry that was written
    assert [e.key for e in open_frame_store().entries()] == [gif_key(big_gif)]
    assert not list((isolated_cache / "frames").glob(".tmp-*"))


def test_open_frames_shortcut(anim_gif: Path) -> None:
    frames = open_frames(anim_gif)
    assert frames.shape == (6, 32, 48, 3)


def test_cache_files_hold_no_pickles(anim_gif: Path) -> None:
    stored = decode_gif(anim_gif)
    for file in stored.path.rglob("*"):
        if file.is_file():
            head = file.read_bytes()[:2]
            assert head != b"\x80\x04" and head != b"\x80\x05", f"{file} looks like a pickle"
