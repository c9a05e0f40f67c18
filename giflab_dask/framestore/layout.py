"""The frame store's layout on disk: the names it gives and the limits of what it reads.

Under a local root (``giflab.framestore.root``)::

    <key>/                      one complete entry (a Zarr v3 group), never modified after commit
        zarr.json               group attributes: sizes, frame count, loop, key, versions
        frames/                 (T, H, W, 3) uint8, chunked along time: c.0.0.0.0, c.1.0.0.0, ...
                                (zstd, then the CRC32C of the compressed bytes)
        alpha/                  (T, H, W) uint8, only where the GIF shows transparency
        durations_ms/           (T,) int32 declared frame delays (one chunk, c.0)
        giflab-manifest.json    size and BLAKE2b of every file above, written last
        giflab-access           appended one byte per open: size = hits, mtime = last use (LRU)
    .tmp-<key>-<uuid>/          an entry being written (renamed to <key>/ when complete)
    .trash-<key>-<uuid>/        an entry being removed (renamed away first, then deleted)
    .locks/<key>.lock           one decoder at a time per key, across processes

An entry exists only once its directory was renamed into place, and it is trusted only when its
manifest verifies, so a process killed mid-write leaves nothing that reads as complete. Every
chunk is written (even all-zero ones) and read through a store that treats a missing chunk as
corruption, because Zarr would otherwise return fill values for it silently.

Under an fsspec URL root (``s3://bucket/frames``) there is no rename and no file lock, so each
writer writes into a directory of its own and publishes it with the manifest, written last as
one object::

    <key>/
        giflab-manifest.json    names the data directory and lists its files: the commit
        w-<time_ns>-<uuid>/     one writer's complete Zarr v3 group (layout as above)
        giflab-access           {"last_access": ..., "opens": ...} rewritten per open (LRU)
"""

from __future__ import annotations

import re

MANIFEST = "giflab-manifest.json"
ACCESS = "giflab-access"
LOCKS = ".locks"
TMP = ".tmp-"
TRASH = ".trash-"
DATA = "w-"
VERIFY_MODES = ("checksum", "size", "none")
#: An entry's folder name: a content key (``keys.key_from_digest``, 32 hex digits).
KEY_NAME = re.compile(r"[0-9a-f]{32}")
#: A file name inside an entry: plain components, no ``..``, not absolute, at most 8 deep.
ENTRY_FILE = re.compile(r"(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,7}")
#: The largest metadata document (``zarr.json``) a read accepts; ours are ~1 KB.
MAX_METADATA_BYTES = 2**20
#: The largest manifest a read accepts: one line of ~80 bytes per file, a file per chunk.
MAX_MANIFEST_BYTES = 256 * 2**20
