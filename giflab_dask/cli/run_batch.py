"""``giflab-dask batch``: many pairs, their counts, worst pairs and errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from giflab_dask.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    WindowsGuard,
    echo_err,
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
    from giflab_dask.inputs import PairInput


@click.command()
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
@metrics_option
@click.option("--profile", help="Verdict profile (giflab.verdicts.profiles).")
@align_option
@sample_options
@scheduler_options
@output_options
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
    from giflab_dask.pipeline import plan_batch
    from giflab_dask.results import batch_table, check_output_path, write_table
    from giflab_dask.windows import window_size

    echo = silent if quiet else echo_err
    with input_errors():
        if out is not None:
            check_output_path(out)
        pairs = _collect(source, variants, echo)
        plan = functools.partial(
            plan_batch,
            metrics=metrics,
            profile=profile,
            align_options=AlignOptions.from_config(mode=align_mode),
            use_cache=not no_cache,
            refresh=refresh,
            sample=sample_spec(sample_n, strategy),
        )
        run = _Run(scheduler, workers, address, echo, not (no_progress or quiet))
        size = window_size()
        if size is not None and len(pairs) > size:
            result = run.windows(pairs, plan, size)
        elif address is not None:
            result = run.on_cluster(functools.partial(plan, pairs))
        else:
            result = run.compute(plan(pairs))
        table = batch_table(result.outcomes)
        table_error = None
        if out is not None:
            try:
                write_table(table, out)
            except OSError as exc:  # a full or read-only disk: the summary still prints
                table_error = f"error: the table could not be written to {out} ({exc.strerror})"
    counts = result.counts()
    _print_summary(result, echo)
    _print_worst(table)
    _print_errors(table)
    if table_error is not None:
        echo_err(table_error)
    elif out is not None:
        click.echo(f"\ntable: {out}")
    failed = counts["fail"] + counts["error"] + (table_error is not None)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _collect(
    source: Path, variants: tuple[Path, ...], echo: Callable[[str], None]
) -> list[PairInput]:
    """The pairs of SOURCE (see :func:`batch`), noting originals without a compressed GIF."""
    from giflab_dask.inputs import collect_pairs, unmatched_originals

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
    return pairs


@dataclass(frozen=True)
class _Run:
    """Where the batch runs: ``--scheduler``/``--workers``/``--address``."""

    scheduler: str | None
    workers: int | None
    address: str | None
    echo: Callable[[str], None]
    progress: bool

    def compute(self, plan: Any) -> Any:
        """Run a planned batch; on the chosen scheduler only when something is to compute
        (a hot run starts no scheduler and no cluster)."""
        if not plan.writes:
            return plan.compute()
        with self._session() as session:
            return self._run(plan, session)

    def on_cluster(self, make_plan: Callable[..., Any]) -> Any:
        """Connect to a running cluster first and plan there, so its workers hash and scan
        the GIFs planning has not seen (close to the data), then run the plan."""
        with self._session() as session:
            plan = make_plan(client=session.client)
            return self._run(plan, session) if plan.writes else plan.compute()

    def windows(self, pairs: list[PairInput], make_plan: Callable[..., Any], size: int) -> Any:
        """Plan and run a huge batch in windows of ``size`` pairs, on one session (opened
        first with ``--address``, so planning uses the cluster's workers)."""
        from giflab_dask.windows import run_windows

        return run_windows(
            pairs,
            lambda window, client: make_plan(window, client=client),
            self._session,
            size=size,
            eager=self.address is not None,
            progress=self.progress,
            guard=WindowsGuard(),
        )

    def _session(self) -> Any:
        from giflab_dask.cluster import scheduler_context

        return scheduler_context(self.scheduler, self.workers, self.address, echo=self.echo)

    def _run(self, plan: Any, session: Any) -> Any:
        with interruptible(plan):
            return plan.compute(progress=self.progress, **session.compute_kwargs)


def _print_summary(result: Any, echo: Callable[[str], None]) -> None:
    """The pair counts and cache use (stdout), the run summary (``echo``), and what sampling
    measured (stdout)."""
    from giflab_dask.diagnostics import format_summary, run_summary

    counts = result.counts()
    stats = result.stats
    click.echo(
        f"{stats['pairs']} pairs: {counts['pass']} pass, {counts['warn']} warn, "
        f"{counts['fail']} fail, {counts['error']} error  "
        f"({stats['seconds']:.1f} s; {stats['node_hits']} stored results reused, "
        f"{stats['node_misses']} computed, {stats['decode_tasks']} GIFs decoded)"
    )
    for line in format_summary(run_summary(result)).splitlines():
        echo(wrap(line))
    sampled = [o.result.sample for o in result.outcomes if o.result and o.result.sample]
    if sampled:
        click.echo(
            wrap(
                f"sampled: {sum(s['frames'] for s in sampled)} of "
                f"{sum(s['population'] for s in sampled)} aligned frames measured "
                f"({sampled[0]['strategy']}, N={sampled[0]['n']}); means have "
                f"{sampled[0]['confidence']:.0%} intervals (<metric>_mean_ci_low/_high); "
                "verdicts use the point estimates"
            )
        )


def _print_worst(table: Any) -> None:
    """The five valid pairs of lowest composite quality."""
    valid = table[table["verdict"] != "error"]
    if len(valid) and "composite_quality" in valid:
        worst = valid.sort_values("composite_quality").head(5)
        click.echo("\nworst pairs (composite quality):")
        for _, row in worst.iterrows():
            click.echo(
                f"  {format_value(row['composite_quality'])}  "
                f"{row['verdict']:<5} {row['compressed']}"
            )


def _print_errors(table: Any) -> None:
    """The error rows (stdout), then one line per cache root that could not be written."""
    errors = table[table["verdict"] == "error"]
    if len(errors):
        click.echo("\nerrors:")
        for _, row in errors.iterrows():
            click.echo(f"  row {row['row']}: {row['error']}")  # one line each: grep-able
    for line in _cache_write_errors(table):
        echo_err(line)


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
