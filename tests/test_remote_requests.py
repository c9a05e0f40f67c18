"""The requests a cold batch makes on S3 (decision 64). A bulk open skips the manifests a
listing of the root does not show: a cold batch is one listing, not a GET per GIF; pages are
read in key order only while each saved ``GETS_PER_PAGE`` GETs; a stale listing costs a decode
task, never a wrong entry. A decode reads back nothing it wrote."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import pytest

from giflab_dask.demo import write_demo_data
from giflab_dask.framestore import MANIFEST, FsspecFrameStore, open_frame_store, read_frames
from giflab_dask.framestore import listing as framestore_listing
from giflab_dask.framestore import remote as framestore_remote
from giflab_dask.inputs import collect_pairs
from giflab_dask.keys import gif_key
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.results import batch_table

from .conftest import CountingS3

METRICS = "mse,psnr"  # with MSE in the batch, planning reads no result document


@pytest.fixture
def s3_frames(s3: CountingS3) -> Iterator[FsspecFrameStore]:
    """A fresh frame store on moto, its listing pages of 4 entries."""
    with (
        dask.config.set({"giflab.storage-options": s3.options}),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr(framestore_listing, "PAGE_KEYS", 4)
        store = open_frame_store(f"s3://giflab/{uuid.uuid4().hex[:12]}/frames")
        assert isinstance(store, FsspecFrameStore)
        yield store


def _key(head: int, fill: str) -> str:
    return f"{head:02x}{fill * 30}"


def _plant(store: FsspecFrameStore, keys: list[str]) -> None:
    """Entries a listing shows but a reader does not find: a writer's data directory in
    flight, no manifest yet."""
    store.fs.pipe({store._p(key, "w-1-x", "zarr.json"): b"{}" for key in keys})


def _open_counted(
    store: FsspecFrameStore, s3: CountingS3, keys: list[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    s3.take()
    opened = store.open_many(keys)
    return opened, dict(s3.take())


def test_a_cold_open_is_one_listing(s3_frames: FsspecFrameStore, s3: CountingS3) -> None:
    in_flight = [_key(i, "a") for i in (0x30, 0x90)]
    _plant(s3_frames, in_flight)
    keys = [_key(i, "1") for i in range(0, 256, 16)] + in_flight  # 18 keys, 2 pages of entries
    opened, counts = _open_counted(s3_frames, s3, keys)
    assert opened == dict.fromkeys(keys)
    assert counts == {"LIST": 1, "GET": 2}  # the listed entries' manifests only


def test_pages_are_read_while_they_pay(s3_frames: FsspecFrameStore, s3: CountingS3) -> None:
    # 8 entries in the middle of the key space: the first page of 4 covers the 20 keys below
    # it (20 GETs saved), so the second is read, and it is the last: nothing is fetched.
    _plant(s3_frames, [_key(0x80 + i, "0") for i in range(8)])
    keys = [_key(i, "1") for i in range(0, 0x80, 7)] + [_key(i, "1") for i in range(0x90, 256, 6)]
    assert len(keys) == 19 + 19
    opened, counts = _open_counted(s3_frames, s3, keys)
    assert opened == dict.fromkeys(keys) and counts == {"LIST": 2}


def test_a_listing_that_does_not_pay_stops_after_a_page(
    s3_frames: FsspecFrameStore, s3: CountingS3
) -> None:
    # 40 entries spread over the key space (10 pages): the first page covers 2 of the 30
    # keys, fewer than a page must save, so the other 28 are fetched one by one.
    _plant(s3_frames, [_key(i, "0") for i in range(0, 240, 6)])
    keys = [_key(j, "1") for j in range(4, 244, 8)]
    opened, counts = _open_counted(s3_frames, s3, keys)
    assert opened == dict.fromkeys(keys) and counts == {"LIST": 1, "GET": 28}
    # the cost rule's bound: a page beyond a tenth of the GETs saved, at most
    saved = len(keys) - counts["GET"]
    assert counts["LIST"] <= saved / framestore_listing.GETS_PER_PAGE + 1


def test_few_keys_or_a_refused_listing_fetch_every_manifest(
    s3_frames: FsspecFrameStore, s3: CountingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    few = [_key(i, "2") for i in range(framestore_listing.GETS_PER_PAGE - 1)]
    assert _open_counted(s3_frames, s3, few) == (dict.fromkeys(few), {"GET": len(few)})

    def refused(fs: Any, base: str) -> Iterator[Any]:
        raise PermissionError("s3:ListBucket denied")
        yield  # a generator, as the real one

    monkeypatch.setattr(framestore_listing, "_s3_pages", refused)
    keys = [_key(i, "3") for i in range(0, 256, 8)]
    assert _open_counted(s3_frames, s3, keys) == (dict.fromkeys(keys), {"GET": len(keys)})


def test_listed_entries_are_verified_as_open_does(
    s3_frames: FsspecFrameStore, s3: CountingS3, tmp_path: Path
) -> None:
    from .conftest import write_pillow_gif

    gifs = [write_pillow_gif(tmp_path / f"g{i}.gif", n_frames=3 + i, noise=True) for i in range(3)]
    good, broken, gone = (s3_frames.ensure(gif).key for gif in gifs)
    s3_frames.fs.pipe_file(s3_frames._p(broken, MANIFEST), b"{not json")
    keys = [good, broken, gone] + [_key(i, "4") for i in range(0, 256, 16)]
    real = framestore_listing.unlisted

    def listed_then_removed(fs: Any, base: str, wanted: Any) -> set[str]:
        absent = real(fs, base, wanted)
        s3_frames.remove(gone)  # removed after the listing showed it: its GET misses
        return absent

    with (
        pytest.MonkeyPatch.context() as mp,
        pytest.warns(Warning, match="unreadable metadata") as caught,
    ):
        mp.setattr(framestore_remote, "unlisted", listed_then_removed)
        opened = s3_frames.open_many(keys)
    assert len(caught) == 1 and broken in str(caught[0].message)
    assert opened[good] is not None and opened[good].key == good
    assert all(opened[k] is None for k in keys[1:])
    assert {e.key for e in s3_frames.entries()} == {good}  # the broken entry removed


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("listing-demo")
    write_demo_data(root / "demo", n_originals=2, n_frames=5, size=(40, 32))
    return root / "demo"


def test_an_entry_committed_after_the_listing_is_found_by_its_decode(
    demo: Path, s3: CountingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = collect_pairs(demo)
    local = batch_table(validate_batch(pairs, metrics=METRICS).outcomes)
    monkeypatch.setattr(framestore_listing, "GETS_PER_PAGE", 1)  # the demo has a dozen GIFs
    url = f"s3://giflab/{uuid.uuid4().hex[:12]}"
    with dask.config.set({"giflab.cache-dir": url, "giflab.storage-options": s3.options}):
        store = open_frame_store()
        assert isinstance(store, FsspecFrameStore)
        late = pairs[0].original
        real = framestore_listing.unlisted

        planning: Counter[str] = Counter()

        def another_batch_commits(fs: Any, base: str, wanted: Any) -> set[str]:
            absent = real(fs, base, wanted)
            planning.update(s3.take())
            open_frame_store().ensure(late)  # another batch, after the listing
            s3.take()
            return absent

        monkeypatch.setattr(framestore_remote, "unlisted", another_batch_commits)
        s3.take()
        plan = plan_batch(pairs, metrics=METRICS)
        planning.update(s3.take())
        keys = {gif_key(p) for pair in pairs for p in (pair.original, pair.compressed)}
        assert plan.n_decode_tasks == len(keys)  # the late entry too: the listing said absent
        batch = plan.compute(scheduler="threads")
        assert batch.counts()["error"] == 0
        pd.testing.assert_frame_equal(batch_table(batch.outcomes), local)
        # the decode task found the committed entry: one data directory, the first writer's
        late_key = gif_key(late)
        children = [c.rsplit("/", 1)[-1] for c in store.fs.ls(store._p(late_key), detail=False)]
        manifest = json.loads(store.fs.cat_file(store._p(late_key, MANIFEST)))
        assert [c for c in children if c.startswith("w-")] == [manifest["data"]]
    # planning fetched no manifest: the listing answered for every GIF
    assert planning["LIST"] >= 1 and "GET" not in planning, planning


def test_cold_planning_is_three_listings(
    demo: Path, s3: CountingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its first task a cold batch asks S3 for three listings, whatever its size: the
    result index's folder, the result store (which nodes exist), the frame store's first
    page; no HEAD or empty-prefix check (s3fs's ``ls``/``find`` add them), no GET."""
    monkeypatch.setattr(framestore_listing, "GETS_PER_PAGE", 1)  # the demo has 8 GIFs
    pairs = collect_pairs(demo)
    url = f"s3://giflab/{uuid.uuid4().hex[:12]}"
    with dask.config.set({"giflab.cache-dir": url, "giflab.storage-options": s3.options}):
        open_frame_store().fs  # noqa: B018 - the filesystem's own start-up is not the batch's
        s3.take()
        plan = plan_batch(pairs, metrics=METRICS)
        assert s3.take() == {"LIST": 3}
        assert plan.n_decode_tasks == 8
        # the store as planning saw it, now with nodes: the listings find them
        plan.compute(scheduler="sync")
        s3.take()
        again = plan_batch(pairs, metrics=METRICS)
        assert s3.take() == {"LIST": 1, "GET": 1}  # the index's folder and its segment
        assert again.n_decode_tasks == 0 and not again.writes


