"""An entry on an object store, by path: its manifest and its guarded removal.

Below both the fsspec store (which owns entries) and the chunk reader (which uncommits an
entry whose chunk fails its check), so neither has to import the other.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from giflab_dask.framestore.layout import ACCESS, DATA, MANIFEST, MAX_MANIFEST_BYTES

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["data_name", "parse_manifest", "read_manifest", "remove_entry"]


def read_manifest(fs: AbstractFileSystem, entry: str) -> dict[str, Any] | None:
    """The manifest of the entry at ``entry`` (a path in ``fs``), or None if it has none."""
    try:
        raw = fs.cat_file(f"{entry}/{MANIFEST}", start=0, end=MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return None
    return parse_manifest(raw)


def parse_manifest(raw: bytes) -> dict[str, Any]:
    """A manifest's bytes, read with a cap of one byte over the limit, as a JSON object."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = json.loads(raw)
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    return manifest


def data_name(manifest: dict[str, Any]) -> str:
    """The data directory a remote manifest names (a plain ``w-...`` name, nothing else)."""
    data = manifest.get("data")
    if not isinstance(data, str) or not data.startswith(DATA) or "/" in data or ".." in data:
        raise ValueError(f"the manifest names no valid data directory ({data!r})")
    return data


def remove_entry(fs: AbstractFileSystem, entry: str, *, data: str | None = None) -> bool:
    """Remove the entry at ``entry``: its manifest first (so no reader finds it), then its data.

    With ``data``, only if the manifest still names that data directory (a reader that found
    a broken entry must not remove the one a writer committed since).
    """
    try:
        manifest = read_manifest(fs, entry)
    except ValueError:
        manifest = {}
    if manifest is None:
        return False
    try:
        current: str | None = data_name(manifest)
    except ValueError:
        current = None
    if data is not None and current is not None and current != data:
        return False
    try:
        fs.rm_file(f"{entry}/{MANIFEST}")
    except FileNotFoundError:
        return False
    for name in (current, ACCESS):
        if name is not None:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{entry}/{name}", recursive=True)
    return True
