"""A visual report of a batch: one self-contained HTML file.

``write_report(table_or_path, "report.html")`` (CLI: ``giflab-dask report RESULTS --out
report.html``) writes a single HTML file with

* the verdict counts and a sortable summary table of every pair (a few lines of inline
  JavaScript; click a header to sort, worst composite quality first on load);
* the batch distributions (histogram of SSIM mean / composite quality by variant) and the
  size-vs-quality scatter with its Pareto front;
* for each failed pair, then the worst of the others, its per-frame curves and its worst
  frames (original, compressed, difference heat map).

Images are PNGs embedded as base64 ``data:`` URIs and the styles and script are inline: the file
references nothing outside itself, so it opens offline and can be mailed or archived as is.
Nothing is recomputed: summaries come from the table, per-frame vectors from the result store
(:func:`giflab_dask.results.load_per_frame`, which needs the run's metrics and alignment
options), frames from the frame store.

This module imports only click at import time (the CLI registers :func:`report_command`);
pandas and matplotlib are imported when a report is written.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from giflab_dask.errors import GiflabError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from giflab_dask.align import AlignOptions
    from giflab_dask.framestore import FrameStore
    from giflab_dask.resultstore import ResultStore

__all__ = ["report_command", "write_report"]

#: Summary columns shown in the table when present (after the input columns).
TABLE_METRICS = (
    "compression_ratio",
    "composite_quality",
    "ssim_mean",
    "ssim_min",
    "psnr_mean",
    "deltae_p95",
    "timing_drift",
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1b1b1b;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:22px 0 6px}.muted{color:#666}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600}
.badge.pass{background:#2e7d32}.badge.warn{background:#ef6c00}.badge.fail{background:#c62828}
.badge.error{background:#555}
.counts .badge{font-size:14px;margin-right:6px}
table.sortable{border-collapse:collapse;font-size:12.5px}
table.sortable th,table.sortable td{border-bottom:1px solid #e4e4e4;padding:3px 7px;
text-align:left;white-space:nowrap}
table.sortable td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable td.notes{white-space:normal;min-width:360px;max-width:560px}
.scroll{overflow-x:auto}
tr.row-fail td{background:#fdecea}tr.row-warn td{background:#fff4e5}
tr.row-error td{background:#f0f0f0}
table.sortable th{cursor:pointer;background:#f4f4f4;position:sticky;top:0;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
table.sortable tbody tr:hover{background:#fafae6}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.pair{border-left:4px solid #ccc;padding-left:12px;margin-top:18px}
.pair.pair-fail{border-color:#c62828}.pair.pair-warn{border-color:#ef6c00}.note{color:#8a4b00}
"""

# Sort the summary table by a clicked header (numbers numerically, missing values last), and
# sort it once on load by the column marked data-default-sort. Sets data-ready on the table and
# data-images-loaded on <body> (images that decoded) so a headless browser can check the page.
_JS = """
(function () {
  var table = document.getElementById("summary");
  if (!table) return;
  function val(row, col) {
    var c = row.cells[col], v = c.hasAttribute("data-value") ? c.getAttribute("data-value")
      : c.textContent.trim();
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v;
  }
  function sortBy(th, asc) {
    var col = th.cellIndex, body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = val(a, col), y = val(b, col), xn = typeof x === "number", yn = typeof y === "number";
      if (xn && yn) return asc ? x - y : y - x;
      if (xn !== yn) return xn ? -1 : 1;
      return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () {
      sortBy(th, th.getAttribute("aria-sort") !== "ascending");
    });
    if (th.hasAttribute("data-default-sort")) sortBy(th, true);
  });
  table.setAttribute("data-ready", "1");
  window.addEventListener("load", function () {
    var ok = Array.prototype.filter.call(document.images, function (i) {
      return i.complete && i.naturalWidth > 0;
    });
    document.body.setAttribute("data-images-loaded", String(ok.length));
  });
})();
"""


# -- pieces ------------------------------------------------------------------------------------


