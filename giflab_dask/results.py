"""Results: the object of one validated pair, and the tidy table of a batch."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.errors import GiflabError
from giflab_dask.verdicts import Verdict

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASE_COLUMNS",
    "PairResult",
    "batch_table",
    "load_per_frame",
    "load_results",
    "write_table",
]


@dataclass(slots=True)
class PairResult:
    """Everything computed for one (original, compressed) pair.

    ``summaries`` maps ``<output>_<stat>`` (e.g. ``ssim_mean``, ``psnr_p5``) and the pair-level
    values (``composite_quality``, ``psnr_of_mean_mse``, ``timing_drift``,
    ``frame_count_change``) to floats; ``per_frame`` maps each metric output to its per-frame
    vector (one value per original frame, NaN where a frame could not be measured);
    ``mapping[i]`` is the compressed frame shown with original frame ``i``; ``missing`` names
    each metric that could not be computed and why.

    ``sample`` is None for a full-frame result. For a sampled one (docs/design.md, 31) it holds
    the strategy, the requested size ``n``, ``frames`` measured, the ``population`` of aligned
    frames, the ``confidence`` of the intervals and each metric's measured ``positions``;
    ``summaries`` then hold ``<output>_mean_ci_low/_high`` and ``sampled_frames``, and the
    per-frame vectors are NaN at the frames not measured.
    """

    original: str
    compressed: str
    original_key: str
    compressed_key: str
    summaries: dict[str, float]
    per_frame: dict[str, np.ndarray]
    mapping: np.ndarray
    alignment: dict[str, Any]
    verdict: Verdict
    missing: dict[str, str] = field(default_factory=dict)
    sample: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.verdict.status

    def per_frame_frame(self) -> pd.DataFrame:
        """Per-frame vectors as a pandas DataFrame (index: original frame; ``compressed_frame``)."""
        import pandas as pd  # a core dependency

        data = {"compressed_frame": self.mapping, **self.per_frame}
        frame = pd.DataFrame(data)
        frame.index.name = "original_frame"
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-frame vectors)."""

        def clean(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return {
            "original": self.original,
            "compressed": self.compressed,
            "original_key": self.original_key,
            "compressed_key": self.compressed_key,
            "verdict": self.verdict.to_dict(),
            "summaries": {k: clean(v) for k, v in self.summaries.items()},
            "missing": self.missing,
            "alignment": self.alignment,
            "sample": self.sample,
        }

    def _repr_html_(self) -> str:
        """Jupyter's view: verdict badge, key metrics, reasons, a per-frame sparkline (SVG)."""
        import html

        colours = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}
        status = str(self.status)
        s = self.summaries

        def short(path: str) -> str:
            p = Path(path)
            return f"{p.parent.name}/{p.name}" if p.parent.name else p.name

        keys = ["composite_quality", "ssim_mean", "ssim_min", "psnr_mean", "deltae_p95",
                "timing_drift"]  # fmt: skip
        cells = "".join(
            f'<tr><td style="padding:0 10px 0 0;color:#555">{k}</td>'
            f'<td style="text-align:right;font-variant-numeric:tabular-nums">{_fmt(s[k])}</td></tr>'
            for k in keys
            if k in s
        )
        frames = f"{_fmt(s.get('original_frames'))} → {_fmt(s.get('compressed_frames'))}"
        cells += (
            f'<tr><td style="padding:0 10px 0 0;color:#555">frames</td>'
            f'<td style="text-align:right">{frames}</td></tr>'
        )

        try:
            vectors = dict(self.per_frame.items())
        except Exception:  # the result store may be gone; the summary still shows
            vectors = {}
        spark = _sparkline(vectors)
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in self.verdict.reasons)
        missing = "".join(
            f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in self.missing.items()
        )
        return (
            '<div class="giflab-pair-result" style="font:13px/1.4 system-ui,sans-serif;'
            'border:1px solid #ddd;border-radius:6px;padding:8px 12px;display:inline-block">'
            f'<div><span style="background:{colours.get(status, "#555")};color:#fff;'
            f'border-radius:9px;padding:1px 8px;font-weight:600">{html.escape(status)}</span> '
            f"<b>{html.escape(short(self.original))}</b> → "
            f"<b>{html.escape(short(self.compressed))}</b> "
            f'<span style="color:#777">({html.escape(self.verdict.profile)} profile)</span></div>'
            f'<table style="margin-top:6px;border-collapse:collapse">{cells}</table>'
            f"{spark}"
            + (f'<ul style="margin:6px 0 0;padding-left:18px">{reasons}</ul>' if reasons else "")
            + (
                f'<div style="margin-top:4px;color:#8a4b00">missing:</div>'
                f'<ul style="margin:0;padding-left:18px">{missing}</ul>'
                if missing
                else ""
            )
            + "</div>"
        )


