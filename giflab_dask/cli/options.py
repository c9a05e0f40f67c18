"""The options ``validate`` and ``batch`` share, and their checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


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


def metrics_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--metrics",
        callback=_metric_names,
        help="Comma-separated metric names (default: GifLab's frame-level set).",
    )(command)


def align_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--align",
        "align_mode",
        type=click.Choice(["auto", "time", "index", "content"]),
        help="Frame alignment (default: giflab.align.mode).",
    )(command)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
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


def scheduler_options(command: Callable[..., Any]) -> Callable[..., Any]:
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


def sample_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--sample N and --strategy (opt-in frame sampling, see ``giflab_dask.sampling``)."""
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


def sample_spec(sample_n: int | None, strategy: str | None) -> Any:
    from giflab_dask.sampling import SampleSpec

    spec = SampleSpec.from_config(sample_n, strategy)
    if spec is None and strategy is not None:
        raise click.UsageError("--strategy needs --sample N (how many frames to measure)")
    return spec
