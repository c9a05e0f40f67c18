"""Pictures of one pair: per-frame curves with dropped frames marked, and the worst frames side
by side with their difference.

Per-frame vectors and the frame mapping come from a :class:`~giflab_dask.results.PairResult`
or, for a row of a batch table, from the result store; frames from the frame store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.errors import GiflabError
from giflab_dask.plots.figure import VERDICT_COLOURS, new_figure, set_margins

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from giflab_dask.align import AlignOptions
    from giflab_dask.framestore import FrameStore
    from giflab_dask.resultstore import ResultStore

__all__ = ["dropped_frames", "plot_per_frame", "plot_worst_frames", "worst_frames"]

#: Per-frame columns plotted when none are named (those present, in this order).
DEFAULT_CURVES = ("ssim", "psnr", "deltae_mean")


# -- where the data comes from ----------------------------------------------------------------


@dataclass
class _PairData:
    """What the pair plots need: per-frame columns, the mapping, the keys and a label."""

    frame: pd.DataFrame  # index: original frame; metric columns (and maybe compressed_frame)
    mapping: np.ndarray | None
    original_key: str | None
    compressed_key: str | None
    label: str
    status: str | None


def _short(path: Any) -> str:
    if path is None or (isinstance(path, float) and math.isnan(path)):
        return "?"
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _pair_data(
    pair: Any,
    *,
    metrics: Any = None,
    align_options: AlignOptions | None = None,
    results: ResultStore | None = None,
) -> _PairData:
    """Accept a PairResult, a per-frame DataFrame, or a batch-table row (a dict or Series)."""
    import pandas as pd

    from giflab_dask.results import PairResult, load_per_frame

    if isinstance(pair, PairResult):
        frame = pair.per_frame_frame()
        return _PairData(
            frame,
            np.asarray(pair.mapping, dtype=np.int64),
            pair.original_key,
            pair.compressed_key,
            f"{_short(pair.original)} → {_short(pair.compressed)}",
            pair.status,
        )
    if isinstance(pair, pd.DataFrame):
        mapping = pair["compressed_frame"].to_numpy() if "compressed_frame" in pair else None
        return _PairData(pair, mapping, None, None, "", None)
    if isinstance(pair, Mapping | pd.Series):
        row = pair
        keys = (row.get("original_key"), row.get("compressed_key"))
        if not all(isinstance(k, str) and k for k in keys):  # error rows: None or NaN
            raise GiflabError(
                f"row {row.get('row', '?')} has no content keys (error: {row.get('error')}); "
                "there is nothing stored to plot"
            )
        frame = load_per_frame(row, metrics=metrics, align_options=align_options, results=results)
        mapping = frame["compressed_frame"].to_numpy() if "compressed_frame" in frame else None
        return _PairData(
            frame,
            mapping,
            str(row["original_key"]),
            str(row["compressed_key"]),
            f"{_short(row.get('original'))} → {_short(row.get('compressed'))}",
            str(row.get("verdict")) if row.get("verdict") is not None else None,
        )
    raise GiflabError(
        f"cannot plot a {type(pair).__name__}: give a PairResult, a per-frame DataFrame "
        "(PairResult.per_frame_frame() or load_per_frame()) or a row of a batch table"
    )


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "compressed_frame"]


def _resolve_column(frame: pd.DataFrame, name: str) -> str:
    """A per-frame column by output name, or by metric name (its first output)."""
    if name in frame.columns and name != "compressed_frame":
        return name
    from giflab_dask.metrics import available_metrics, get_metric

    if name in available_metrics():
        for output in get_metric(name).outputs:
            if output in frame.columns:
                return output
    raise GiflabError(
        f"no per-frame values for {name!r}; stored: {', '.join(_metric_columns(frame)) or 'none'}"
        " (was it among the run's metrics, with the same alignment options?)"
    )


def _higher_is_better(column: str) -> bool:
    from giflab_dask.metrics import available_metrics, get_metric

    for name in available_metrics():
        spec = get_metric(name)
        if column in spec.outputs:
            return spec.better_high(column)
    return True


def dropped_frames(mapping: Sequence[int] | np.ndarray) -> np.ndarray:
    """Original frames shown with the same compressed frame as the frame before them.

    Those are the frames the compressed GIF dropped (or merged into the previous one): a
    viewer sees the previous compressed frame held on screen.
    """
    m = np.asarray(mapping)
    if m.size < 2:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(m[1:] == m[:-1]).astype(np.int64) + 1


# -- per-frame curves -------------------------------------------------------------------------


def plot_per_frame(
    pair: Any,
    metrics: str | Sequence[str] | None = None,
    *,
    width: float = 9.0,
    row_height: float = 1.9,
    title: str | None = None,
    run_metrics: Any = None,
    align_options: AlignOptions | None = None,
    results: ResultStore | None = None,
) -> Figure:
    """Per-frame curves of one pair, one panel per metric, dropped frames marked.

    ``pair`` is a PairResult, a per-frame DataFrame, or a row of a batch table (its vectors are
    read from the result store with ``run_metrics`` / ``align_options``, those of the run).
    ``metrics`` names per-frame columns (``"ssim"``, ``"deltae_mean"``) or metrics (their first
    output); default: SSIM, PSNR and mean ΔE, whichever were computed.
    """
    data = _pair_data(pair, metrics=run_metrics, align_options=align_options, results=results)
    frame = data.frame
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if metrics is None:
        columns = [c for c in DEFAULT_CURVES if c in frame.columns] or _metric_columns(frame)[:3]
    else:
        columns = [_resolve_column(frame, m) for m in metrics]
    if not columns:
        raise GiflabError(
            f"no per-frame values to plot for {data.label or 'this pair'}: none in the result "
            "store for these metrics and alignment options (pass the run's)"
        )
    dropped = dropped_frames(data.mapping) if data.mapping is not None else np.zeros(0, int)

    fig = new_figure(figsize=(width, 0.6 + row_height * len(columns)))
    axes = fig.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    heading = title if title is not None else data.label
    if data.status:
        heading = f"{heading}  [{data.status}]" if heading else f"[{data.status}]"
    set_margins(fig, left=0.85, top=0.4 if heading else 0.15, hspace=0.12)
    x = frame.index.to_numpy()
    for ax, column in zip(axes, columns, strict=True):
        y = frame[column].to_numpy(dtype=np.float64)
        (line,) = ax.plot(x, y, color="C0", linewidth=1.2, label=column)
        line.set_gid(f"metric:{column}")
        if len(x) <= 80:
            line.set_marker(".")
        if dropped.size:
            marks = ax.vlines(
                dropped,
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors="#c62828",
                alpha=0.25 if dropped.size < 200 else 0.08,
                linewidth=1.0,
                label=f"dropped frame ({dropped.size})",
            )
            marks.set_gid("dropped-frames")
        ax.set_ylabel(column)
        ax.grid(True, alpha=0.3)
        if np.isnan(y).any():
            n = int(np.isnan(y).sum())
            ax.text(0.99, 0.04, f"{n} missing", transform=ax.transAxes, ha="right", fontsize=8)
    axes[-1].set_xlabel("original frame")
    if dropped.size:
        legend = axes[0].legend(loc="lower left", fontsize=8, frameon=False)
        for handle in legend.legend_handles:
            handle.set_alpha(0.8)
    if heading:
        fig.suptitle(heading, fontsize=10, color=VERDICT_COLOURS.get(data.status or "", "black"))
    return fig


# -- worst frames -----------------------------------------------------------------------------


def worst_frames(
    values: Sequence[float] | np.ndarray, k: int, *, higher_is_better: bool = True
) -> np.ndarray:
    """Indices of the ``k`` worst measured frames (NaN frames are skipped), worst first."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(v))
    key = v[ok] if higher_is_better else -v[ok]
    order = ok[np.argsort(key, kind="stable")]
    return order[: max(0, int(k))]


