"""The ``giflab-dask`` command line: a thin layer over the library.

Heavy modules (dask.array, zarr, Pillow) are imported inside the commands so ``--help`` is fast.
Exit codes: 0 ok, 1 some validation failed, 2 usage or input error.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT_ERROR = 2


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


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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

        dask.config.set({"giflab.cache-dir": str(cache_dir)})


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
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


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
@click.option("--metrics", help="Comma-separated metric names (default: GifLab's frame-level set).")
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles; default: 'default').")
@click.option(
    "--align",
    "align_mode",
    type=click.Choice(["auto", "time", "index", "content"]),
    help="Frame alignment (default: giflab.align.mode).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_sample_options
@_scheduler_options
def validate(
    original: Path,
    compressed: Path,
    metrics: str | None,
    profile: str | None,
    align_mode: str | None,
    as_json: bool,
    sample_n: int | None,
    strategy: str | None,
    scheduler: str | None,
    address: str | None,
    workers: int | None,
) -> None:
    """Validate one pair: per-metric summaries and a verdict (exit 0 pass/warn, 1 fail or a
    metric failed)."""
    from giflab_dask.align import AlignOptions
    from giflab_dask.cluster import scheduler_context
    from giflab_dask.pipeline import validate_pair

    with (
        _input_errors(),
        scheduler_context(scheduler, workers, address, echo=_echo_err) as session,
    ):
        result = validate_pair(
            original,
            compressed,
            metrics=metrics,
            profile=profile,
            align_options=AlignOptions.from_config(mode=align_mode),
            sample=_sample_spec(sample_n, strategy),
            **session.compute_kwargs,
        )
    if as_json:
        # strict JSON: a missing (NaN) or unbounded value is null (its reason is in "missing")
        click.echo(json.dumps(_finite_or_null(result.to_dict()), indent=2, allow_nan=False))
    else:
        from giflab_dask.metrics import resolve_metrics

        rows = []
        sampled = result.sample is not None
        ci = f"mean {result.sample['confidence']:.0%} CI" if result.sample else ""
        for spec in resolve_metrics(metrics):
            for output in spec.outputs:
                s = result.summaries
                row = {
                    "metric": output,
                    "mean": _fmt(s.get(f"{output}_mean")),
                    "min": _fmt(s.get(f"{output}_min")),
                    "p5": _fmt(s.get(f"{output}_p5")),
                    "max": _fmt(s.get(f"{output}_max")),
                    "note": result.missing.get(spec.name, ""),
                }
                if sampled:
                    low, high = s.get(f"{output}_mean_ci_low"), s.get(f"{output}_mean_ci_high")
                    row[ci] = f"[{_fmt(low)}, {_fmt(high)}]"
                rows.append(row)
        columns = ["metric", "mean", *([ci] if sampled else []), "min", "p5", "max", "note"]
        click.echo(_table(rows, columns))
        a = result.alignment
        click.echo(
            f"\nframes: {int(result.summaries['original_frames'])} original, "
            f"{int(result.summaries['compressed_frames'])} compressed, aligned by {a['mode']}"
            + (f"; {'; '.join(a['notes'])}" if a["notes"] else "")
        )
        if result.sample is not None:
            click.echo(_sample_note(result.sample))
        click.echo(f"composite quality: {_fmt(result.summaries.get('composite_quality'))}")
        click.echo(f"verdict: {result.status.upper()}")
        for reason in result.verdict.reasons:
            click.echo(f"  - {reason}")
    sys.exit(EXIT_FAILED if result.status == "fail" else EXIT_OK)


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
@click.option("--metrics", help="Comma-separated metric names (default: GifLab's frame-level set).")
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles).")
@click.option(
    "--align",
    "align_mode",
    type=click.Choice(["auto", "time", "index", "content"]),
    help="Frame alignment (default: giflab.align.mode).",
)
@_sample_options
@_scheduler_options
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
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
    no_cache: bool,
    refresh: bool,
) -> None:
    """Validate a batch of pairs from a manifest (CSV/TSV/JSONL) or directories.

    SOURCE is a manifest with original,compressed columns; a directory holding originals/
    and variants/*/ (as demo-data writes); or a directory of originals with --variants.
    Exit code 0 when every pair passes (or warns), 1 when any fails or errors, 2 on bad usage.
    """
    from giflab_dask.align import AlignOptions
    from giflab_dask.cluster import format_summary, run_summary, scheduler_context
    from giflab_dask.inputs import collect_pairs
    from giflab_dask.pipeline import plan_batch
    from giflab_dask.results import batch_table, write_table

    with _input_errors():
        pairs = collect_pairs(source, variants)
        if not pairs:
            raise click.UsageError(f"{source}: no GIF pairs found")
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
            with scheduler_context(scheduler, workers, address, echo=_echo_err) as session:
                result = plan.compute(progress=not no_progress, **session.compute_kwargs)
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
    click.echo(format_summary(run_summary(result)))
    sampled = [o.result.sample for o in result.outcomes if o.result and o.result.sample]
    if sampled:
        click.echo(
            f"sampled: {sum(s['frames'] for s in sampled)} of "
            f"{sum(s['population'] for s in sampled)} aligned frames measured "
            f"({sampled[0]['strategy']}, N={sampled[0]['n']}); means have "
            f"{sampled[0]['confidence']:.0%} intervals (<metric>_mean_ci_low/_high); "
            "verdicts use the point estimates"
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
            click.echo(f"  row {row['row']}: {row['error']}")
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
@click.option("--originals", "n_originals", default=3, show_default=True, help="How many GIFs.")
@click.option("--frames", "n_frames", default=24, show_default=True, help="Frames per GIF.")
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
        f"keeps them while their writer runs), {info['result_temporaries']} result documents "
        f"({info['result_temporaries_recent']} younger than {minutes:.0f} minutes: prune keeps "
        "those, they may be writes in progress)"
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
    """Show configuration (dask.config namespace ``giflab``)."""


@config_group.command("show")
def config_show() -> None:
    """Print the effective ``giflab`` configuration as YAML."""
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

if __name__ == "__main__":
    main()


def _finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value