def _png(fig: Figure, dpi: int = 90) -> str:
    """The figure as a base64 PNG data URI (no metadata: nothing but pixels leaves matplotlib)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str, dpi: int = 90) -> str:
    return f'<img alt="{html.escape(alt)}" src="{_png(fig, dpi)}">'


def _esc(value: Any) -> str:
    return html.escape("" if _missing(value) else str(value))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:  # pragma: no cover - exotic scalar types
        return False


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def _short(path: Any) -> str:
    if _missing(path):
        return ""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _input_columns(table: pd.DataFrame) -> list[str]:
    """Columns carried from the batch input (e.g. ``variant``): non-numeric, not base columns."""
    import pandas as pd

    from giflab_dask.results import BASE_COLUMNS

    return [
        c
        for c in table.columns
        if c not in BASE_COLUMNS and not pd.api.types.is_numeric_dtype(table[c])
    ]


def _run_metrics(table: pd.DataFrame) -> list[str]:
    """The registered metrics whose summaries the table holds (the run's metrics)."""
    from giflab_dask.metrics import available_metrics, get_metric

    return [
        name
        for name in available_metrics()
        if f"{get_metric(name).outputs[0]}_n_frames" in table.columns
    ]


def _as_table(table_or_path: Any) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    from giflab_dask.results import batch_table, load_results

    if isinstance(table_or_path, pd.DataFrame):
        return table_or_path, "batch table"
    if isinstance(table_or_path, str | os.PathLike):
        path = Path(table_or_path)
        if not path.is_file():
            raise GiflabError(f"{path}: no such results file")
        return load_results(path), path.name
    if hasattr(table_or_path, "outcomes"):
        return batch_table(table_or_path.outcomes), "batch"
    raise GiflabError(
        f"write_report needs a batch table, a results file or a BatchResult, "
        f"not a {type(table_or_path).__name__}"
    )


def _pick_pairs(table: pd.DataFrame, max_pairs: int) -> tuple[list[int], int]:
    """Positions of the pairs shown in detail: failed ones first, then the worst others."""
    import numpy as np

    score_column = next((c for c in ("composite_quality", "ssim_mean") if c in table.columns), None)
    verdict = table["verdict"].astype(str).to_numpy() if "verdict" in table else None
    n = len(table)
    if verdict is None:
        return [], 0
    score = (
        table[score_column].to_numpy(dtype=np.float64)
        if score_column is not None
        else np.full(n, np.nan)
    )
    # NaN scores sort after measured ones.
    order = sorted(range(n), key=lambda i: (math.isnan(score[i]), score[i]))
    failed = [i for i in order if verdict[i] == "fail"]
    others = [i for i in order if verdict[i] in ("warn", "pass")]
    return (failed + others)[: max(0, max_pairs)], len(failed)


def _summary_table(table: pd.DataFrame, detailed: set[int]) -> str:
    inputs = _input_columns(table)
    metrics = [c for c in TABLE_METRICS if c in table.columns]
    default_sort = "composite_quality" if "composite_quality" in metrics else None
    head = ["row", *inputs, "original", "compressed", "frames", *metrics, "verdict", "notes"]
    cells = []
    for name in head:
        extra = ' data-default-sort="1"' if name == default_sort else ""
        cells.append(f'<th scope="col"{extra}>{html.escape(name)}</th>')
    lines = [
        '<div class="scroll">',
        f'<table id="summary" class="sortable"><thead><tr>{"".join(cells)}</tr></thead>',
    ]
    lines.append("<tbody>")
    for pos, (_, row) in enumerate(table.iterrows()):
        verdict = str(row.get("verdict", ""))
        row_id = _esc(row.get("row", pos + 1))
        label = row_id
        if pos in detailed:
            label = f'<a href="#pair-{pos}">{row_id}</a>'
        tds = [f'<td class="num" data-value="{row_id}">{label}</td>']
        tds += [f"<td>{_esc(row.get(c))}</td>" for c in inputs]
        for role in ("original", "compressed"):
            tds.append(
                f'<td title="{_esc(row.get(role))}">{html.escape(_short(row.get(role)))}</td>'
            )
        o_frames, c_frames = (
            _number(row.get("original_frames")),
            _number(row.get("compressed_frames")),
        )
        frames = f"{o_frames:.0f} → {c_frames:.0f}" if o_frames and c_frames else "–"
        tds.append(f'<td class="num" data-value="{o_frames or ""}">{frames}</td>')
        for c in metrics:
            v = _number(row.get(c))
            tds.append(
                f'<td class="num" data-value="{"" if v is None else repr(v)}">{_fmt(v)}</td>'
            )
        tds.append(f'<td data-value="{_esc(verdict)}"><span class="badge {_esc(verdict)}">'
                   f"{_esc(verdict)}</span></td>")  # fmt: skip
        notes = row.get("error") if verdict == "error" else row.get("failed_checks")
        tds.append(f'<td class="notes">{_esc(notes)}</td>')
        lines.append(f'<tr class="row-{_esc(verdict)}">{"".join(tds)}</tr>')
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _pair_section(
    pos: int,
    row: pd.Series,
    *,
    metrics: Sequence[str],
    align_options: AlignOptions,
    results: ResultStore,
    store: FrameStore,
    k_frames: int,
    dpi: int,
) -> str:
    from giflab_dask import plots
    from giflab_dask.results import load_per_frame

    verdict = str(row.get("verdict", ""))
    parts = [
        f'<section class="pair pair-{_esc(verdict)}" id="pair-{pos}">',
        f"<h3>row {_esc(row.get('row', pos + 1))}: {html.escape(_short(row.get('original')))} "
        f"→ {html.escape(_short(row.get('compressed')))} "
        f'<span class="badge {_esc(verdict)}">{_esc(verdict)}</span></h3>',
    ]
    checks = row.get("failed_checks")
    if not _missing(checks) and str(checks):
        parts.append(f"<p>{_esc(checks)}</p>")
    frame = load_per_frame(row, metrics=metrics, align_options=align_options, results=results)
    curves = [c for c in frame.columns if c != "compressed_frame"]
    if not curves:
        parts.append(
            f'<p class="note">No per-frame vectors for this pair in the result store '
            f"{html.escape(str(results.root))}: run the report with the run's cache dir, "
            "metrics and alignment options.</p></section>"
        )
        return "\n".join(parts)
    label = f"row {row.get('row', pos + 1)}"
    try:
        fig = plots.plot_per_frame(frame, title="")
        parts.append(_img(fig, f"per-frame curves of {label}", dpi))
    except GiflabError as exc:
        parts.append(f'<p class="note">per-frame curves: {html.escape(str(exc))}</p>')
    metric = next((c for c in ("ssim", "psnr") if c in curves), curves[0])
    try:
        fig = plots.plot_worst_frames(
            row,
            k_frames,
            metric,
            store=store,
            align_options=align_options,
            run_metrics=metrics,
            results=results,
        )
        parts.append(_img(fig, f"worst frames of {label} by {metric}", dpi))
    except GiflabError as exc:
        parts.append(f'<p class="note">worst frames: {html.escape(str(exc))}</p>')
    parts.append("</section>")
    return "\n".join(parts)


# -- the report --------------------------------------------------------------------------------


def write_report(
    table_or_path: Any,
    out_html: str | os.PathLike[str],
    *,
    title: str | None = None,
    metrics: Any = None,
    align_options: AlignOptions | None = None,
    profile: Any = None,
    results: ResultStore | None = None,
    store: FrameStore | None = None,
    max_pairs: int = 8,
    k_frames: int = 3,
    dpi: int = 90,
) -> Path:
    """Write the batch report to ``out_html`` (one self-contained file) and return its path.

    ``table_or_path`` is a batch table (DataFrame), a results file (.parquet, .csv, .jsonl) or a
    BatchResult. ``metrics`` and ``align_options`` must be those of the run so the per-frame
    vectors are found in the result store (default: the registered metrics whose summaries are
    in the table, and the configured alignment options). ``max_pairs`` pairs are shown in detail
    (failed ones first, worst composite quality first), each with its ``k_frames`` worst frames.
    ``profile`` only chooses the thresholds drawn on the histograms.
    """
    import matplotlib

    from giflab_dask.align import AlignOptions
    from giflab_dask.framestore import open_frame_store
    from giflab_dask.metrics import resolve_metrics
    from giflab_dask.resultstore import open_result_store

    del matplotlib  # imported first so a missing matplotlib fails before any work
    table, source = _as_table(table_or_path)
    if "verdict" not in table.columns:
        raise GiflabError(f"{source}: not a giflab-dask batch table (no 'verdict' column)")
    table = table.reset_index(drop=True)
    run_metrics = [s.name for s in resolve_metrics(metrics)] if metrics else _run_metrics(table)
    align_options = align_options or AlignOptions.from_config()
    results = results or open_result_store()
    store = store or open_frame_store()
    title = title or f"giflab-dask report: {source}"

    picked, n_failed = _pick_pairs(table, max_pairs)
    body = _heading(table, title, run_metrics, align_options, set(picked))
    body += _distributions(table, profile, dpi)
    if picked:
        body += _pair_sections(
            table,
            picked,
            n_failed,
            metrics=run_metrics,
            align_options=align_options,
            results=results,
            store=store,
            k_frames=k_frames,
            dpi=dpi,
        )
    return _write_document(Path(out_html), title, body)


def _heading(
    table: pd.DataFrame,
    title: str,
    run_metrics: list[str],
    align_options: AlignOptions,
    linked: set[int],
) -> list[str]:
    """The title, what the run was, its verdict counts and the table of every pair."""
    counts = table["verdict"].astype(str).value_counts()
    badges = " ".join(
        f'<span class="badge {v}">{int(counts.get(v, 0))} {v}</span>'
        for v in ("pass", "warn", "fail", "error")
    )
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{len(table)} pairs · generated {html.escape(when)} · metrics: '
        f"{html.escape(', '.join(run_metrics) or 'none found')} · alignment "
        f"{html.escape(align_options.mode)}</p>",
        f'<p class="counts">{badges}</p>',
        "<h2>Pairs</h2>",
        '<p class="muted">Click a column to sort. Rows with a link are shown in detail below.</p>',
        _summary_table(table, linked),
    ]