def _fmt(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "missing" if math.isnan(v) else f"{v:.4g}"


def _sparkline(vectors: Mapping[str, np.ndarray]) -> str:
    """An SVG line of per-frame SSIM (or the first metric), the worst frame of a bin kept;
    empty without a finite value."""
    import html

    name = "ssim" if "ssim" in vectors else next(iter(vectors), None)
    if name is None:
        return ""
    values = np.asarray(vectors[name], dtype=np.float64)
    width, height, pad = 260, 44, 3
    if values.size > width:
        edges = np.linspace(0, values.size, width + 1).astype(int)
        reduce = np.fmin.reduceat if name == "ssim" else np.add.reduceat
        values = reduce(values, edges[:-1]) / (1 if name == "ssim" else np.diff(edges))
    finite = values[np.isfinite(values)]
    if not finite.size:
        return ""
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or 1.0
    xs = np.linspace(pad, width - pad, max(values.size, 2))
    ys = height - pad - (values - lo) / span * (height - 2 * pad)
    segments, current = [], []
    for x, y in zip(xs, ys, strict=False):
        if np.isfinite(y):
            current.append(f"{x:.1f},{y:.1f}")
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    lines = "".join(
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.3" points="{" ".join(seg)}"/>'
        for seg in segments
    )
    return (
        f'<div style="margin-top:6px;color:#555;font-size:11px">{html.escape(name)} '
        f"per frame ({_fmt(lo)} – {_fmt(hi)})</div>"
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{html.escape(name)} per frame" '
        f'style="background:#f7f9fc;border-radius:3px">{lines}</svg>'
    )


# -- the batch table --------------------------------------------------------------------------

#: Columns every batch table starts with (then extra input columns, then metric summaries).
BASE_COLUMNS = (
    "row", "original", "compressed", "original_key", "compressed_key",
    "original_frames", "compressed_frames", "original_size", "compressed_size",
    "original_bytes", "compressed_bytes", "compression_ratio", "alignment",
    "composite_quality", "psnr_of_mean_mse", "timing_drift", "frame_count_change",
    "verdict", "failed_checks", "missing_metrics", "error",
)  # fmt: skip


_INTEGER_COLUMNS = (
    "row", "original_frames", "compressed_frames", "original_bytes", "compressed_bytes",
    "sample_n",
)  # fmt: skip


def _file_size(path: str) -> float:
    try:
        return float(Path(path).stat().st_size)
    except OSError:
        return math.nan


def batch_rows(outcomes: list[Any]) -> list[dict[str, Any]]:
    """One tidy row per pair (see :data:`BASE_COLUMNS`), in input order."""
    rows = []
    for outcome in outcomes:
        pair = outcome.input
        o_bytes, c_bytes = _file_size(pair.original), _file_size(pair.compressed)
        row: dict[str, Any] = {
            "row": pair.row,
            "original": pair.original,
            "compressed": pair.compressed,
            **pair.extra,
            "original_key": outcome.original_key,
            "compressed_key": outcome.compressed_key,
            "original_bytes": o_bytes,
            "compressed_bytes": c_bytes,
            "compression_ratio": o_bytes / c_bytes if c_bytes else math.nan,
            "error": outcome.error,
        }
        result = outcome.result
        if result is None:
            row["verdict"] = "error"
        else:
            s = result.summaries
            a = result.alignment
            row.update(
                {
                    "original_frames": int(s["original_frames"]),
                    "compressed_frames": int(s["compressed_frames"]),
                    "original_size": "{1}x{0}".format(*a["original_size"]),
                    "compressed_size": "{1}x{0}".format(*a["compressed_size"]),
                    "alignment": a["mode"],
                    "verdict": result.status,
                    "failed_checks": "; ".join(result.verdict.reasons),
                    "missing_metrics": json.dumps(result.missing) if result.missing else "",
                }
            )
            if result.sample is not None:  # an estimate must never pass for a full-frame value
                row["sample_strategy"] = result.sample["strategy"]
                row["sample_n"] = result.sample["n"]
            row.update({k: v for k, v in s.items() if k not in row})
        rows.append(row)
    return rows


def batch_table(outcomes: list[Any]) -> pd.DataFrame:
    """The batch as a pandas DataFrame with :data:`BASE_COLUMNS` first."""
    import pandas as pd

    frame = pd.DataFrame(batch_rows(outcomes))
    # counts stay integers when an error row leaves them empty (not 12.0 in a CSV)
    for column in _INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("Int64")
    first = [c for c in BASE_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in BASE_COLUMNS]
    return frame[first + extra]


#: File extensions :func:`write_table` writes.
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson", ".json")


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`GiflabError` now if :func:`write_table` could not write ``path`` (before a
    batch spends its time): the extension, the folder (created if missing) and a write probe."""
    import tempfile

    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise GiflabError(
            f"{path}: unknown table format {path.suffix!r} (end the name in .parquet, .csv, "
            ".tsv or .jsonl)"
        )
    if path.is_dir():
        raise GiflabError(
            f"{path}: is a folder (give a file name such as {path / 'results.parquet'})"
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except FileExistsError:
        raise GiflabError(
            f"{path}: {folder} is a file, not a folder (choose another output path)"
        ) from None
    except OSError as exc:
        raise GiflabError(
            f"{path}: cannot write in {folder} ({exc.strerror or exc}) "
            "(choose a folder you can write)"
        ) from None
    return path


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write atomically as Parquet, CSV or JSON lines, chosen by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".csv", ".tsv"):
            text = _defuse_formulas(frame)
            # CRLF rows (RFC 4180) make the writer quote a value holding a lone CR as well.
            sep = "\t" if suffix == ".tsv" else ","
            text.to_csv(tmp, index=False, sep=sep, lineterminator="\r\n")
        elif suffix in (".jsonl", ".ndjson", ".json"):
            frame.to_json(tmp, orient="records", lines=True)
        else:
            raise GiflabError(f"{path}: output must end in .parquet, .csv, .tsv or .jsonl")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: Starts of a cell a spreadsheet may run as a formula (OWASP's CSV injection list), and the
#: single quote that escapes them (escaped too, so reading back is exact).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _defuse(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for CSV/TSV whose text cells (and headers) that a spreadsheet would read as a
    formula start with a single quote, as OWASP advises; numbers, and text that is a number
    (``-3``), stay as they are."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    text = [c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])]
    out = frame.copy()
    for column in text:
        out[column] = frame[column].map(_defuse)
    return out.rename(columns=_defuse)


def _restore(value: Any) -> Any:
    if isinstance(value, str) and value[:1] == "'" and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


def _restore_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """The table :func:`_defuse_formulas` escaped, as it was."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    for column in [
        c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])
    ]:
        frame[column] = frame[column].map(_restore)
    return frame.rename(columns=_restore)


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a batch table written by ``giflab-dask batch`` (Parquet, CSV or JSON lines)."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".tsv"):
        return _restore_formulas(pd.read_csv(path, sep="\t" if suffix == ".tsv" else ","))
    if suffix in (".jsonl", ".ndjson", ".json"):
        return pd.read_json(path, orient="records", lines=True)
    raise GiflabError(f"{path}: cannot tell the format (use .parquet, .csv, .tsv or .jsonl)")


