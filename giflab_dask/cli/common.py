"""What the commands share: exit codes, the package's errors as one line, Ctrl-C during a
compute, and the text layout of the output."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from giflab_dask.pipeline import BatchPlan

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

#: Width the terminal output is laid out for.
WIDTH = 100


@contextmanager
def input_errors() -> Iterator[None]:
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
def interruptible(plan: BatchPlan | None, earlier: tuple[int, int] = (0, 0)) -> Iterator[None]:
    """Ctrl-C during a compute: say what was kept (finished nodes are stored as they finish)
    and exit 130. ``earlier``: (stored, results) of the windows that ran before this one;
    ``plan`` is None while a window is planned (nothing of it computed yet)."""
    try:
        yield
    except KeyboardInterrupt:
        stored, total = earlier
        if plan is not None:
            stored, total = stored + _stored_of(plan), total + len(plan.writes)
        elif not total:
            raise  # nothing computed yet: the CLI's plain "interrupted"
        click.echo(
            f"\ninterrupted: {stored} of {total} results computed and stored; rerun to resume",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


class WindowsGuard:
    """:func:`interruptible` for a batch run in windows, around each window's planning and
    compute: its message counts the results of every window so far, not only the running
    one's."""

    def __init__(self) -> None:
        self.stored = self.total = 0

    @contextmanager
    def __call__(self, plan: BatchPlan | None) -> Iterator[None]:
        with interruptible(plan, (self.stored, self.total)):
            yield
        if plan is None:
            return
        # a window that finished stored every result it computed (its outcomes count them)
        self.stored += sum(o.computed for o in plan.outcomes)
        self.total += len(plan.writes)


def format_table(
    rows: list[dict[str, Any]], columns: list[str], right: Collection[str] = frozenset()
) -> str:
    """Rows as aligned columns (``right``: right-aligned, for numbers)."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}

    def cell(c: str, text: str) -> str:
        return text.rjust(widths[c]) if c in right else text.ljust(widths[c])

    lines = ["  ".join(cell(c, c) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(cell(c, str(r.get(c, ""))) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def format_value(value: float | None) -> str:
    """A number for a terminal: 4 decimals, fewer digits as it grows; NaN is ``missing``."""
    if value is None or value != value:  # NaN
        return "missing"
    if abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def silent(_message: str) -> None:
    pass


def wrap(text: str, indent: str = "") -> str:
    """``text`` folded to :data:`WIDTH` columns (paths are never broken)."""
    return textwrap.fill(
        text, WIDTH, subsequent_indent=indent + "  ", initial_indent=indent,
        break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip
