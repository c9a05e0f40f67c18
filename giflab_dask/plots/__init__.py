"""Pictures of validation results: per-frame curves, batch distributions, size vs quality, and
the worst frames of a pair side by side.

Everything here reads what a run stored: per-frame vectors and the frame mapping from a
:class:`~giflab_dask.results.PairResult` or from the result store (for a row of a batch table),
summaries from the batch table, and frames from the frame store. Plotting computes no metric.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
figure state, safe in threads and in long report runs); in Jupyter a returned figure displays
itself. matplotlib is an optional dependency (``pip install 'giflab-dask[plots]'``) imported
on first use.

Artists carry ids (``Artist.get_gid()``) so tests and callers can find them:
``metric:<column>`` for per-frame curves, ``dropped-frames`` for the dropped-frame marks,
``group:<name>`` for the histograms and scatter points of a group, ``pareto`` for the Pareto
front, ``threshold:<rule>`` for verdict thresholds, and ``original`` / ``compressed`` /
``difference`` for the images of the worst-frames view.

:mod:`~giflab_dask.plots.pair` draws one pair (its per-frame curves, its worst frames),
:mod:`~giflab_dask.plots.batch` a batch table (distributions, size vs quality);
:mod:`~giflab_dask.plots.figure` makes the figures both use.
"""

from giflab_dask.plots.batch import pareto_front, plot_distributions, plot_size_quality
from giflab_dask.plots.pair import dropped_frames, plot_per_frame, plot_worst_frames, worst_frames

__all__ = [
    "dropped_frames",
    "pareto_front",
    "plot_distributions",
    "plot_per_frame",
    "plot_size_quality",
    "plot_worst_frames",
    "worst_frames",
]
