"""Figures without ``pyplot``: no global figure state, safe in threads and long report runs,
and displayed by Jupyter all the same."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["VERDICT_COLOURS", "new_figure", "set_margins"]

#: Colours of verdicts in titles and threshold lines.
VERDICT_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828", "error": "#555555"}


def new_figure(**kwargs: Any) -> Figure:
    """A pyplot-free Figure that Jupyter knows how to display.

    Margins are set in inches with :func:`set_margins` rather than by a layout engine:
    constrained layout measures every text artist and draws twice, slow over a whole report.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "giflab_dask.plots needs matplotlib: pip install 'giflab-dask[plots]'"
        ) from exc
    _enable_ipython_display()
    return Figure(**kwargs)


def set_margins(
    fig: Figure,
    *,
    left: float = 0.8,
    right: float = 0.2,
    top: float = 0.45,
    bottom: float = 0.5,
    hspace: float = 0.0,
    wspace: float = 0.0,
) -> None:
    """Subplot margins in inches (``hspace``/``wspace`` as fractions of the axes size)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=hspace,
        wspace=wspace,
    )


def _enable_ipython_display() -> None:
    """Register a PNG formatter for Figures in a running IPython kernel if none is registered.

    Figures made without pyplot are otherwise shown as ``<Figure size ...>`` text until the
    user imports pyplot or runs ``%matplotlib inline``; a formatter the user chose is kept.
    """
    if "IPython" not in sys.modules:
        return
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        try:
            formatters[mime].lookup_by_type(Figure)
            return
        except (KeyError, TypeError):
            continue
    select_figure_formats(shell, {"png"})
