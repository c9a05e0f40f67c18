"""A frame-store entry: what a complete entry holds, and the checks a read trusts it by.

:class:`StoredGif` is a verified entry (its attributes, durations and lazy dask views of its
frames); the manifest (every file's size and BLAKE2b-128, written last) and the group's
``giflab`` attributes are checked for shape here before any reader relies on them, so a
planted document cannot reach the pipeline as a zero chunk length or a string.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from giflab_dask import config, storage
from giflab_dask.errors import CacheFileError, FrameStoreCorruptError, FrameStoreError
from giflab_dask.framestore.codec import decode_chunk_bytes, layout_document
from giflab_dask.framestore.layout import ACCESS, ENTRY_FILE, MANIFEST
from giflab_dask.framestore.read import read_task_array
from giflab_dask.keys import LAYOUT_VERSION

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "EntryInfo",
    "StoredGif",
    "chunk_frames_for",
    "file_digest",
    "listed_reader",
    "make_manifest",
    "manifest_problem",
    "valid_attrs",
]


def chunk_frames_for(height: int, width: int, chunk_mib: float | None = None) -> int:
    """Frames per time-chunk so a chunk of RGB frames is about ``chunk_mib`` MiB (at least 1)."""
    mib = float(chunk_mib if chunk_mib is not None else config.get("framestore.chunk-mib"))
    if mib <= 0:
        raise FrameStoreError(f"giflab.framestore.chunk-mib must be positive, got {mib}")
    frame_bytes = max(1, height * width * 3)
    return max(1, int(mib * 2**20 // frame_bytes))


@dataclass(frozen=True)
class StoredGif:
    """A complete, verified frame-store entry: metadata plus lazy dask views of its arrays."""

    key: str
    #: the entry's directory (local root) or the URL of its data directory (URL root)
    path: Path | str
    n_frames: int
    height: int
    width: int
    chunk_frames: int
    has_alpha: bool
    loop: int | None
    durations_ms: np.ndarray
    attrs: dict[str, Any]

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("giflab-stored-gif", self.key)

    @classmethod
    def from_documents(
        cls, key: str, path: Path | str, read: Callable[[str], bytes]
    ) -> StoredGif | None:
        """The entry from its metadata documents and its durations chunk, read with ``read``
        (a path relative to the entry -> its bytes), without Zarr; None when the durations
        array is not exactly as this layout writes it (then :meth:`from_group` reads it).

        Every decode and every process that opens an entry pays this, and Zarr's async store
        and codec pipeline cost far more than the few hundred bytes read here.
        """
        attrs = valid_attrs(json.loads(read("zarr.json"))["attributes"]["giflab"])
        n, h, w = attrs["n_frames"], attrs["height"], attrs["width"]
        arrays = {"frames": (n, h, w, 3), **({"alpha": (n, h, w)} if attrs["has_alpha"] else {})}
        for name, shape in arrays.items():
            if json.loads(read(f"{name}/zarr.json")).get("shape") != list(shape):
                raise FrameStoreCorruptError(f"{path}/{name}/zarr.json: shape is not {shape}")
        doc = json.loads(read("durations_ms/zarr.json"))
        if doc != layout_document("durations_ms", doc, (n,), (n,)):
            return None
        from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

        chunk_key = parse_chunk_key_encoding(doc["chunk_key_encoding"]).encode_chunk_key((0,))
        rel = f"durations_ms/{chunk_key}"
        raw = decode_chunk_bytes(read(rel), f"{path}/{rel}")
        durations = np.frombuffer(raw, dtype="<i4")
        if len(durations) != n:
            raise FrameStoreCorruptError(
                f"frame store chunk {path}/{rel} holds {len(durations)} durations, expected {n}"
            )
        return cls.from_attrs(key, path, attrs, durations.astype(np.int32))

    @classmethod
    def from_attrs(
        cls, key: str, path: Path | str, attrs: dict[str, Any], durations_ms: np.ndarray
    ) -> StoredGif:
        """The entry with these checked (or just written) attributes and durations."""
        return cls(
            key=key,
            path=path,
            n_frames=int(attrs["n_frames"]),
            height=int(attrs["height"]),
            width=int(attrs["width"]),
            chunk_frames=int(attrs["chunk_frames"]),
            has_alpha=bool(attrs["has_alpha"]),
            loop=attrs["loop"],
            durations_ms=durations_ms,
            attrs=attrs,
        )

    @property
    def distinct_frames(self) -> int:
        """Frames a viewer can tell apart: the first and each that differs from the one before."""
        return int(self.attrs["distinct_frames"])

    @classmethod
    def from_group(cls, key: str, path: Path | str, group: zarr.Group) -> StoredGif:
        """The entry described by an open Zarr group (its ``giflab`` attributes)."""
        attrs = valid_attrs(group.attrs["giflab"])
        array = group["durations_ms"]
        if not isinstance(array, zarr.Array):
            raise FrameStoreCorruptError(f"{path}/durations_ms is not an array")
        durations = np.asarray(array[...], dtype=np.int32)
        return cls.from_attrs(key, path, attrs, durations)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n_frames, self.height, self.width, 3)

    def _lazy(self, name: str, tag: str) -> da.Array:
        # Each read task reads its chunk files by path or URL on the worker that runs it (with
        # that worker's giflab.storage-options), so neither frames nor a filesystem object
        # holding credentials travel in the graph.
        inner = self.shape[1:] if name == "frames" else self.shape[1:3]
        return read_task_array(
            str(self.path),
            name,
            self.n_frames,
            self.chunk_frames,
            inner,
            _name(name, self.key, tag),
        )

    def frames(self, tag: str = "") -> da.Array:
        """Lazy ``(T, H, W, 3)`` uint8 frames chunked like the store, named ``gif-frames-<key>``.

        ``tag`` gives the read tasks a name of their own (``gif-frames-<key>-<tag>``): a batch
        reads each GIF once per pair, so no chunk waits in memory for another pair's turn.
        """
        return self._lazy("frames", tag)

    def alpha(self, tag: str = "") -> da.Array | None:
        """Lazy ``(T, H, W)`` uint8 alpha (255 opaque); None when the GIF is opaque throughout."""
        if not self.has_alpha:
            return None
        return self._lazy("alpha", tag)


def valid_attrs(attrs: Any) -> dict[str, Any]:
    """An entry's ``giflab`` attributes, checked for the types and ranges readers rely on
    (a planted ``zarr.json`` must not reach them as a zero chunk length or a string)."""

    def count(value: Any, low: int = 0) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not isinstance(attrs, dict):
        raise FrameStoreCorruptError("the entry's giflab attributes are not an object")
    n, chunk = attrs.get("n_frames"), attrs.get("chunk_frames")
    problems = [
        name
        for name in ("n_frames", "height", "width", "chunk_frames")
        if not count(attrs.get(name))
    ]
    if (
        not problems
        and isinstance(n, int)
        and isinstance(chunk, int)
        and not (1 if n else 0) <= chunk <= n
    ):
        problems.append("chunk_frames")
    if not isinstance(attrs.get("has_alpha"), bool):
        problems.append("has_alpha")
    if attrs.get("loop") is not None and not count(attrs.get("loop")):
        problems.append("loop")
    distinct = attrs.get("distinct_frames", 0)
    if "n_frames" not in problems and not (count(distinct) and distinct <= n):
        problems.append("distinct_frames")
    for name in ("created", "decode_seconds"):  # read by the run summary
        value = attrs.get(name, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            problems.append(name)
    if problems:
        raise FrameStoreCorruptError(f"the entry's attributes {', '.join(problems)} are invalid")
    return dict(attrs)


def manifest_problem(manifest: Any, key: str) -> str | None:
    """Why a parsed manifest cannot describe entry ``key`` (None when it can): every file a
    name inside the entry with a size and a BLAKE2b-128, ``nbytes`` a byte count."""
    if not isinstance(manifest, dict):
        return "the manifest is not a JSON object"
    if manifest.get("layout_version") != LAYOUT_VERSION:
        return f"layout version {manifest.get('layout_version')!r} != {LAYOUT_VERSION}"
    if manifest.get("key") != key:
        return f"the manifest is for key {manifest.get('key')!r}"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "the manifest lists no files"
    for rel, record in files.items():
        if not ENTRY_FILE.fullmatch(rel) or rel in (MANIFEST, ACCESS):
            return f"the manifest lists {rel!r}, not a name inside the entry"
        if not (
            isinstance(record, list)
            and len(record) == 2
            and isinstance(record[0], int)
            and not isinstance(record[0], bool)
            and record[0] >= 0
            and isinstance(record[1], str)
            and re.fullmatch(r"[0-9a-f]{32}", record[1])
        ):
            return f"the manifest's record of {rel!r} is not [size, digest]"
    for rel in ("zarr.json", "frames/zarr.json", "durations_ms/zarr.json"):
        if rel not in files:
            return f"the manifest does not list {rel}"
    nbytes = manifest.get("nbytes")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        return f"the manifest's nbytes ({nbytes!r}) is not a byte count"
    return None


def _name(array: str, key: str, tag: str) -> str:
    return f"gif-{array}-{key}-{tag}" if tag else f"gif-{array}-{key}"


@dataclass(frozen=True)
class EntryInfo:
    """A complete entry as housekeeping sees it (size and use, for LRU eviction)."""

    key: str
    path: Path | str
    nbytes: int
    last_access: float
    hits: int


def file_digest(data: bytes | memoryview) -> str:
    """A file's BLAKE2b-128, as the manifest records it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make_manifest(key: str, files: dict[str, tuple[int, str]], **extra: Any) -> dict[str, Any]:
    """The manifest of entry ``key`` listing ``files`` (name -> size, digest)."""
    return {
        "layout_version": LAYOUT_VERSION,
        "key": key,
        **extra,
        "nbytes": sum(size for size, _ in files.values()),
        "files": dict(sorted(files.items())),
    }


def listed_reader(base: Path, files: dict[str, Any]) -> Callable[[str], bytes]:
    """Reads a file of an entry by its name in the manifest, capped at the size listed."""

    def read(rel: str) -> bytes:
        if rel not in files:
            raise CacheFileError(f"{base}/{rel} is not listed in the entry's manifest")
        return storage.read_beneath(base, rel, int(files[rel][0]))

    return read
