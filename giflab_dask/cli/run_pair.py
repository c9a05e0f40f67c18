"""``giflab-dask validate``: one pair, shown as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from giflab_dask.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    echo_err,
    format_table,
    format_value,
    input_errors,
    interruptible,
    silent,
    wrap,
)
from giflab_dask.cli.options import (
    align_option,
    metrics_option,
    output_options,
    sample_options,
    sample_spec,
    scheduler_options,
)

if TYPE_CHECKING:
    from giflab_dask.results import PairResult


@click.command()
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("compressed", type=click.Path(path_type=Path))
@metrics_option
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles; default: 'default').")
@align_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: for people (100 columns); json: the whole result; csv: one row per metric output.",
)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@sample_options
@scheduler_options
@output_options
def validate(
    original: Path,
    compressed: Path,
    metrics: str | None,
    profile: str | None,
    align_mode: str | None,
    output_format: str,
    as_json: bool,
    sample_n: int | None,
    strategy: str | None,
    scheduler: str | None,
    address: str | None,
    workers: int | None,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Validate one pair: per-metric summaries and a verdict (exit 0 pass/warn, 1 fail or a
    metric failed)."""
    from giflab_dask.align import AlignOptions
    from giflab_dask.cluster import scheduler_context
    from giflab_dask.pipeline import validate_pair_lazy

    with input_errors():
        lazy = validate_pair_lazy(
            original,
            compressed,
            metrics=metrics,
            profile=profile,
            align_options=AlignOptions.from_config(mode=align_mode),
            sample=sample_spec(sample_n, strategy),
        )
        echo = silent if quiet else echo_err
        with (
            scheduler_context(scheduler, workers, address, echo=echo) as session,
            interruptible(lazy.plan),
        ):
            result = lazy.compute(progress=not (no_progress or quiet), **session.compute_kwargs)
    output_format = "json" if as_json else output_format
    if output_format == "json":
        # strict JSON: a missing (NaN) or unbounded value is null (its reason is in "missing")
        click.echo(json.dumps(_finite_or_null(result.to_dict()), indent=2, allow_nan=False))
    elif output_format == "csv":
        click.echo(_summary_csv(result, metrics), nl=False)
    else:
        click.echo(_summary_table(result, metrics))
    sys.exit(EXIT_FAILED if result.status == "fail" else EXIT_OK)


#: The statistics of each metric output in ``validate --format csv``.
CSV_STATS = ("mean", "std", "min", "p5", "p50", "p95", "max")


def _outputs(result: PairResult, metrics: str | None) -> Iterator[tuple[str, str]]:
    """(metric name, output name) of every output of the run's metrics."""
    from giflab_dask.metrics import resolve_metrics

    for spec in resolve_metrics(metrics):
        for output in spec.outputs:
            yield spec.name, output


def _all_nan(result: PairResult, output: str) -> bool:
    value = result.summaries.get(f"{output}_mean")
    return value is None or not math.isfinite(value)


def _summary_table(result: PairResult, metrics: str | None) -> str:
    """The result for a terminal: a table within :data:`WIDTH` columns, the reasons of missing
    metrics as numbered notes below it (an all-NaN output shows no numbers, only its note)."""
    s, sample = result.summaries, result.sample
    ci = f"mean {sample['confidence']:.0%} CI" if sample else ""
    notes: dict[str, int] = {}  # reason -> note number
    rows = []
    for name, output in _outputs(result, metrics):
        row = {"metric": output, "mean": "-", "min": "-", "p5": "-", "max": "-", "note": ""}
        if ci:
            row[ci] = "-"
        reason = result.missing.get(name)
        if reason and _all_nan(result, output):
            row["note"] = f"[{notes.setdefault(f'{name}: {reason}', len(notes) + 1)}]"
        else:
            for stat in ("mean", "min", "p5", "max"):
                row[stat] = format_value(s.get(f"{output}_{stat}"))
            if ci:
                low, high = s.get(f"{output}_mean_ci_low"), s.get(f"{output}_mean_ci_high")
                row[ci] = f"[{format_value(low)}, {format_value(high)}]"
        rows.append(row)
    columns = ["metric", "mean", *([ci] if ci else []), "min", "p5", "max"]
    if notes:
        columns.append("note")
    lines = [format_table(rows, columns, right=set(columns[1:-1] if notes else columns[1:]))]
    lines += [wrap(f"[{n}] {reason}") for reason, n in notes.items()]
    a = result.alignment
    lines.append("")
    lines.append(
        wrap(
            f"frames: {int(s['original_frames'])} original, {int(s['compressed_frames'])} "
            f"compressed, aligned by {a['mode']}"
            + (f"; {'; '.join(a['notes'])}" if a["notes"] else "")
        )
    )
    if sample is not None:
        lines.append(wrap(_sample_note(sample)))
    lines.append(f"composite quality: {format_value(s.get('composite_quality'))}")
    lines.append(f"verdict: {result.status.upper()}")
    lines += [wrap(f"- {reason}", "  ") for reason in result.verdict.reasons]
    return "\n".join(lines)


def _summary_csv(result: PairResult, metrics: str | None) -> str:
    """One row per metric output: its statistics (empty when missing) and the reason."""
    s = result.summaries
    ci = ["mean_ci_low", "mean_ci_high"] if result.sample else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "output", *CSV_STATS, *ci, "missing"])
    for name, output in _outputs(result, metrics):
        values = [s.get(f"{output}_{stat}") for stat in (*CSV_STATS, *ci)]
        cells = ["" if v is None or not math.isfinite(v) else repr(float(v)) for v in values]
        writer.writerow([name, output, *cells, result.missing.get(name, "")])
    return buffer.getvalue()


def _sample_note(sample: dict[str, Any]) -> str:
    return (
        f"sampled: {sample['frames']} of {sample['population']} aligned frames "
        f"({sample['strategy']}, N={sample['n']}); means with {sample['confidence']:.0%} "
        "intervals; min/max/percentiles are of the sample (no interval); the verdict uses "
        "the point estimates"
    )


def _finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value