def _read_frames(
    store: FrameStore, key: str, index: np.ndarray, what: str
) -> tuple[Any, np.ndarray, np.ndarray | None]:
    stored = store.open(key)
    if stored is None:
        raise GiflabError(
            f"the {what} GIF ({key[:16]}…) is not in the frame store {store.root} (evicted or "
            "another cache dir?): decode it again with `giflab-dask decode FILE`"
        )
    rgb = stored.frames()[index].compute()
    alpha = stored.alpha()
    return stored, rgb, None if alpha is None else alpha[index].compute()


def _aligned_frames(
    store: FrameStore,
    keys: tuple[str, str],
    frames: tuple[np.ndarray, np.ndarray],
    options: AlignOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Original and compressed frames (by index) composited and resized as the metrics saw
    them: ``(n, h, w, 3)`` uint8 each, on the smaller of the two screens."""
    from giflab_dask.align import prepare_block

    o_gif, o_rgb, o_alpha = _read_frames(store, keys[0], frames[0], "original")
    c_gif, c_rgb, c_alpha = _read_frames(store, keys[1], frames[1], "compressed")
    size = (min(o_gif.height, c_gif.height), min(o_gif.width, c_gif.width))
    prep: dict[str, Any] = {
        "background": options.background,
        "size": size,
        "method": options.resize,
    }
    return prepare_block(o_rgb, o_alpha, **prep), prepare_block(c_rgb, c_alpha, **prep)


def plot_worst_frames(
    pair: Any,
    k: int = 3,
    metric: str = "ssim",
    *,
    store: FrameStore | None = None,
    align_options: AlignOptions | None = None,
    run_metrics: Any = None,
    results: ResultStore | None = None,
    panel_width: float = 3.0,
) -> Figure:
    """The ``k`` worst frames of a pair by ``metric``: one row each with the original frame,
    the compressed frame shown with it (from the mapping), and a heat map of their absolute
    difference (mean over RGB, one colour scale for all rows).

    Frames come from the frame store (``store``, default: the configured one), composited and
    resized as the metrics saw them (``align_options``: those of the run).
    """
    from giflab_dask.align import AlignOptions
    from giflab_dask.framestore import open_frame_store

    options = align_options or AlignOptions.from_config()
    data = _pair_data(pair, metrics=run_metrics, align_options=options, results=results)
    if data.original_key is None or data.compressed_key is None or data.mapping is None:
        raise GiflabError(
            "the worst-frames view needs the GIFs' keys and the frame mapping: give a "
            "PairResult or a row of a batch table"
        )
    column = _resolve_column(data.frame, metric)
    values = data.frame[column].to_numpy(dtype=np.float64)
    index = worst_frames(values, k, higher_is_better=_higher_is_better(column))
    if index.size == 0:
        raise GiflabError(f"no frame of {data.label} has a measured {column}")
    mapped = data.mapping[index]
    o_img, c_img = _aligned_frames(
        store or open_frame_store(),
        (data.original_key, data.compressed_key),
        (index, mapped),
        options,
    )
    size = o_img.shape[1:3]
    diff = np.abs(o_img.astype(np.int16) - c_img.astype(np.int16)).mean(axis=-1)
    vmax = max(1.0, float(diff.max()))

    rows = index.size
    panel_height = panel_width * size[0] / size[1]
    fig = new_figure(figsize=(3 * panel_width + 1.5, rows * (panel_height + 0.3) + 0.45))
    axes = fig.subplots(rows, 3, squeeze=False)
    set_margins(
        fig, left=0.3, right=1.2, top=0.55, bottom=0.1, hspace=0.3 / panel_height, wspace=0.04
    )
    heat = None
    for r in range(rows):
        i, j = int(index[r]), int(mapped[r])
        panels = (
            ("original", o_img[r], f"original #{i}"),
            ("compressed", c_img[r], f"compressed #{j}"),
            ("difference", diff[r], f"|Δ| mean {diff[r].mean():.1f}, max {diff[r].max():.0f}"),
        )
        for ax, (gid, image, text) in zip(axes[r], panels, strict=True):
            if gid == "difference":
                heat = ax.imshow(image, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
                artist = heat
            else:
                artist = ax.imshow(image, interpolation="nearest")
            artist.set_gid(gid)
            ax.set_title(text, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{column} {values[i]:.4g}", fontsize=8)
    if heat is not None:
        top, bottom = axes[0, 2].get_position().y1, axes[-1, 2].get_position().y0
        left = axes[0, 2].get_position().x1 + 0.15 / fig.get_size_inches()[0]
        cax = fig.add_axes(
            (left, bottom, 0.12 / fig.get_size_inches()[0], top - bottom), label="<colorbar>"
        )
        fig.colorbar(heat, cax=cax, label="|original − compressed|")
    fig.suptitle(f"{rows} worst frames by {column}: {data.label}", fontsize=9)
    return fig
