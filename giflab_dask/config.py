"""giflab-dask's ``dask.config`` namespace: shipped YAML defaults, read at call time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

import dask.config
import yaml
from dask.utils import parse_bytes as _parse_bytes

from giflab_dask.errors import ConfigError

_DEFAULTS_FILE = Path(__file__).with_name("giflab.yaml")

with _DEFAULTS_FILE.open(encoding="utf-8") as _f:
    DEFAULTS: dict[str, Any] = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)


def shipped(key: str) -> Any:
    """The default of ``giflab.<key>`` in ``giflab.yaml`` (a copy); KeyError for an unknown key.

    The one source of every default: code that needs one reads it here rather than repeating it.
    """
    return copy.deepcopy(dask.config.get(key, config=DEFAULTS["giflab"]))


def shipped_field(key: str, cast: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field defaulting to ``giflab.<key>``'s shipped default (``cast`` applied)."""
    convert = cast if cast is not None else (lambda value: value)
    return field(default_factory=lambda: convert(shipped(key)))


def get(key: str) -> Any:
    """Read ``giflab.<key>`` from dask.config now (never cached, so ``dask.config.set`` applies).

    A key missing from the live configuration (a whole section replaced by ``dask.config.set``)
    falls back to its shipped default; an unknown key raises KeyError.
    """
    try:
        return dask.config.get(f"giflab.{key}")
    except KeyError:
        return shipped(key)


def parse_bytes(value: Any, *, key: str) -> int | None:
    """A byte count: int, float or a string like ``"20 GB"``; ``None`` means unbounded."""
    if value is None:
        return None
    try:
        return int(_parse_bytes(value)) if isinstance(value, str) else int(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"giflab.{key} must be a byte count such as 20000000000 or '20 GB', got {value!r}"
        ) from exc


def choice(key: str, allowed: tuple[str, ...]) -> str:
    """Read a string setting that must be one of ``allowed``.

    A setting whose choices include ``"none"`` also accepts None: dask's environment parsing
    turns ``DASK_GIFLAB__...=none`` into None, as YAML does with ``null``.
    """
    raw = get(key)
    value = "none" if raw is None and "none" in allowed else str(raw)
    if value not in allowed:
        raise ConfigError(f"giflab.{key} must be one of {', '.join(allowed)}; got {value!r}")
    return value
