from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dask
import pytest
from dask.base import tokenize

from giflab_dask import keys
from giflab_dask.errors import GifDecodeError
from giflab_dask.keys import GifSource, content_digest, gif_key


def test_same_bytes_at_two_paths_share_a_key(anim_gif: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "copy.gif"
    copy.parent.mkdir()
    shutil.copyfile(anim_gif, copy)
    assert gif_key(anim_gif) == gif_key(copy)
    assert tokenize(GifSource.from_path(anim_gif)) == tokenize(GifSource.from_path(copy))


def test_one_changed_byte_gives_a_new_key(anim_gif: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.gif"
    data = bytearray(anim_gif.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    assert gif_key(anim_gif) != gif_key(changed)


def test_key_includes_decoder_version(anim_gif: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = gif_key(anim_gif, use_index=False)
    monkeypatch.setattr(keys, "DECODER_VERSION", keys.DECODER_VERSION + 1)
    assert gif_key(anim_gif, use_index=False) != before


def test_stat_index_never_returns_a_stale_key(
    anim_gif: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Age the file so the index trusts it (ctime cannot be set back: shorten the racy window).
    monkeypatch.setattr(keys, "_RACY_SECONDS", 0.05)
    old = time.time() - 3600
    os.utime(anim_gif, (old, old))
    time.sleep(0.1)
    first = gif_key(anim_gif)
    assert keys._stat_index().lookup(anim_gif.absolute(), anim_gif.stat()) is not None
    # Rewrite one byte in place, then put size and mtime back exactly: only ctime betrays it.
    data = bytearray(anim_gif.read_bytes())
    data[-5] ^= 0xFF
    anim_gif.write_bytes(bytes(data))
    os.utime(anim_gif, (old, old))
    time.sleep(0.1)
    assert gif_key(anim_gif) != first
    assert gif_key(anim_gif) == gif_key(anim_gif, use_index=False)


def test_fresh_files_are_not_indexed(tmp_path: Path, anim_gif: Path) -> None:
    fresh = tmp_path / "fresh.gif"
    shutil.copyfile(anim_gif, fresh)
    gif_key(fresh)
    assert keys._stat_index().lookup(fresh.absolute(), fresh.stat()) is None


def test_digest_is_streamed_blake2b(anim_gif: Path) -> None:
    import hashlib

    expected = hashlib.blake2b(anim_gif.read_bytes(), digest_size=32).hexdigest()
    assert content_digest(anim_gif, use_index=False) == expected


@pytest.mark.parametrize("kind", ["missing", "directory", "dangling"])
def test_unreadable_paths_name_the_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x.gif"
    if kind == "directory":
        target.mkdir()
    elif kind == "dangling":
        target.symlink_to(tmp_path / "nowhere.gif")
    with pytest.raises(GifDecodeError, match=r"x\.gif") as info:
        gif_key(target)
    assert {"missing": "not found", "directory": "directory", "dangling": "dangling"}[kind] in str(
        info.value
    )


def test_gif_keys_of_many_files_match_one_by_one_and_use_one_index_transaction(
    anim_gif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "_RACY_SECONDS", 0.05)
    old = time.time() - 3600
    files = []
    for i in range(5):
        copy = tmp_path / f"c{i}.gif"
        data = bytearray(anim_gif.read_bytes())
        data[-5] ^= i  # five different contents
        copy.write_bytes(bytes(data))
        os.utime(copy, (old, old))
        files.append(str(copy))
    missing = str(tmp_path / "missing.gif")
    time.sleep(0.1)
    commits = []
    real_store_many = keys._StatIndex.store_many

    def counting_store_many(self: keys._StatIndex, rows: list) -> None:
        commits.append(len(rows))
        real_store_many(self, rows)

    monkeypatch.setattr(keys._StatIndex, "store_many", counting_store_many)
    got = keys.gif_keys([*files, missing, files[0]])  # a repeated path is hashed once
    assert list(got) == [*files, missing]
    assert [got[f] for f in files] == [gif_key(f, use_index=False) for f in files]
    assert len(set(got[f] for f in files)) == 5
    assert isinstance(got[missing], GifDecodeError) and "missing.gif" in str(got[missing])
    assert commits == [5]  # one store for the batch, not one per file
    # Now indexed: a second call hashes nothing.
    monkeypatch.setattr(keys, "_hash_file", lambda path: pytest.fail(f"re-hashed {path}"))
    assert keys.gif_keys(files) == {f: got[f] for f in files}


def test_stat_index_path_is_configurable_and_tests_keep_it_in_their_cache(
    anim_gif: Path, isolated_cache: Path, tmp_path: Path
) -> None:
    assert keys._stat_index().db_path == isolated_cache / "stat-index.sqlite"  # conftest's
    with dask.config.set({"giflab.stat-index": str(tmp_path / "elsewhere.sqlite")}):
        keys.gif_key(anim_gif)
    assert (tmp_path / "elsewhere.sqlite").is_file()
    with dask.config.set({"giflab.stat-index": None, "giflab.cache-dir": str(tmp_path / "c")}):
        assert keys._stat_index().db_path == tmp_path / "c" / "stat-index.sqlite"