# -- a decode: one GET (is it there?) and a PUT per file ----------------------------------------


def test_a_cold_decode_reads_back_nothing_it_wrote(
    s3_frames: FsspecFrameStore, s3: CountingS3, tmp_path: Path
) -> None:
    from .conftest import write_pillow_gif

    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=7, size=(40, 30), noise=True)
    with dask.config.set({"giflab.framestore.chunk-mib": 3 * 30 * 40 * 3 / 2**20}):
        s3.take()
        written = s3_frames.ensure(gif)
        counts = s3.take()
    manifest = json.loads(s3_frames.fs.cat_file(s3_frames._p(written.key, MANIFEST)))
    assert counts == {"GET": 1, "PUT": len(manifest["files"]) + 1}, counts  # files, manifest
    # a read task of this process reads the chunks it needs, not the metadata written
    s3.take()
    frames = read_frames(str(written.path), "frames", slice(0, 7))
    assert s3.take() == {"GET": 3}  # 3 chunks of 3 frames
    opened = s3_frames.open(written.key, verify="checksum")
    assert opened is not None and written.shape == (7, 30, 40, 3)
    assert (written.path, written.attrs, written.shape) == (opened.path, opened.attrs, opened.shape)
    assert written.durations_ms.tolist() == opened.durations_ms.tolist()
    assert (frames == opened.frames().compute()).all()
    assert [e.hits for e in s3_frames.entries()] == [1]  # the writer's open counted


