"""giflab-dask: validate GIF compression at scale with Dask and Zarr.

Public names are imported lazily so ``import giflab_dask`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PairInput": "giflab_dask.inputs",
    "collect_pairs": "giflab_dask.inputs",
    "GifSource": "giflab_dask.keys",
    "gif_key": "giflab_dask.keys",
    "FrameRecord": "giflab_dask.decode",
    "GifLayout": "giflab_dask.decode",
    "Limits": "giflab_dask.decode",
    "scan_gif": "giflab_dask.decode",
    "EntryInfo": "giflab_dask.framestore.entry",
    "FrameStore": "giflab_dask.framestore.local",
    "StoredGif": "giflab_dask.framestore.entry",
    "decode_gif": "giflab_dask.framestore",
    "open_frame_store": "giflab_dask.framestore",
    "open_frames": "giflab_dask.framestore",
    "AlignOptions": "giflab_dask.align",
    "SampleSpec": "giflab_dask.sampling",
    "MetricSpec": "giflab_dask.metrics",
    "available_metrics": "giflab_dask.metrics",
    "get_metric": "giflab_dask.metrics",
    "register_metric": "giflab_dask.metrics",
    "ValidateOptions": "giflab_dask.options",
    "BatchPlan": "giflab_dask.outcomes",
    "BatchResult": "giflab_dask.outcomes",
    "LazyPairResult": "giflab_dask.outcomes",
    "PairOutcome": "giflab_dask.outcomes",
    "plan_batch": "giflab_dask.pipeline",
    "validate_batch": "giflab_dask.pipeline",
    "validate_pair": "giflab_dask.pipeline",
    "validate_pair_lazy": "giflab_dask.pipeline",
    "Check": "giflab_dask.verdicts",
    "Verdict": "giflab_dask.verdicts",
    "PairResult": "giflab_dask.results",
    "batch_table": "giflab_dask.results",
    "load_per_frame": "giflab_dask.results",
    "load_results": "giflab_dask.results",
    "ResultStore": "giflab_dask.resultstore.local",
    "open_result_store": "giflab_dask.resultstore",
    "RunReport": "giflab_dask.diagnostics",
    "BatchProgress": "giflab_dask.progress",
    "SchedulerSession": "giflab_dask.cluster",
    "scheduler_context": "giflab_dask.cluster",
    "AlignmentError": "giflab_dask.errors",
    "BatchInputError": "giflab_dask.errors",
    "CacheFileError": "giflab_dask.errors",
    "CacheIntegrityWarning": "giflab_dask.errors",
    "CacheWriteError": "giflab_dask.errors",
    "ConfigError": "giflab_dask.errors",
    "ExternalToolError": "giflab_dask.errors",
    "FrameStoreCorruptError": "giflab_dask.errors",
    "FrameStoreError": "giflab_dask.errors",
    "GifDecodeError": "giflab_dask.errors",
    "GifLimitError": "giflab_dask.errors",
    "GiflabError": "giflab_dask.errors",
    "GiflabWarning": "giflab_dask.errors",
    "MeasurementError": "giflab_dask.errors",
    "MemoryBudgetError": "giflab_dask.errors",
    "PairTimeLimitError": "giflab_dask.errors",
    "SamplingError": "giflab_dask.errors",
    "UnknownMetricError": "giflab_dask.errors",
}

__all__ = [
    "AlignOptions",
    "AlignmentError",
    "BatchInputError",
    "BatchPlan",
    "BatchProgress",
    "BatchResult",
    "CacheFileError",
    "CacheIntegrityWarning",
    "CacheWriteError",
    "Check",
    "ConfigError",
    "EntryInfo",
    "ExternalToolError",
    "FrameRecord",
    "FrameStore",
    "FrameStoreCorruptError",
    "FrameStoreError",
    "GifDecodeError",
    "GifLayout",
    "GifLimitError",
    "GifSource",
    "GiflabError",
    "GiflabWarning",
    "LazyPairResult",
    "Limits",
    "MeasurementError",
    "MemoryBudgetError",
    "MetricSpec",
    "PairInput",
    "PairOutcome",
    "PairResult",
    "PairTimeLimitError",
    "ResultStore",
    "RunReport",
    "SampleSpec",
    "SamplingError",
    "SchedulerSession",
    "StoredGif",
    "UnknownMetricError",
    "ValidateOptions",
    "Verdict",
    "__version__",
    "available_metrics",
    "batch_table",
    "collect_pairs",
    "decode_gif",
    "get_metric",
    "gif_key",
    "load_per_frame",
    "load_results",
    "open_frame_store",
    "open_frames",
    "open_result_store",
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
    from giflab_dask.cluster import SchedulerSession, scheduler_context
    from giflab_dask.decode import FrameRecord, GifLayout, Limits, scan_gif
    from giflab_dask.diagnostics import RunReport
    from giflab_dask.errors import (
        AlignmentError,
        BatchInputError,
        CacheFileError,
        CacheIntegrityWarning,
        CacheWriteError,
        ConfigError,
        ExternalToolError,
        FrameStoreCorruptError,
        FrameStoreError,
        GifDecodeError,
        GiflabError,
        GiflabWarning,
        GifLimitError,
        MeasurementError,
        MemoryBudgetError,
        PairTimeLimitError,
        SamplingError,
        UnknownMetricError,
    )
    from giflab_dask.framestore import decode_gif, open_frame_store, open_frames
    from giflab_dask.framestore.entry import EntryInfo, StoredGif
    from giflab_dask.framestore.local import FrameStore
    from giflab_dask.inputs import PairInput, collect_pairs
    from giflab_dask.keys import GifSource, gif_key
    from giflab_dask.metrics import MetricSpec, available_metrics, get_metric, register_metric
    from giflab_dask.options import ValidateOptions
    from giflab_dask.outcomes import BatchPlan, BatchResult, LazyPairResult, PairOutcome
    from giflab_dask.pipeline import plan_batch, validate_batch, validate_pair, validate_pair_lazy
    from giflab_dask.progress import BatchProgress
    from giflab_dask.results import PairResult, batch_table, load_per_frame, load_results
    from giflab_dask.resultstore import open_result_store
    from giflab_dask.resultstore.local import ResultStore
    from giflab_dask.sampling import SampleSpec
    from giflab_dask.verdicts import Check, Verdict


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'giflab_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
