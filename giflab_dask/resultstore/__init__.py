"""The result store: persisted graph nodes, so validating the same pair again is a lookup.

- ``keys.py``: the keys of a pair's metric and alignment nodes;
- ``documents.py``: node keys, and the checks a stored node must pass to be read;
- ``local.py``: :class:`ResultStore`, one atomically written JSON file per node;
- ``remote.py``: :class:`FsspecResultStore`, one object per node on an fsspec URL;
- ``index.py``: the result index, checksummed segments of node summaries that make a batch's
  lookups (:meth:`ResultStore.lookup`) a listing and a few reads.

:func:`open_result_store` gives the store for a root (a local folder or an fsspec URL).
"""

from __future__ import annotations

import os

from giflab_dask import roots
from giflab_dask.resultstore.documents import SCHEMA_VERSION, node_key
from giflab_dask.resultstore.keys import alignment_node_key, metric_node_key
from giflab_dask.resultstore.local import PRUNE_TEMPORARIES_AFTER_S, ResultStore
from giflab_dask.resultstore.remote import FsspecResultStore

__all__ = [
    "PRUNE_TEMPORARIES_AFTER_S",
    "SCHEMA_VERSION",
    "FsspecResultStore",
    "ResultStore",
    "alignment_node_key",
    "metric_node_key",
    "node_key",
    "open_result_store",
]


def open_result_store(root: str | os.PathLike[str] | None = None) -> ResultStore:
    """The result store at ``root``: a :class:`ResultStore` on a local folder (a path or a
    ``file://`` URL), a :class:`FsspecResultStore` on any other fsspec URL (``s3://...``).

    ``root`` defaults to ``giflab.results.root``, else ``<giflab.cache-dir>/results``.
    """
    resolved = roots.results_root(root)
    return FsspecResultStore(resolved) if roots.is_url(resolved) else ResultStore(resolved)