def _distributions(table: pd.DataFrame, profile: Any, dpi: int) -> list[str]:
    """The quality histograms and the size-quality plot of the valid pairs (none without)."""
    from giflab_dask import plots

    valid = table[table["verdict"].astype(str) != "error"]
    figures: list[str] = []
    hist_columns = [c for c in ("ssim_mean", "composite_quality") if c in valid.columns]
    if len(valid) and hist_columns:
        fig = plots.plot_distributions(valid, hist_columns, profile=profile)
        figures.append(_img(fig, "distributions of " + ", ".join(hist_columns), dpi))
    if len(valid) and "compression_ratio" in valid.columns and hist_columns:
        fig = plots.plot_size_quality(valid, hist_columns)
        figures.append(_img(fig, "size vs quality with the Pareto front", dpi))
    return ["<h2>Distributions</h2>", *figures] if figures else []


def _pair_sections(
    table: pd.DataFrame, picked: list[int], n_failed: int, **section: Any
) -> list[str]:
    """The detailed sections of the ``picked`` pairs, failed ones first (``section``: the
    keywords of :func:`_pair_section`)."""
    shown = f"{min(n_failed, len(picked))} of {n_failed} failed pair(s)" + (
        f", then {len(picked) - n_failed} worst other pair(s)" if len(picked) > n_failed else ""
    )
    return [
        "<h2>Failed and worst pairs</h2>",
        f'<p class="muted">{html.escape(shown)}, by '
        f"{'composite quality' if 'composite_quality' in table else 'SSIM mean'}.</p>",
        *(_pair_section(pos, table.iloc[pos], **section) for pos in picked),
    ]


