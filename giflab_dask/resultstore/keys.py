"""The keys of a pair's result nodes: what determines each node's value, tokenized.

The planner looks nodes up and writes them under these keys, and :func:`load_per_frame` reads
them back, so both compose them here (the store that holds the nodes) and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from giflab_dask.resultstore.documents import node_key

if TYPE_CHECKING:
    from giflab_dask.align import AlignOptions
    from giflab_dask.metrics import MetricSpec
    from giflab_dask.sampling import SampleSpec

__all__ = ["alignment_node_key", "metric_node_key"]


def metric_node_key(
    o_key: str,
    c_key: str,
    options: AlignOptions,
    spec: MetricSpec,
    sample: SampleSpec | None = None,
) -> str:
    """The node of one metric of a pair (of its sampled frames when ``sample`` is given)."""
    if sample is None:  # full-frame keys stay what they were before sampling existed
        return node_key("metric", o_key, c_key, options, spec)
    return node_key("metric", o_key, c_key, options, spec, sample)


def alignment_node_key(o_key: str, c_key: str, options: AlignOptions) -> str:
    """The node of a pair's frame mapping and pair facts."""
    return node_key("alignment", o_key, c_key, options)
