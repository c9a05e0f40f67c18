"""``giflab-dask cache``: inspect and trim the frame store and the result store."""

from __future__ import annotations

import json
from typing import Any

import click

from giflab_dask.cli.common import input_errors


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@click.group()
def cache() -> None:
    """Inspect and trim the caches."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_info(as_json: bool) -> None:
    """Entries, bytes and hits of the frame store and the result store."""
    import time

    from giflab_dask.framestore import open_frame_store
    from giflab_dask.framestore.local import configured_max_bytes
    from giflab_dask.resultstore import PRUNE_TEMPORARIES_AFTER_S, open_result_store

    with input_errors():
        store = open_frame_store()
        entries = store.entries()
        results = open_result_store()
        now = time.time()
        result_tmp = results.temporaries()
        info: dict[str, Any] = {
            "framestore": str(store.root),
            "entries": len(entries),
            "bytes": sum(e.nbytes for e in entries),
            "hits": sum(e.hits for e in entries),
            "max_bytes": configured_max_bytes(),
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
    from giflab_dask.framestore import open_frame_store
    from giflab_dask.resultstore import open_result_store

    with input_errors():
        store = open_frame_store()
        evicted = store.prune(max_bytes)
        results = open_result_store()
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
    from giflab_dask.framestore import open_frame_store
    from giflab_dask.resultstore import open_result_store

    with input_errors():
        removed = open_frame_store().clear()
        nodes = open_result_store().clear()
    click.echo(f"removed {removed} entries and {nodes} stored results")