def _write_document(out: Path, title: str, body: list[str]) -> Path:
    """Write the page atomically (a temporary file renamed into place): a reader never sees
    half a report."""
    document = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            *body,
            f"<script>{_JS}</script>",
            "</body></html>",
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(document, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# -- command line ------------------------------------------------------------------------------


@click.command("report")
@click.argument("results_file", metavar="RESULTS", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write (self-contained: images embedded, no network).",
)
@click.option("--title", help="Page title (default: from the results file name).")
@click.option(
    "--metrics",
    help="The run's metrics, comma-separated (default: the registered metrics in the table).",
)
@click.option(
    "--align",
    "align_mode",
    type=click.Choice(["auto", "time", "index", "content"]),
    help="The run's frame alignment (default: giflab.align.mode).",
)
@click.option("--profile", help="Verdict profile whose thresholds the histograms show.")
@click.option(
    "--pairs",
    "max_pairs",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="How many failed/worst pairs to show in detail.",
)
@click.option(
    "--frames",
    "k_frames",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Worst frames shown per detailed pair.",
)
def report_command(
    results_file: Path,
    out: Path,
    title: str | None,
    metrics: str | None,
    align_mode: str | None,
    profile: str | None,
    max_pairs: int,
    k_frames: int,
) -> None:
    """Write a self-contained HTML report of a batch results table.

    RESULTS is the table that giflab-dask batch --out wrote (.parquet, .csv, .tsv or .jsonl).
    Per-frame curves and frames come from the caches of the run (use the same --cache-dir,
    --metrics and --align); nothing is recomputed.
    """
    import sys

    from giflab_dask.align import AlignOptions

    try:
        path = write_report(
            results_file,
            out,
            title=title,
            metrics=metrics,
            align_options=AlignOptions.from_config(mode=align_mode),
            profile=profile,
            max_pairs=max_pairs,
            k_frames=k_frames,
        )
    except GiflabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ImportError as exc:
        click.echo(f"error: {exc} (pip install 'giflab-dask[plots]')", err=True)
        sys.exit(2)
    click.echo(f"report: {path} ({path.stat().st_size / 1024:.0f} KiB)")
