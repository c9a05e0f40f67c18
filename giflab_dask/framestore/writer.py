"""Writing an entry: a GIF decoded frame by frame into chunk files and metadata documents.

The writer is the same for both stores; ``out`` says where files go (a local temporary
directory, or a data directory on an fsspec filesystem) and records each file's size and
digest as it is written, so the manifest needs no re-read.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask import config
from giflab_dask.decode import GifLayout, iter_frames
from giflab_dask.framestore.codec import ChunkEncoder
from giflab_dask.framestore.entry import chunk_frames_for, file_digest
from giflab_dask.keys import DECODER_VERSION, LAYOUT_VERSION, GifSource

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["DirWriter", "EntryWriter", "FsspecWriter", "write_entry"]


class EntryWriter:
    """Writes an entry's files, recording the size and BLAKE2b-128 of each as it goes."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str]] = {}

    def put(self, rel: str, data: bytes) -> None:
        self._write(rel, data)
        self.files[rel] = (len(data), file_digest(data))

    def _write(self, rel: str, data: bytes) -> None:
        raise NotImplementedError


class DirWriter(EntryWriter):
    """Into a new local (temporary) directory, made here: it must not exist yet."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        root.mkdir()
        # each folder made once, by a plain mkdir: on some disks a mkdir costs a millisecond
        self._made: set[Path] = {root}

    def _write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        with path.open("wb") as f:
            f.write(data)


class FsspecWriter(EntryWriter):
    """Into a directory of an fsspec filesystem (one PUT per file on an object store).

    Keeps the bytes of what an open reads (the metadata documents and the durations chunk),
    so the writer's own open of the committed entry fetches none of them back.
    """

    def __init__(self, fs: AbstractFileSystem, root: str) -> None:
        super().__init__()
        self.fs = fs
        self.root = root
        self.kept: dict[str, bytes] = {}

    def _write(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{rel}", data)
        if rel.endswith("zarr.json") or rel.startswith("durations_ms/"):
            self.kept[rel] = bytes(data)


def write_entry(out: EntryWriter, source: GifSource, layout: GifLayout) -> dict[str, Any]:
    """Decode ``source`` and write every file of its entry through ``out``; returns the
    entry's ``giflab`` attributes (what its ``zarr.json`` holds).

    The chunks are exactly the bytes Zarr would write (:class:`ChunkEncoder`), edge chunks
    padded to the full chunk shape with the fill value as Zarr pads them; the metadata
    documents are Zarr's own with shapes filled in. Going through Zarr's arrays instead would
    cost more Python per chunk than compressing it, on a thread the decoder needs.
    """
    started = time.perf_counter()
    n, h, w = layout.n_frames, layout.height, layout.width
    chunk = min(chunk_frames_for(h, w), n)
    encoder = ChunkEncoder(int(config.get("framestore.compression-level")))
    durations = np.ascontiguousarray(layout.durations_ms, dtype="<i4")
    out.put(encoder.chunk_key("durations_ms", 0, 1), encoder.encode(durations))  # one chunk
    sink = _ChunkSink(out, encoder, chunk, h, w)
    has_alpha, repeats = sink.stream(iter_frames(source.path, layout), threaded=n > chunk)
    attrs = {
        "key": source.key,
        "source_name": source.path.name,
        "n_frames": n,
        "height": h,
        "width": w,
        "chunk_frames": chunk,
        "has_alpha": has_alpha,
        # frames a viewer can tell apart: the first, and each that differs from the one
        # before (an optimiser may merge the rest)
        "distinct_frames": n - repeats,
        "loop": layout.loop,
        "background_index": layout.background_index,
        "decoder_version": DECODER_VERSION,
        "layout_version": LAYOUT_VERSION,
        "created": time.time(),
        # what a later run saves by finding this entry (the run summary's "time saved")
        "decode_seconds": time.perf_counter() - started,
    }
    shapes = {"frames": ((n, h, w, 3), (chunk, h, w, 3)), "durations_ms": ((n,), (n,))}
    if sink.alpha:
        shapes["alpha"] = ((n, h, w), (chunk, h, w))
    documents = {"zarr.json": encoder.group_document(attrs)}
    for name, (shape, chunks) in shapes.items():
        documents[f"{name}/zarr.json"] = encoder.array_document(name, shape, chunks)
    for rel, doc in documents.items():
        out.put(rel, json.dumps(doc, indent=2).encode())
    return attrs


class _ChunkSink:
    """Collects decoded frames into time-chunks and writes them on a writer thread.

    Frames are copied into one of two chunk buffers; a full buffer is compressed and written
    by the writer thread (zstd and file writes release the GIL) while the decoder fills the
    other, so memory holds two chunks whatever the frame count.
    """

    def __init__(self, out: EntryWriter, encoder: ChunkEncoder, chunk: int, h: int, w: int):
        self.out, self.encoder, self.chunk = out, encoder, chunk
        self.buffers = [
            (np.empty((chunk, h, w, 3), dtype=np.uint8), np.empty((chunk, h, w), dtype=np.uint8))
            for _ in range(2)
        ]
        # The alpha array is created only when a frame first shows transparency (most GIFs
        # never do); earlier chunks are then written as opaque. flush() runs in order on the
        # single writer thread, so this state needs no lock.
        self.alpha = False

    def stream(
        self, frames: Iterable[tuple[np.ndarray, np.ndarray]], threaded: bool = True
    ) -> tuple[bool, int]:
        """Write every frame; returns whether any shows transparency, and how many repeat
        the frame before them exactly. ``threaded`` False (a GIF of one chunk, nothing to
        overlap) writes on the caller's thread: starting a thread costs more than such a write."""
        pending: list[Future[bool]] = [Future(), Future()]
        for fut in pending:
            fut.set_result(False)
        has_alpha = False
        start = filled = which = repeats = 0
        previous: tuple[np.ndarray, np.ndarray] | None = None
        executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="gif-write")
            if threaded
            else _InlineExecutor()
        )
        with executor as writer:
            for rgb, a in frames:
                if filled == 0:
                    has_alpha |= pending[which].result()  # buffer free again; errors surface
                if previous is not None and _same_frame(previous, rgb, a):
                    repeats += 1
                rgb_buf, a_buf = self.buffers[which]
                rgb_buf[filled], a_buf[filled] = rgb, a
                # (the other buffer's last frame stays unchanged until this one is flushed)
                previous = rgb_buf[filled], a_buf[filled]
                filled += 1
                if filled == self.chunk:
                    pending[which] = writer.submit(self.flush, which, start, filled)
                    start, filled, which = start + filled, 0, 1 - which
            if filled:
                pending[which] = writer.submit(self.flush, which, start, filled)
            for fut in pending:
                has_alpha |= fut.result()
        return has_alpha, repeats

    def flush(self, which: int, start: int, filled: int) -> bool:
        """Write buffer ``which`` (``filled`` frames from frame ``start``) as one time-chunk;
        returns whether it wrote an alpha chunk."""
        rgb, a = self.buffers[which]
        chunk, encoder = self.chunk, self.encoder
        if filled < chunk:  # the last chunk: pad with the fill values, as Zarr does
            rgb[filled:] = 0
            a[filled:] = 255
        t = start // chunk
        self.out.put(encoder.chunk_key("frames", t, rgb.ndim), encoder.encode(rgb))
        if not self.alpha and a[:filled].min() == 255:
            return False
        if not self.alpha:
            self.alpha = True
            opaque = encoder.encode(np.full(a.shape, 255, dtype=np.uint8))
            for s in range(t):
                self.out.put(encoder.chunk_key("alpha", s, a.ndim), opaque)
        self.out.put(encoder.chunk_key("alpha", t, a.ndim), encoder.encode(a))
        return True


class _InlineExecutor(contextlib.AbstractContextManager["_InlineExecutor"]):
    """``submit`` runs the call at once on the caller's thread (a finished future)."""

    def submit(self, fn: Callable[..., bool], *args: Any) -> Future[bool]:
        fut: Future[bool] = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def __exit__(self, *exc: object) -> None:
        return None


def _same_frame(
    previous: tuple[np.ndarray, np.ndarray], rgb: np.ndarray, alpha: np.ndarray
) -> bool:
    """Whether a frame shows exactly what the one before showed (the decoder keeps transparent
    pixels at RGB 0, so equal arrays are equal frames)."""
    return np.array_equal(previous[1], alpha) and np.array_equal(previous[0], rgb)
