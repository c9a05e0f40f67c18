"""The small commands: ``decode``, ``demo-data`` and ``config show``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from giflab_dask.cli.common import format_table, input_errors


@click.command()
@click.argument("gifs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def decode(gifs: tuple[Path, ...], as_json: bool) -> None:
    """Decode GIFs into the frame store and show what was stored."""
    from giflab_dask.framestore import open_frame_store

    store = open_frame_store()
    rows = []
    with input_errors():
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
        click.echo(format_table(rows, list(rows[0])))
        click.echo(f"\nframe store: {store.root}")


@click.command("demo-data")
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


@click.group("config")
def config_group() -> None:
    """Show configuration (dask.config namespace giflab)."""


@config_group.command("show")
def config_show() -> None:
    """Print the effective giflab configuration as YAML."""
    import dask.config
    import yaml

    from giflab_dask import roots

    effective = dask.config.get("giflab")
    click.echo(yaml.safe_dump({"giflab": effective}, sort_keys=False).rstrip())
    click.echo(f"# cache-dir resolves to {roots.cache_dir()}")
    click.echo(f"# frame store resolves to {roots.framestore_root()}")