def load_per_frame(
    row: Mapping[str, Any],
    *,
    metrics: Any = None,
    align_options: Any = None,
    results: Any = None,
    sample: Any = None,
) -> pd.DataFrame:
    """Per-frame vectors of one batch row (a dict or a DataFrame row) from the result store.

    ``metrics``, ``align_options`` and ``sample`` must be those of the run (defaults: the
    defaults; a sampled row's ``sample_strategy``/``sample_n`` columns give its sample, with
    ``giflab.sampling`` options). Sampled vectors are NaN at the frames not measured.
    Nothing is recomputed: a vector missing from the store is simply absent.
    """
    import pandas as pd

    from giflab_dask.align import AlignOptions
    from giflab_dask.metrics import resolve_metrics
    from giflab_dask.resultstore import alignment_node_key, metric_node_key, open_result_store
    from giflab_dask.sampling import SampleSpec, expand

    if sample is None and isinstance(row.get("sample_strategy"), str):
        sample = SampleSpec.from_config(int(row["sample_n"]), row["sample_strategy"])

    results = results or open_result_store()
    options = align_options or AlignOptions.from_config()
    o_key, c_key = row["original_key"], row["compressed_key"]
    columns: dict[str, np.ndarray] = {}
    alignment = results.get(alignment_node_key(o_key, c_key, options), "alignment")
    if alignment is not None:
        columns["compressed_frame"] = np.asarray(alignment["mapping"])
    for spec in resolve_metrics(metrics):
        data = results.get(metric_node_key(o_key, c_key, options, spec, sample), "metric")
        for name, output in (data or {}).get("outputs", {}).items():
            values = np.asarray(output["per_frame"], dtype=np.float64)
            if "sample" in (data or {}):
                design = data["sample"]["design"]  # type: ignore[index]
                values = expand(values, design["positions"], design["population"])
            columns[name] = values
    frame = pd.DataFrame(columns)
    frame.index.name = "original_frame"
    return frame
