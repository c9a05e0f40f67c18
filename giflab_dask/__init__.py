"""giflab-dask: validate GIF compression at scale with Dask and Zarr.

Public names are imported lazily so ``import giflab_dask`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FrameStore": "giflab_dask.framestore",
    "StoredGif": "giflab_dask.framestore",
    "decode_gif": "giflab_dask.framestore",
    "open_frames": "giflab_dask.framestore",
    "GifSource": "giflab_dask.keys",
    "gif_key": "giflab_dask.keys",
    "scan_gif": "giflab_dask.decode",
    "GiflabError": "giflab_dask.errors",
    "GifDecodeError": "giflab_dask.errors",
    "FrameStoreError": "giflab_dask.errors",
}

__all__ = [
    "FrameStore",
    "FrameStoreError",
    "GifDecodeError",
    "GifSource",
    "GiflabError",
    "StoredGif",
    "__version__",
    "decode_gif",
    "gif_key",
    "open_frames",
    "scan_gif",
]

if TYPE_CHECKING:
    from giflab_dask.decode import scan_gif
    from giflab_dask.errors import FrameStoreError, GifDecodeError, GiflabError
    from giflab_dask.framestore import FrameStore, StoredGif, decode_gif, open_frames
    from giflab_dask.keys import GifSource, gif_key


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'giflab_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
