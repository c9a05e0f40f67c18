"""The ``giflab-dask`` command line: a thin layer over the library.

Heavy modules (dask.array, zarr, Pillow) are imported inside the commands so ``--help`` is fast.
Exit codes: 0 ok, 1 some validation failed, 2 usage or input error (one line on stderr:
``error: <what>: <problem> (<what to do>)``), 130 interrupted (Ctrl-C).

This module holds the group, its error handling and ``--cache-dir``; each command lives in a
module of its own (``run_pair``: validate, ``run_batch``: batch, ``caches``: cache, ``tools``:
decode, demo-data and config show), and ``common`` and ``options`` hold what they share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from giflab_dask.cli.caches import cache
from giflab_dask.cli.common import (
    EXIT_FAILED,
    EXIT_INPUT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    WIDTH,
)
from giflab_dask.cli.run_batch import batch
from giflab_dask.cli.run_pair import validate
from giflab_dask.cli.tools import config_group, decode, demo_data
from giflab_dask.report import report_command  # imports only click: --help stays fast

__all__ = [
    "EXIT_FAILED",
    "EXIT_INPUT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "WIDTH",
    "cli",
    "main",
]


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

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **kwargs: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **kwargs)
        try:
            code = super().main(args, prog_name, complete_var, False, **kwargs)
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
    from giflab_dask.roots import as_root

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


cli.add_command(decode)
cli.add_command(validate)
cli.add_command(batch)
cli.add_command(demo_data)
cli.add_command(cache)
cli.add_command(config_group)
cli.add_command(report_command)

main: Callable[..., Any] = cli
