"""Pictures of a batch table: distributions of summary columns, and size against quality."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.errors import GiflabError
from giflab_dask.plots.figure import VERDICT_COLOURS, new_figure, set_margins

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["pareto_front", "plot_distributions", "plot_size_quality"]


# -- the table and its groups -----------------------------------------------------------------


def _groups(table: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame]]:
    if by is None or by not in table.columns:
        return [("all pairs", table)]
    return [(str(name), part) for name, part in table.groupby(by, sort=True, dropna=False)]


def _need_columns(table: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        summary = [c for c in table.columns if c.endswith("_mean")]
        raise GiflabError(
            f"the batch table has no column(s) {missing}; summaries present: "
            f"{', '.join(summary) or 'none'}"
        )


def _as_table(table: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, str | Path):
        from giflab_dask.results import load_results

        return load_results(table)
    if isinstance(table, list):  # PairOutcomes of a batch
        from giflab_dask.results import batch_table

        return batch_table(table)
    if hasattr(table, "outcomes"):  # a BatchResult
        from giflab_dask.results import batch_table

        return batch_table(table.outcomes)
    raise GiflabError(
        f"cannot read a batch table from a {type(table).__name__}: give a DataFrame, a results "
        "file, or a BatchResult"
    )


def _thresholds(column: str, profile: Any) -> dict[str, float]:
    from giflab_dask.verdicts import load_profile

    try:
        _, rules = load_profile(profile)
    except GiflabError:
        return {}
    return {k: float(v) for k, v in dict(rules.get(column, {})).items()}


# -- distributions ----------------------------------------------------------------------------


def plot_distributions(
    table: Any,
    columns: str | Sequence[str] = ("ssim_mean",),
    *,
    by: str | None = "variant",
    bins: int = 20,
    profile: Any = None,
    width: float = 9.0,
    row_height: float = 2.6,
) -> Figure:
    """Histograms of summary columns of a batch, one filled outline per group of ``by``.

    ``table`` is a batch table (DataFrame, results file or BatchResult). Groups are the values
    of ``by`` (the ``variant`` column of a directory batch; one group when it is absent).
    The verdict profile's thresholds for the column are drawn as dashed lines.
    """
    frame = _as_table(table)
    columns = [columns] if isinstance(columns, str) else list(columns)
    _need_columns(frame, *columns)
    groups = _groups(frame, by)
    fig = new_figure(figsize=(width, 0.6 + row_height * len(columns)))
    axes = fig.subplots(len(columns), 1, squeeze=False)[:, 0]
    set_margins(fig, left=0.75, top=0.4, bottom=0.55, hspace=0.45)
    for ax, column in zip(axes, columns, strict=True):
        values = frame[column].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            ax.text(0.5, 0.5, f"no {column} values", transform=ax.transAxes, ha="center")
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for i, (name, part) in enumerate(groups):
            v = part[column].to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            _, _, patches = ax.hist(
                v,
                bins=edges,
                histtype="stepfilled",
                alpha=0.45,
                color=f"C{i % 10}",
                edgecolor=f"C{i % 10}",
                label=f"{name} ({v.size})",
            )
            for patch in patches:
                patch.set_gid(f"group:{name}")
        for rule, limit in _thresholds(column, profile).items():
            line = ax.axvline(
                limit,
                color=VERDICT_COLOURS["fail" if rule.startswith("fail") else "warn"],
                linestyle="--",
                linewidth=1,
                label=f"{rule} {limit:g}",
            )
            line.set_gid(f"threshold:{rule}")
        ax.set_xlabel(column)
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8, frameon=False)
    by_text = f" by {by}" if by is not None and by in frame.columns else ""
    fig.suptitle(f"{', '.join(columns)}{by_text}  ({len(frame)} pairs)", fontsize=10)
    return fig


# -- size vs quality --------------------------------------------------------------------------


def pareto_front(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both ``x`` and ``y`` (higher is better),
    ordered by increasing ``x``. Points with a NaN coordinate are never on the front."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    # Highest x first (ties: highest y first); keep each point that beats every y seen so far.
    order = ok[np.lexsort((-y[ok], -x[ok]))]
    front: list[int] = []
    best = -np.inf
    for i in order:
        if y[i] > best:
            front.append(int(i))
            best = y[i]
    return np.asarray(front[::-1], dtype=np.int64)


def plot_size_quality(
    table: Any,
    quality: str | Sequence[str] = ("ssim_mean", "composite_quality"),
    *,
    size: str = "compression_ratio",
    by: str | None = "variant",
    width: float = 9.0,
    height: float = 3.6,
) -> Figure:
    """Size against quality: one panel per quality column, one colour per group of ``by``,
    and the Pareto front (the best quality reachable at each compression ratio) drawn."""
    frame = _as_table(table)
    quality = [quality] if isinstance(quality, str) else list(quality)
    quality = [q for q in quality if q in frame.columns] or quality
    _need_columns(frame, size, *quality)
    groups = _groups(frame, by)
    fig = new_figure(figsize=(width, height))
    axes = fig.subplots(1, len(quality), squeeze=False)[0]
    set_margins(fig, left=0.75, top=0.4, bottom=0.6, wspace=0.3)
    x_all = frame[size].to_numpy(dtype=np.float64)
    for ax, column in zip(axes, quality, strict=True):
        for i, (name, part) in enumerate(groups):
            points = ax.scatter(
                part[size].to_numpy(dtype=np.float64),
                part[column].to_numpy(dtype=np.float64),
                s=28,
                color=f"C{i % 10}",
                alpha=0.8,
                label=name,
                edgecolors="none",
            )
            points.set_gid(f"group:{name}")
        y_all = frame[column].to_numpy(dtype=np.float64)
        front = pareto_front(x_all, y_all)
        if front.size:
            (line,) = ax.plot(
                x_all[front],
                y_all[front],
                color="black",
                linewidth=1,
                drawstyle="steps-pre",
                label=f"Pareto front ({front.size})",
            )
            line.set_gid("pareto")
        ax.set_xlabel(f"{size} (higher: smaller file)")
        ax.set_ylabel(column)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"size vs quality ({len(frame)} pairs)", fontsize=10)
    return fig
