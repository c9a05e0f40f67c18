"""giflab-dask: validate GIF compression at scale with Dask and Zarr.

Public names are imported lazily so ``import giflab_dask`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "validate_pair": "giflab_dask.pipeline",
    "validate_pair_lazy": "giflab_dask.pipeline",
    "validate_batch": "giflab_dask.pipeline",
    "plan_batch": "giflab_dask.pipeline",
    "collect_pairs": "giflab_dask.inputs",
    "batch_table": "giflab_dask.results",
    "load_results": "giflab_dask.results",
    "load_per_frame": "giflab_dask.results",
    "PairResult": "giflab_dask.results",
    "register_metric": "giflab_dask.metrics",
    "available_metrics": "giflab_dask.metrics",
    "get_metric": "giflab_dask.metrics",
    "scheduler_context": "giflab_dask.cluster",
    "AlignOptions": "giflab_dask.align",
    "ResultStore": "giflab_dask.resultstore",
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
    "AlignOptions",
    "FrameStore",
    "FrameStoreError",
    "GifDecodeError",
    "GifSource",
    "GiflabError",
    "PairResult",
    "ResultStore",
    "StoredGif",
    "__version__",
    "available_metrics",
    "batch_table",
    "collect_pairs",
    "decode_gif",
    "get_metric",
    "gif_key",
    "load_per_frame",
    "load_results",
    "open_frames",
    "plan_batch",
    "register_metric",
    "scan_gif",
    "scheduler_context",
    "validate_batch",
    "validate_pair",
    "validate_pair_lazy",
]

if TYPE_CHECKING:
    from giflab_dask.align import AlignOptions
    from giflab_dask.cluster import scheduler_context
    from giflab_dask.decode import scan_gif
    from giflab_dask.errors import FrameStoreError, GifDecodeError, GiflabError
    from giflab_dask.framestore import FrameStore, StoredGif, decode_gif, open_frames
    from giflab_dask.inputs import collect_pairs
    from giflab_dask.keys import GifSource, gif_key
    from giflab_dask.metrics import available_metrics, get_metric, register_metric
    from giflab_dask.pipeline import plan_batch, validate_batch, validate_pair, validate_pair_lazy
    from giflab_dask.results import PairResult, batch_table, load_per_frame, load_results
    from giflab_dask.resultstore import ResultStore


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'giflab_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
