"""The ``giflab-dask`` command line: a thin layer over the library.

Heavy modules (dask.array, zarr, Pillow) are imported inside the commands so ``--help`` is fast.
Exit codes: 0 ok, 1 some validation failed, 2 usage or input error (one line on stderr:
``error: <what>: <problem> (<what to do>)``), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from giflab_dask.pipeline import BatchPlan
    from giflab_dask.results import PairResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

#: Width the terminal output is laid out for.
WIDTH = 100


def _one_line(exc: click.ClickException) -> str:
    """A click error as ``error: <option>: <problem> (see <command> --help)``."""
    message = exc.format_message()
    if (
        isinstance(exc, click.BadParameter)
        and not isinstance(exc, click.MissingParameter)
        and exc.param is not None
    ):
        name = exc.param.get_error_hint(exc.ctx) if exc.ctx else exc.param.name
        message = f"{str(name).strip(chr(39))}: {exc.message}"
    message = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    message = message.rstrip(".")
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message += f" (see {exc.ctx.command_path} --help)"
    return f"error: {message}"


class _Cli(click.Group):
    """click's group with every error as one line on stderr (exit 2) and Ctrl-C as exit 130."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help
            click.echo(exc.ctx.get_help())
            sys.exit(EXIT_INPUT_ERROR)
        except click.ClickException as exc:
            click.echo(_one_line(exc), err=True)
            sys.exit(EXIT_INPUT_ERROR)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                click.echo("interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            click.echo("aborted", err=True)
            sys.exit(EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@contextmanager
def _input_errors() -> Iterator[None]:
    """Turn the package's errors into a one-line message and exit code 2 (no traceback); a
    metric that failed at run time is not an input error: exit code 1, as for a failed pair."""
    from giflab_dask.errors import GiflabError, MeasurementError

    try:
        yield
    except MeasurementError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except GiflabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT_ERROR)


def _stored_of(plan: BatchPlan) -> int:
    """How many of the plan's result nodes are in the result store now."""
    keys = [plan.outcomes[i].metric_keys.get(m) for i, m in plan.writes]
    return sum(1 for key in keys if key and plan.results.contains(key))


@contextmanager
def _interruptible(plan: BatchPlan) -> Iterator[None]:
    """Ctrl-C during a compute: say what was kept (finished nodes are stored as they finish)
    and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        stored = _stored_of(plan)
        click.echo(
            f"\ninterrupted: {stored} of {len(plan.writes)} results computed and stored; "
            "rerun to resume",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _table(rows: list[dict[str, Any]], columns: list[str], right: set[str] = frozenset()) -> str:
    """Rows as aligned columns (``right``: right-aligned, for numbers)."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}

    def cell(c: str, text: str) -> str:
        return text.rjust(widths[c]) if c in right else text.ljust(widths[c])

    lines = ["  ".join(cell(c, c) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(cell(c, str(r.get(c, ""))) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="giflab-dask")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=str),  # str: a URL such as s3://b/x stays whole
    envvar="GIFLAB_CACHE_DIR",
    help="Root of the caches: a directory or an fsspec URL such as s3://bucket/giflab "
    "(default: giflab.cache-dir, else the user cache directory).",
)
def cli(cache_dir: str | None) -> None:
    """Validate GIF compression at scale: decode once, measure per frame, judge per pair."""
    if cache_dir is not None:
        import dask.config

        _check_cache_dir(cache_dir)
        dask.config.set({"giflab.cache-dir": str(cache_dir)})


def _check_cache_dir(cache_dir: str) -> None:
    """A local cache root must be a folder we can create (URLs are checked on first use)."""
    from giflab_dask.storage import as_root

    root = as_root(cache_dir)
    if not isinstance(root, Path):
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = "is a file" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise click.ClickException(
            f"{root}: cannot be the cache folder: {problem} (give --cache-dir a folder you can "
            "write)"
        ) from None


@cli.command()
@click.argument("gifs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def decode(gifs: tuple[Path, ...], as_json: bool) -> None:
    """Decode GIFs into the frame store and show what was stored."""
    from giflab_dask.framestore import FrameStore

    store = FrameStore()
    rows = []
    with _input_errors():
        for gif in gifs:
            stored = store.ensure(gif)
            rows.append(
                {
                    "file": str(gif),
                    "key": stored.key,
                    "frames": stored.n_frames,
                    "size": f"{stored.width}x{stored.height}",
                    "chunks": f"{stored.chunk_frames} frames",
                    "alpha": "yes" if stored.has_alpha else "no",
                    "duration_ms": int(stored.durations_ms.sum()),
                    "loop": "none" if stored.loop is None else stored.loop,
                }
            )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    else:
        click.echo(_table(rows, list(rows[0])))
        click.echo(f"\nframe store: {store.root}")


def _fmt(value: float | None) -> str:
    if value is None or value != value:  # NaN
        return "missing"
    if abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _silent(_message: str) -> None:
    pass


def _wrap(text: str, indent: str = "") -> str:
    """``text`` folded to :data:`WIDTH` columns (paths are never broken)."""
    return textwrap.fill(
        text, WIDTH, subsequent_indent=indent + "  ", initial_indent=indent,
        break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip


def _metric_names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter(
            "no metric names (give names such as ssim,psnr, or leave --metrics out for the "
            "default set)"
        )
    return ",".join(names)


def _metrics_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--metrics",
        callback=_metric_names,
        help="Comma-separated metric names (default: GifLab's frame-level set).",
    )(command)


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--no-progress and --quiet (progress on stderr: redrawn on a terminal, a line every
    10 s in a log)."""
    command = click.option(
        "--quiet",
        "-q",
        is_flag=True,
        help="Nothing on stderr but errors: no progress, no run summary, no dashboard link.",
    )(command)
    return click.option(
        "--no-progress",
        is_flag=True,
        help="No progress on stderr (shown by default: stages and frames done, rate, ETA; "
        "redrawn on a terminal, one line every 10 s otherwise).",
    )(command)


def _scheduler_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--scheduler, --address and --workers (giflab_dask.cluster resolves them)."""
    command = click.option(
        "--workers",
        type=click.IntRange(min=1),
        help="Threads or processes of a local scheduler, or workers of a local-cluster.",
    )(command)
    command = click.option(
        "--address",
        metavar="tcp://HOST:PORT",
        help="Run on the running Dask cluster whose scheduler is at this address "
        "(default: $DASK_SCHEDULER_ADDRESS when set).",
    )(command)
    return click.option(
        "--scheduler",
        type=click.Choice(["threads", "processes", "sync", "local-cluster"]),
        help="Where to run: threads, processes, sync, or local-cluster (a dask.distributed "
        "LocalCluster on this machine, its dashboard link on stderr; needs the distributed "
        "extra). Default: giflab.scheduler (threads).",
    )(command)


def _sample_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--sample N and --strategy (opt-in frame sampling, DESIGN decision 31)."""
    command = click.option(
        "--strategy",
        type=click.Choice(["uniform", "keyframes", "adaptive"]),
        help="How --sample picks frames: uniform (one per stratum), keyframes (where the "
        "original changes most, plus uniform), adaptive (a uniform pilot, then where the "
        "metric varies most). Default: giflab.sampling.strategy (uniform).",
    )(command)
    return click.option(
        "--sample",
        "sample_n",
        type=click.IntRange(min=8),
        help="Measure N aligned frames per pair instead of all; means get confidence "
        "intervals (giflab.sampling.confidence), rows are marked sampled. Default: every frame.",
    )(command)


def _sample_spec(sample_n: int | None, strategy: str | None) -> Any:
    from giflab_dask.sampling import SampleSpec

    spec = SampleSpec.from_config(sample_n, strategy)
    if spec is None and strategy is not None:
        raise click.UsageError("--strategy needs --sample N (how many frames to measure)")
    return spec


@cli.command()
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("compressed", type=click.Path(path_type=Path))
@_metrics_option
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles; default: 'default').")
@click.option(
    "--align",
    "align_mode",
    type=click.Choice(["auto", "time", "index", "content"]),
    help="Frame alignment (default: giflab.align.mode).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: for people (100 columns); json: the whole result; csv: one row per metric output.",
)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@_sample_options
@_scheduler_options
@_output_options
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

    with _input_errors():
        lazy = validate_pair_lazy(
            original,
            compressed,
            metrics=metrics,
            profile=profile,
            align_options=AlignOptions.from_config(mode=align_mode),
            sample=_sample_spec(sample_n, strategy),
        )
        echo = _silent if quiet else _echo_err
        with (
            scheduler_context(scheduler, workers, address, echo=echo) as session,
            _interruptible(lazy.plan),
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
                row[stat] = _fmt(s.get(f"{output}_{stat}"))
            if ci:
                low, high = s.get(f"{output}_mean_ci_low"), s.get(f"{output}_mean_ci_high")
                row[ci] = f"[{_fmt(low)}, {_fmt(high)}]"
        rows.append(row)
    columns = ["metric", "mean", *([ci] if ci else []), "min", "p5", "max"]
    if notes:
        columns.append("note")
    lines = [_table(rows, columns, right=set(columns[1:-1] if notes else columns[1:]))]
    lines += [_wrap(f"[{n}] {reason}") for reason, n in notes.items()]
    a = result.alignment
    lines.append("")
    lines.append(
        _wrap(
            f"frames: {int(s['original_frames'])} original, {int(s['compressed_frames'])} "
            f"compressed, aligned by {a['mode']}"
            + (f"; {'; '.join(a['notes'])}" if a["notes"] else "")
        )
    )
    if sample is not None:
        lines.append(_wrap(_sample_note(sample)))
    lines.append(f"composite quality: {_fmt(s.get('composite_quality'))}")
    lines.append(f"verdict: {result.status.upper()}")
    lines += [_wrap(f"- {reason}", "  ") for reason in result.verdict.reasons]
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


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--variants",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory of compressed GIFs matched to SOURCE's originals by relative path "
    "(repeat for each compression variant).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the table here: .parquet, .csv, .tsv or .jsonl (by extension).",
)
@_metrics_option
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles).")
@click.option(
    "--align",
    "align_mode",
    type=click.Choice(["auto", "time", "index", "content"]),
    help="Frame alignment (default: giflab.align.mode).",
)
@_sample_options
@_scheduler_options
@_output_options
@click.option("--no-cache", is_flag=True, help="Neither read nor write stored results.")
@click.option("--refresh", is_flag=True, help="Recompute every node and overwrite stored ones.")
def batch(
    source: Path,
    variants: tuple[Path, ...],
    out: Path | None,
    metrics: str | None,
    profile: str | None,
    align_mode: str | None,
    sample_n: int | None,
    strategy: str | None,
    scheduler: str | None,
    address: str | None,
    workers: int | None,
    no_progress: bool,
    quiet: bool,
    no_cache: bool,
    refresh: bool,
) -> None:
    """Validate a batch of pairs from a manifest (CSV/TSV/JSONL) or directories.

    SOURCE is a manifest with original,compressed columns (relative paths are relative to the
    manifest's folder); a directory holding originals/ and variants/*/ (as demo-data writes);
    or a directory of originals with --variants. The pair counts and worst pairs go to stdout,
    progress and the run summary to stderr.
    Exit code 0 when every pair passes (or warns), 1 when any fails or errors, 2 on bad usage.
    """
    from giflab_dask.align import AlignOptions
    from giflab_dask.cluster import format_summary, run_summary, scheduler_context
    from giflab_dask.inputs import collect_pairs, unmatched_originals
    from giflab_dask.pipeline import plan_batch
    from giflab_dask.results import batch_table, check_output_path, write_table

    echo = _silent if quiet else _echo_err
    with _input_errors():
        if out is not None:
            check_output_path(out)
        pairs = collect_pairs(source, variants)
        if not pairs:
            raise click.ClickException(
                f"{source}: the manifest has no rows (add one original,compressed row per pair)"
                if source.is_file()
                else f"{source}: no GIF pairs found (put .gif files in the folders)"
            )
        for folder, missing in unmatched_originals(source, variants).items():
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            echo(f"note: {folder}: no compressed GIF for {len(missing)} original(s): {shown}")
        plan = plan_batch(
            pairs,
            metrics=metrics,
            profile=profile,
            align_options=AlignOptions.from_config(mode=align_mode),
            use_cache=not no_cache,
            refresh=refresh,
            sample=_sample_spec(sample_n, strategy),
        )
        if plan.writes:
            with (
                scheduler_context(scheduler, workers, address, echo=echo) as session,
                _interruptible(plan),
            ):
                progress = not (no_progress or quiet)
                result = plan.compute(progress=progress, **session.compute_kwargs)
        else:  # every result is stored: no scheduler (and no cluster) is needed
            result = plan.compute()
        table = batch_table(result.outcomes)
        table_error = None
        if out is not None:
            try:
                write_table(table, out)
            except OSError as exc:  # a full or read-only disk: the summary still prints
                table_error = f"error: the table could not be written to {out} ({exc.strerror})"
    counts = result.counts()
    stats = result.stats
    click.echo(
        f"{stats['pairs']} pairs: {counts['pass']} pass, {counts['warn']} warn, "
        f"{counts['fail']} fail, {counts['error']} error  "
        f"({stats['seconds']:.1f} s; {stats['node_hits']} stored results reused, "
        f"{stats['node_misses']} computed, {stats['decode_tasks']} GIFs decoded)"
    )
    for line in format_summary(run_summary(result)).splitlines():
        echo(_wrap(line))
    sampled = [o.result.sample for o in result.outcomes if o.result and o.result.sample]
    if sampled:
        click.echo(
            _wrap(
                f"sampled: {sum(s['frames'] for s in sampled)} of "
                f"{sum(s['population'] for s in sampled)} aligned frames measured "
                f"({sampled[0]['strategy']}, N={sampled[0]['n']}); means have "
                f"{sampled[0]['confidence']:.0%} intervals (<metric>_mean_ci_low/_high); "
                "verdicts use the point estimates"
            )
        )
    valid = table[table["verdict"] != "error"]
    if len(valid) and "composite_quality" in valid:
        worst = valid.sort_values("composite_quality").head(5)
        click.echo("\nworst pairs (composite quality):")
        for _, row in worst.iterrows():
            click.echo(
                f"  {_fmt(row['composite_quality'])}  {row['verdict']:<5} {row['compressed']}"
            )
    errors = table[table["verdict"] == "error"]
    if len(errors):
        click.echo("\nerrors:")
        for _, row in errors.iterrows():
            click.echo(f"  row {row['row']}: {row['error']}")  # one line each: grep-able
    for line in _cache_write_errors(table):
        _echo_err(line)
    if table_error is not None:
        _echo_err(table_error)
    elif out is not None:
        click.echo(f"\ntable: {out}")
    failed = counts["fail"] + counts["error"] + (table_error is not None)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _cache_write_errors(table: Any) -> list[str]:
    """One line per cache root that could not be written (:class:`CacheWriteError`), however
    many pairs and metrics it cost: the rows say which, this says why and where."""
    import re

    pattern = re.compile(r"((?:frame|result) store .+? cannot be written \([^)]*\))")
    texts = [
        str(v)
        for column in ("error", "missing_metrics")
        if column in table
        for v in table[column].dropna()
    ]
    lines = []
    for cause in dict.fromkeys(m.group(1) for text in texts for m in pattern.finditer(text)):
        hit = sum(cause in text for text in texts)
        lines.append(
            f"error: {cause}; {hit} table rows are incomplete because of it, "
            "and their results are computed again on the next run"
        )
    return lines


@cli.command("demo-data")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--originals",
    "n_originals",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many GIFs.",
)
@click.option(
    "--frames",
    "n_frames",
    type=click.IntRange(min=2),
    default=24,
    show_default=True,
    help="Frames per GIF (at least 2: a variant keeps every other frame).",
)
def demo_data(directory: Path, n_originals: int, n_frames: int) -> None:
    """Write demo GIFs (originals and compressed variants made with Pillow) into DIRECTORY."""
    from giflab_dask.demo import write_demo_data

    written = write_demo_data(directory, n_originals=n_originals, n_frames=n_frames)
    click.echo(f"wrote {len(written)} GIFs under {directory} (originals/ and variants/*/)")


@cli.group()
def cache() -> None:
    """Inspect and trim the caches."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_info(as_json: bool) -> None:
    """Entries, bytes and hits of the frame store and the result store."""
    import time

    from giflab_dask.framestore import FrameStore, _configured_max_bytes
    from giflab_dask.resultstore import PRUNE_TEMPORARIES_AFTER_S, ResultStore

    with _input_errors():
        store = FrameStore()
        entries = store.entries()
        results = ResultStore()
        now = time.time()
        result_tmp = results.temporaries()
        info = {
            "framestore": str(store.root),
            "entries": len(entries),
            "bytes": sum(e.nbytes for e in entries),
            "hits": sum(e.hits for e in entries),
            "max_bytes": _configured_max_bytes(),
            "results": str(results.root),
            "result_nodes": len(results.entries()),
            "result_bytes": results.nbytes(),
            "frame_temporaries": store.temporaries(),
            "result_temporaries": len(result_tmp),
            "result_temporaries_recent": sum(
                now - t < PRUNE_TEMPORARIES_AFTER_S for t in result_tmp
            ),
        }
    if as_json:
        click.echo(json.dumps(info))
        return
    limit = "unbounded" if info["max_bytes"] is None else _human_bytes(info["max_bytes"])
    click.echo(f"frame store  {info['framestore']}")
    click.echo(f"entries      {info['entries']}")
    click.echo(f"size         {_human_bytes(info['bytes'])} (limit {limit})")
    click.echo(f"hits         {info['hits']}")
    click.echo(f"result store {info['results']}")
    click.echo(f"nodes        {info['result_nodes']} ({_human_bytes(info['result_bytes'])})")
    minutes = PRUNE_TEMPORARIES_AFTER_S / 60
    click.echo(
        f"temporaries  {info['frame_temporaries']} frame store entries being written (prune "
        "keeps them while\n"
        f"             their writer runs), {info['result_temporaries']} result documents "
        f"({info['result_temporaries_recent']} younger than {minutes:.0f} minutes:\n"
        "             prune keeps those, they may be writes in progress)"
    )


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from dask.utils import parse_bytes

    try:
        return int(parse_bytes(value))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a size like 2GB or 500MiB") from exc


@cache.command("prune")
@click.option(
    "--max-bytes",
    callback=_parse_size,
    help="Evict least recently used entries down to this size "
    "(default: giflab.framestore.max-bytes).",
)
def cache_prune(max_bytes: int | None) -> None:
    """Evict least recently used entries and leftovers of interrupted writes."""
    from giflab_dask.framestore import FrameStore

    with _input_errors():
        from giflab_dask.resultstore import ResultStore

        store = FrameStore()
        evicted = store.prune(max_bytes)
        results = ResultStore()
        results.prune_temporaries()
        kept = len(results.temporaries()) + store.temporaries()
        click.echo(
            f"evicted {len(evicted)} entries; frame store now {_human_bytes(store.nbytes())}"
            + (f"; kept {kept} temporaries of writes that may be in progress" if kept else "")
        )


@cache.command("clear")
@click.confirmation_option(prompt="Remove every cached entry?")
def cache_clear() -> None:
    """Remove every entry of the caches."""
    from giflab_dask.framestore import FrameStore
    from giflab_dask.resultstore import ResultStore

    with _input_errors():
        removed = FrameStore().clear()
        nodes = ResultStore().clear()
    click.echo(f"removed {removed} entries and {nodes} stored results")


@cli.group("config")
def config_group() -> None:
    """Show configuration (dask.config namespace giflab)."""


@config_group.command("show")
def config_show() -> None:
    """Print the effective giflab configuration as YAML."""
    import dask.config
    import yaml

    from giflab_dask import config

    effective = dask.config.get("giflab")
    click.echo(yaml.safe_dump({"giflab": effective}, sort_keys=False).rstrip())
    click.echo(f"# cache-dir resolves to {config.cache_dir()}")
    click.echo(f"# frame store resolves to {config.framestore_root()}")


def _register_report() -> None:
    from giflab_dask.report import report_command  # click only: keeps --help fast

    cli.add_command(report_command)


_register_report()

main: Callable[..., Any] = cli


def _finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value


if __name__ == "__main__":  # python -m giflab_dask.cli (last: everything above is defined)
    main()
