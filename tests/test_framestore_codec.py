"""The direct chunk codec's contract: the bytes it writes are the bytes plain Zarr writes, and
what it reads equals what Zarr reads, for any index and for entries Zarr wrote itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.errors import FrameStoreCorruptError
from giflab_dask.framestore import (
    MANIFEST,
    decode_gif,
    open_entry_array,
    open_frame_store,
    read_frames,
)
from giflab_dask.framestore.codec import ChunkEncoder, decode_chunk_bytes
from giflab_dask.framestore.read import chunk_files as _chunk_files_of

from .conftest import write_pillow_gif


def reference_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(rgb.copy(), a.copy()) for rgb, a in iter_frames(path)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.mark.parametrize("dtype", ["uint8", "int32"])
def test_encoded_chunks_round_trip_through_zarrs_codecs(dtype: str) -> None:
    """One chunk, no store: ChunkEncoder's bytes equal Zarr's for the same codecs, and
    decode_chunk_bytes reads Zarr's bytes back to the array."""
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.storage import MemoryStore

    rng = np.random.default_rng(0)
    data = rng.integers(0, 50, (3, 5, 7), dtype=dtype)
    level = 3
    encoder = ChunkEncoder(level)
    documents: dict = {}
    array = zarr.create_array(
        store=MemoryStore(documents), shape=data.shape, chunks=data.shape, dtype=dtype,
        compressors=(ZstdCodec(level=level, checksum=False), Crc32cCodec()),
        chunk_key_encoding={"name": "default", "separator": "."}, fill_value=0,
    )  # fmt: skip
    array[...] = data
    theirs = documents["c.0.0.0"].to_bytes()
    assert encoder.encode(np.ascontiguousarray(data)) == theirs
    assert encoder.chunk_key("frames", 0, 3) == "frames/c.0.0.0"
    decoded = np.frombuffer(decode_chunk_bytes(theirs, "x"), dtype=dtype).reshape(data.shape)
    np.testing.assert_array_equal(decoded, data)
    flipped = bytearray(theirs)
    flipped[len(flipped) // 2] ^= 1
    with pytest.raises(FrameStoreCorruptError, match="CRC32C"):
        decode_chunk_bytes(bytes(flipped), "x")


@pytest.mark.parametrize(
    "index",
    [
        slice(0, 11),
        slice(3, 9),
        slice(10, 11),
        slice(5, 5),
        np.array([0, 4, 8, 10]),  # one frame from each chunk
        np.array([9, 2, 2, 7, 0, 10, 10]),  # unsorted, repeated
        np.array([3, 4, 5, 6]),  # a run across a chunk boundary
        np.array([0, 0, 2]),  # a repeat and a gap: as many frames as a run would have
        np.array([0, 0, 1, 3]),  # the whole first chunk's length, not its frames
        np.array([4, 4, 5, 7, 8, 8, 9, 10]),  # dropped and repeated frames (time alignment)
        np.array([], dtype=np.int64),
    ],
)
def test_direct_chunk_reads_equal_zarr_reads(index, tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=11, size=(40, 30), noise=True)
    with dask.config.set({"giflab.framestore.chunk-mib": 4 * 40 * 30 * 3 / 2**20}):
        stored = decode_gif(gif)
    array = open_entry_array(str(stored.path), "frames")
    expected = array[index] if isinstance(index, slice) else array.get_orthogonal_selection(index)
    got = read_frames(str(stored.path), "frames", index)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_frames_in_other_encodings_are_read_through_zarr(tmp_path: Path) -> None:
    gif = write_pillow_gif(tmp_path / "a.gif", n_frames=11, size=(40, 30), noise=True)
    stored = decode_gif(gif)
    expected = read_frames(str(stored.path), "frames", slice(0, 11))
    assert _chunk_files_of(str(stored.path), "frames").direct
    # the frames array rewritten by plain Zarr: its default codecs, "/" chunk keys, 4 frames
    shutil.rmtree(stored.path / "frames")
    group = zarr.open_group(str(stored.path), mode="a")
    group.create_array("frames", data=expected, chunks=(4, 30, 40, 3))
    assert (stored.path / "frames" / "c" / "2" / "0" / "0" / "0").is_file()
    _chunk_files_of.cache_clear()
    open_entry_array.cache_clear()
    files = _chunk_files_of(str(stored.path), "frames")
    assert not files.direct and files.chunk == 4
    for index in (slice(0, 11), slice(3, 9), np.array([10, 0, 4, 4])):
        np.testing.assert_array_equal(
            read_frames(str(stored.path), "frames", index), expected[index]
        )


def _gif_with_late_transparency(path: Path, n_frames: int = 11) -> Path:
    """Opaque full frames; frame 7 is disposed to transparent, so alpha first shows at frame 8."""
    from giflab_dask.testing import GifFrame, solid_palette, write_gif

    rng = np.random.default_rng(3)
    frames = []
    for i in range(n_frames):
        if i == 7:
            frames.append(GifFrame(np.full((10, 12), 2, np.uint8), left=5, top=4, disposal=2))
        elif i > 7:
            frames.append(GifFrame(np.full((4, 4), i % 4, np.uint8), left=30, top=20))
        else:
            frames.append(GifFrame(rng.integers(0, 4, (30, 40), dtype=np.uint8)))
    return write_gif(path, frames, 40, 30, global_palette=solid_palette(4))


@pytest.mark.parametrize("case", ["partial-last-chunk", "alpha-from-chunk-2", "one-frame"])
def test_directly_written_chunks_are_what_zarr_writes(case: str, tmp_path: Path) -> None:
    """Chunks are encoded and written without Zarr's write path: Zarr must read them back
    (partial last chunk, alpha arrays, one frame) and would have written the same bytes."""
    import hashlib

    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.storage import LocalStore

    if case == "alpha-from-chunk-2":
        gif = _gif_with_late_transparency(tmp_path / "t.gif")
    else:
        n = 1 if case == "one-frame" else 11
        gif = write_pillow_gif(tmp_path / "a.gif", n_frames=n, size=(40, 30), noise=True)
    rgb_ref, alpha_ref = reference_frames(gif)
    with dask.config.set({"giflab.framestore.chunk-mib": 4 * 40 * 30 * 3 / 2**20}):
        stored = open_frame_store().ensure(gif)
    assert stored.chunk_frames == min(4, len(rgb_ref))
    assert stored.has_alpha == (case == "alpha-from-chunk-2")
    if stored.has_alpha:
        assert (alpha_ref[:8] == 255).all() and (alpha_ref[8:] == 0).any()

    # Plain Zarr reads the entry back as decoded.
    group = zarr.open_group(str(stored.path), mode="r")
    np.testing.assert_array_equal(group["frames"][...], rgb_ref)
    if stored.has_alpha:
        np.testing.assert_array_equal(group["alpha"][...], alpha_ref)
    else:
        assert "alpha" not in group and (alpha_ref == 255).all()

    # Zarr writing the same arrays with the same metadata gives the same bytes, file by file.
    level = int(dask.config.get("giflab.framestore.compression-level"))
    durations = np.asarray(group["durations_ms"][...])
    np.testing.assert_array_equal(durations, scan_gif(gif).durations_ms)
    arrays = (("frames", rgb_ref, 0), ("alpha", alpha_ref, 255), ("durations_ms", durations, 0))
    for name, data, fill in arrays:
        if name not in group:
            continue
        meta = group[name].metadata
        ref = zarr.create_array(
            store=LocalStore(tmp_path / "ref"), name=name, shape=data.shape,
            chunks=meta.chunk_grid.chunk_shape, dtype=data.dtype, fill_value=fill,
            compressors=(ZstdCodec(level=level, checksum=False), Crc32cCodec()),
            dimension_names=meta.dimension_names, config={"write_empty_chunks": True},
            chunk_key_encoding={"name": "default", "separator": "."},
        )  # fmt: skip
        ref[...] = data
        ours = {p.relative_to(stored.path / name): p.read_bytes()
                for p in (stored.path / name).rglob("*") if p.is_file()}  # fmt: skip
        theirs = {p.relative_to(tmp_path / "ref" / name): p.read_bytes()
                  for p in (tmp_path / "ref" / name).rglob("*") if p.is_file()}  # fmt: skip
        assert ours.keys() == theirs.keys()
        n_chunks = -(-len(data) // meta.chunk_grid.chunk_shape[0])
        # every chunk file directly in the array's directory (no c/<t>/0/0 tree to create)
        assert sorted(str(k) for k in ours if k.name != "zarr.json") == sorted(
            ".".join(["c", str(t)] + ["0"] * (data.ndim - 1)) for t in range(n_chunks)
        )
        for rel in ours:
            if rel.name == "zarr.json":
                assert json.loads(ours[rel]) == json.loads(theirs[rel])
            else:
                assert ours[rel] == theirs[rel], f"{name}/{rel} differs from Zarr's bytes"

    # The manifest lists every file of the entry with its size and checksum.
    manifest = json.loads((stored.path / MANIFEST).read_text())
    on_disk = {
        p.relative_to(stored.path).as_posix(): p.read_bytes()
        for p in stored.path.rglob("*")
        if p.is_file() and p.name not in (MANIFEST, "giflab-access")
    }
    assert manifest["files"].keys() == on_disk.keys()
    for rel, body in on_disk.items():
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        assert manifest["files"][rel] == [len(body), digest], rel
    assert manifest["nbytes"] == sum(len(b) for b in on_disk.values())
