"""The direct Zarr chunk codec: chunk files written and read without going through Zarr.

An entry's arrays use Zarr v3's ``bytes`` + ``zstd`` (no content checksum) + ``crc32c`` codec
chain. Zarr's own write and read paths cost more Python per chunk than compressing it, so the
store encodes and decodes chunk files here, byte for byte as Zarr would (that round trip
against plain Zarr is this module's contract test, ``tests/test_framestore_codec.py``). The
metadata documents are Zarr's own, made once per process; any entry whose documents differ
from them is read through Zarr instead.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import Buffer

from giflab_dask.errors import FrameStoreCorruptError

__all__ = ["ChunkEncoder", "decode_chunk_bytes", "layout_document", "metadata_templates"]


@functools.lru_cache(maxsize=4)
def metadata_templates(level: int) -> tuple[dict[str, dict[str, Any]], Any]:
    """Zarr's metadata documents for an entry's group and arrays at compression ``level``
    (made by Zarr, once per process; only shapes and chunk shapes differ between entries),
    and the arrays' chunk key encoding (chunk index -> key).

    Chunk keys use the ``.`` separator (``frames/c.3.0.0.0``) so every chunk file of an array
    sits in the array's directory: Zarr's default ``/`` makes three directories per chunk to
    create, rename and delete."""
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.core.chunk_key_encodings import ChunkKeyEncodingParams
    from zarr.storage import MemoryStore

    codec = (ZstdCodec(level=level, checksum=False), Crc32cCodec())
    flat: ChunkKeyEncodingParams = {"name": "default", "separator": "."}
    documents: dict[str, Buffer] = {}
    group = zarr.open_group(store=MemoryStore(documents), mode="w")
    frames = group.create_array(
        "frames", shape=(1, 1, 1, 3), chunks=(1, 1, 1, 3), dtype="uint8", compressors=codec,
        fill_value=0, dimension_names=("t", "y", "x", "c"), chunk_key_encoding=flat,
    )  # fmt: skip
    group.create_array(
        "alpha", shape=(1, 1, 1), chunks=(1, 1, 1), dtype="uint8", compressors=codec,
        fill_value=255, dimension_names=("t", "y", "x"), chunk_key_encoding=flat,
    )  # fmt: skip
    group.create_array(
        "durations_ms", shape=(1,), chunks=(1,), dtype="int32", compressors=codec,
        chunk_key_encoding=flat,
    )  # fmt: skip
    templates = {
        rel: json.loads(buf.to_bytes()) for rel, buf in documents.items() if rel.endswith(".json")
    }
    return templates, frames.metadata.encode_chunk_key


def _array_document(
    level: int, name: str, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> dict[str, Any]:
    templates, _ = metadata_templates(level)
    doc = copy.deepcopy(templates[f"{name}/zarr.json"])
    doc["shape"] = list(shape)
    doc["chunk_grid"]["configuration"]["chunk_shape"] = list(chunks)
    return doc


def layout_document(
    name: str, doc: dict[str, Any], shape: tuple[int, ...], chunks: tuple[int, ...]
) -> dict[str, Any]:
    """The metadata document this layout writes for array ``name`` of the given shape and
    chunk shape, at the compression level ``doc`` names (a document equal to it describes
    chunks :func:`decode_chunk_bytes` decodes exactly); ``{}`` when ``doc`` names none."""
    try:
        level = int(next(c for c in doc["codecs"] if c["name"] == "zstd")["configuration"]["level"])
    except (KeyError, TypeError, ValueError, StopIteration):
        return {}
    return _array_document(level, name, shape, chunks)


class ChunkEncoder:
    """Encodes chunks and metadata documents exactly as Zarr writes them at ``level``."""

    def __init__(self, level: int) -> None:
        from numcodecs import Zstd

        self.level = level
        _, self._encode_key = metadata_templates(level)
        # numcodecs' Zstd is what Zarr's ZstdCodec wraps; its content checksum stays off (the
        # CRC32C of the compressed bytes guards the file for far less work)
        self._zstd = Zstd(level=level, checksum=False)

    def chunk_key(self, name: str, t: int, ndim: int) -> str:
        """The file name of time-chunk ``t`` of array ``name`` (``frames/c.3.0.0.0``)."""
        return f"{name}/{self._encode_key((t,) + (0,) * (ndim - 1))}"

    def encode(self, data: np.ndarray) -> bytes:
        """A chunk file's bytes: ``data`` zstd-compressed, then its CRC32C (little-endian)."""
        import google_crc32c

        body = self._zstd.encode(data)
        return body + google_crc32c.value(body).to_bytes(4, "little")

    def group_document(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The group's ``zarr.json`` with ``attrs`` as its ``giflab`` attributes."""
        templates, _ = metadata_templates(self.level)
        return {**templates["zarr.json"], "attributes": {"giflab": attrs}}

    def array_document(
        self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...]
    ) -> dict[str, Any]:
        """Array ``name``'s ``zarr.json`` for this shape and chunk shape."""
        return _array_document(self.level, name, shape, chunks)


def decode_chunk_bytes(data: bytes, path: str, out: np.ndarray | None = None) -> Any:
    """A chunk file's bytes (``zstd`` then ``crc32c``) decoded, into ``out`` if given; the
    CRC32C is checked first, so a flipped or truncated file raises naming ``path``."""
    import google_crc32c
    from numcodecs import Zstd

    body = np.frombuffer(data, dtype=np.uint8)[:-4]  # no copy
    if len(data) < 4 or google_crc32c.value(body) != int.from_bytes(data[-4:], "little"):
        raise FrameStoreCorruptError(f"frame store chunk {path} is corrupt: CRC32C mismatch")
    try:
        return Zstd().decode(body, out=out)
    except (RuntimeError, ValueError) as exc:  # not a zstd frame, a wrong size
        raise FrameStoreCorruptError(f"frame store chunk {path} is corrupt: {exc}") from None
