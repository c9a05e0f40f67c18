"""Batch inputs: which pairs to validate, from a manifest or from directories.

* a manifest: CSV, TSV or JSON lines with ``original`` and ``compressed`` columns (paths relative
  to the manifest's folder or absolute); any other column is carried into the output;
* two directories: GIFs matched by relative path (``orig/a/x.gif`` with ``comp/a/x.gif``);
* one directory of originals plus one directory per compression variant (GifLab's usual layout:
  one original, many variants); the variant's folder name becomes the ``variant`` column. A
  directory holding ``originals/`` and ``variants/*/`` (what ``giflab-dask demo-data`` writes)
  is read that way without naming the variants.

Problems with a row (a missing file, a duplicate row, a compressed GIF with no original) become
that row's ``error``; they never stop the batch.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from giflab_dask.errors import GiflabError

__all__ = ["BatchInputError", "PairInput", "collect_pairs", "pairs_from_dirs", "read_manifest"]

_GIF_SUFFIXES = {".gif"}


class BatchInputError(GiflabError):
    """The batch description itself cannot be read (not a per-row problem)."""


@dataclass(frozen=True)
class PairInput:
    """One row of a batch: two paths, extra columns, and an input error if there is one."""

    row: int
    original: str
    compressed: str
    extra: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _file_problem(role: str, path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        kind = "dangling symlink" if path.is_symlink() else "file not found"
        return f"{role} {path}: {kind}"
    except OSError as exc:
        return f"{role} {path}: cannot read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return f"{role} {path}: is a directory, not a GIF file"
    return None


def _check_files(pairs: list[PairInput]) -> list[PairInput]:
    """Mark missing files and duplicate rows as errors (first occurrence wins)."""
    seen: dict[tuple[str, str], int] = {}
    checked = []
    for pair in pairs:
        error = pair.error
        if error is None:
            for role, path in (("original", pair.original), ("compressed", pair.compressed)):
                error = _file_problem(role, Path(path))
                if error:
                    break
        # absolute(), not resolve(): a symlink loop must not raise here
        ident = (str(Path(pair.original).absolute()), str(Path(pair.compressed).absolute()))
        if error is None and ident in seen:
            error = f"duplicate of row {seen[ident]}"
        seen.setdefault(ident, pair.row)
        checked.append(PairInput(pair.row, pair.original, pair.compressed, pair.extra, error))
    return checked


def read_manifest(path: str | os.PathLike[str]) -> list[PairInput]:
    """Pairs from a CSV/TSV (by extension; header row required) or JSON-lines manifest."""
    path = Path(path)
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BatchInputError(f"{path}: cannot read manifest ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        hint = ""
        if path.read_bytes()[:6] in (b"GIF87a", b"GIF89a"):
            hint = "; to compare two GIFs use: giflab-dask validate ORIGINAL COMPRESSED"
        raise BatchInputError(
            f"{path}: not a text manifest (CSV/TSV with an original,compressed header, or JSON "
            f"lines), nor a directory{hint}"
        ) from None
    rows: list[dict[str, str]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BatchInputError(f"{path}: line {n} is not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise BatchInputError(f"{path}: line {n} is not a JSON object")
            rows.append({str(k): "" if v is None else str(v) for k, v in value.items()})
    else:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        rows = [dict(r) for r in csv.DictReader(text.splitlines(), delimiter=delimiter)]
    if rows and not {"original", "compressed"} <= set(rows[0]):
        raise BatchInputError(
            f"{path}: a manifest needs 'original' and 'compressed' columns; found {sorted(rows[0])}"
        )
    pairs = []
    for n, row in enumerate(rows, start=1):
        original, compressed = (
            (row.get("original") or "").strip(),
            (row.get("compressed") or "").strip(),
        )
        extra = {k: v for k, v in row.items() if k not in ("original", "compressed") and k}
        error = None if original and compressed else "row has an empty original or compressed path"
        pairs.append(PairInput(n, _under(base, original), _under(base, compressed), extra, error))
    return _check_files(pairs)


def _under(base: Path, path: str) -> str:
    return str(path if not path or Path(path).is_absolute() else base / path)


def _gifs_under(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix.lower() in _GIF_SUFFIXES)


def pairs_from_dirs(
    originals: str | os.PathLike[str], compressed_dirs: Sequence[str | os.PathLike[str]]
) -> list[PairInput]:
    """Pairs matched by relative path; with several compressed dirs, a ``variant`` column."""
    originals = Path(originals)
    if not originals.is_dir():
        raise BatchInputError(f"{originals}: not a directory of original GIFs")
    known = set(_gifs_under(originals))
    pairs: list[PairInput] = []
    for folder in map(Path, compressed_dirs):
        if not folder.is_dir():
            raise BatchInputError(f"{folder}: not a directory of compressed GIFs")
        extra = {"variant": folder.name} if len(compressed_dirs) > 1 else {}
        for rel in _gifs_under(folder):
            error = None if rel in known else f"no original {originals / rel} for this GIF"
            pairs.append(
                PairInput(
                    len(pairs) + 1, str(originals / rel), str(folder / rel), dict(extra), error
                )
            )
    return _check_files(pairs)


def collect_pairs(
    source: str | os.PathLike[str], variants: Iterable[str | os.PathLike[str]] = ()
) -> list[PairInput]:
    """The pairs of a batch from a manifest file, or a directory (see the module docstring)."""
    source = Path(source)
    variants = list(variants)
    if source.is_file():
        if variants:
            raise BatchInputError("--variants goes with a directory of originals, not a manifest")
        return read_manifest(source)
    if not source.is_dir():
        raise BatchInputError(f"{source}: no such manifest or directory")
    if variants:
        return pairs_from_dirs(source, variants)
    if (source / "originals").is_dir() and (source / "variants").is_dir():
        variant_dirs = sorted(p for p in (source / "variants").iterdir() if p.is_dir())
        return pairs_from_dirs(source / "originals", variant_dirs)
    raise BatchInputError(
        f"{source}: give a manifest file, a directory with originals/ and variants/*/, "
        "or a directory of originals with --variants DIR (one per compression variant)"
    )