def test_threads_of_a_process_decode_an_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread whose open missed before another thread's write finished, even one that
    finished and left, opens that write instead of writing again."""
    from .conftest import write_pillow_gif

    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=4)
    store = open_frame_store(f"memory://giflab-test-{uuid.uuid4().hex[:12]}/frames")
    assert isinstance(store, FsspecFrameStore)
    first_done, late_missed = threading.Event(), threading.Event()
    writes: list[str] = []
    real_open, real_write = FsspecFrameStore.open, FsspecFrameStore._write

    def open_(self: FsspecFrameStore, key: str, **kwargs: Any) -> Any:
        found = real_open(self, key, **kwargs)
        if threading.current_thread().name == "late" and not late_missed.is_set():
            late_missed.set()  # missed: now let the other thread write and leave
            assert found is None and first_done.wait(10)
        return found

    def write(self: FsspecFrameStore, source: Any) -> Any:
        writes.append(threading.current_thread().name)
        return real_write(self, source)

    monkeypatch.setattr(FsspecFrameStore, "open", open_)
    monkeypatch.setattr(FsspecFrameStore, "_write", write)
    got: dict[str, Any] = {}

    def late() -> None:
        got["late"] = store.ensure(gif)

    thread = threading.Thread(target=late, name="late")
    thread.start()
    assert late_missed.wait(10)
    got["first"] = store.ensure(gif)
    first_done.set()
    thread.join(10)
    assert writes == ["MainThread"] and got["late"].path == got["first"].path
