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
import io
import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from giflab_dask.errors import BatchInputError, GifDecodeError
from giflab_dask.keys import check_regular

__all__ = ["BatchInputError", "PairInput", "collect_pairs", "pairs_from_dirs", "read_manifest"]

_GIF_SUFFIXES = {".gif"}


@dataclass(frozen=True, slots=True)
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
    try:
        check_regular(path, st)  # a FIFO or device would hang the hashing; a huge file, slow it
    except GifDecodeError as exc:
        return f"{role} {exc}"
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
    """Pairs from a CSV/TSV (by extension; header row required) or JSON-lines manifest.

    A manifest that cannot be read exactly as written (an unterminated quote, a value with a
    line break or over csv's field limit, a NUL in a path, nested JSON) is refused whole with
    an error naming the row and column: guessing would silently merge or split rows.
    """
    path = Path(path)
    text = _manifest_text(path)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(path, text)
    else:
        rows = _csv_rows(path, text, "\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    if rows and not {"original", "compressed"} <= set(rows[0][1]):
        raise BatchInputError(
            f"{path}: a manifest needs 'original' and 'compressed' columns; found "
            f"{sorted(rows[0][1])}"
        )
    pairs = []
    for n, (where, row) in enumerate(rows, start=1):
        original, compressed = (
            (row.get("original") or "").strip(),
            (row.get("compressed") or "").strip(),
        )
        for column, value in (("original", original), ("compressed", compressed)):
            if "\0" in value:
                raise BatchInputError(
                    f"{path}: {where}, column {column!r}: the path holds a NUL character"
                )
        extra = {k: v for k, v in row.items() if k not in ("original", "compressed") and k}
        error = None if original and compressed else "row has an empty original or compressed path"
        paths = _under(path.parent, original), _under(path.parent, compressed)
        pairs.append(PairInput(n, *paths, extra, error))
    return _check_files(pairs)


def _manifest_text(path: Path) -> str:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise BatchInputError(f"{path}: a manifest must be a regular file")
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
    return text


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, dict[str, str]]]:
    """``(where, row)`` per JSON line. Lines end at ``\\n`` only: JSON strings may hold U+2028,
    which ``str.splitlines`` would split on."""
    rows = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchInputError(
                f"{path}: line {n}, column {exc.colno}: not JSON ({exc.msg})"
            ) from None
        except RecursionError:
            raise BatchInputError(f"{path}: line {n}: JSON nested too deeply") from None
        if not isinstance(value, dict):
            raise BatchInputError(f"{path}: line {n} is not a JSON object")
        for key, v in value.items():
            if isinstance(v, dict | list):
                raise BatchInputError(
                    f"{path}: line {n}, key {key!r}: a nested value; manifest values are "
                    "strings, numbers, booleans or null"
                )
        rows.append((f"line {n}", {str(k): "" if v is None else str(v) for k, v in value.items()}))
    return rows


def _csv_rows(path: Path, text: str, delimiter: str) -> list[tuple[str, dict[str, str]]]:
    """``(where, row)`` per CSV record, parsed strictly: a malformed quote, a value over csv's
    field limit or holding a line break (what an unterminated quote swallows), or more values
    than columns is an error naming the row, its lines and the column."""
    record_lines: list[str] = []

    def lines() -> Iterator[str]:
        # newline="": only \n, \r and \r\n end a line (not U+2028 or \x1c, as splitlines)
        for line in io.StringIO(text, newline=""):
            record_lines.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[tuple[str, dict[str, str]]] = []
    while True:
        record_lines.clear()
        first = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            column = _column_at(record_lines, delimiter, csv.field_size_limit())
            where = _where(len(rows) + 1 if header else 0, first, reader.line_num)
            if "field limit" in str(exc):
                problem = f"a value over {csv.field_size_limit()} characters (csv's field limit)"
            else:
                problem = f"malformed CSV ({exc}: an unterminated or stray quote?)"
            raise BatchInputError(
                f"{path}: {where}, column {_column_name(header, column)}: {problem}"
            ) from None
        if not record:
            continue  # a blank line
        where = _where(len(rows) + 1 if header else 0, first, reader.line_num)
        for column, value in enumerate(record):
            if "\n" in value or "\r" in value:
                raise BatchInputError(
                    f"{path}: {where}, column {_column_name(header, column)}: a quoted value "
                    "spans lines (an unterminated quote?); values cannot hold line breaks"
                )
        if header is None:
            header = record
            continue
        if any(v.strip() for v in record[len(header) :]):
            raise BatchInputError(
                f"{path}: {where}: {len(record)} values for {len(header)} columns "
                "(an unbalanced quote or a stray delimiter?)"
            )
        padded = (record + [""] * len(header))[: len(header)]
        rows.append((where, dict(zip(header, padded, strict=True))))
    return rows


def _where(row: int, first: int, last: int) -> str:
    lines = f"line {first}" if first >= last else f"lines {first}-{last}"
    return f"header ({lines})" if row == 0 else f"row {row} ({lines})"


def _column_name(header: list[str] | None, column: int) -> str:
    if header is not None and column < len(header):
        return f"{column + 1} ({header[column]!r})"
    return str(column + 1)


def _column_at(lines: list[str], delimiter: str, limit: int) -> int:
    """The 0-based column of a record's first value over ``limit`` characters, else the
    column where its text ends (where csv stopped)."""
    column, size, quoted = 0, 0, False
    for ch in "".join(lines):
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            column, size = column + 1, 0
        else:
            size += 1
            if size > limit:
                break
    return column


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


def _variant_dirs(
    source: Path, variants: Iterable[str | os.PathLike[str]]
) -> tuple[Path, list[Path]] | None:
    """(originals folder, compressed folders) of a directory source, or None (a manifest)."""
    folders = [Path(v) for v in variants]
    if folders and source.is_dir():
        return source, folders
    if (source / "originals").is_dir() and (source / "variants").is_dir():
        return source / "originals", sorted(
            p for p in (source / "variants").iterdir() if p.is_dir()
        )
    return None


def unmatched_originals(
    source: str | os.PathLike[str], variants: Iterable[str | os.PathLike[str]] = ()
) -> dict[str, list[str]]:
    """Originals a directory source has no compressed GIF for, per compressed folder
    (relative paths; empty for a manifest): pairs that :func:`collect_pairs` cannot form."""
    dirs = _variant_dirs(Path(source), variants)
    if dirs is None:
        return {}
    originals, folders = dirs
    known = _gifs_under(originals)
    out = {}
    for folder in folders:
        present = set(_gifs_under(folder)) if folder.is_dir() else set()
        missing = [str(rel) for rel in known if rel not in present]
        if missing:
            out[str(folder)] = missing
    return out


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
        raise BatchInputError(
            f"{source}: no such manifest or directory (give a manifest file or a folder of GIFs)"
        )
    dirs = _variant_dirs(source, variants)
    if dirs is not None:
        originals, folders = dirs
        if not folders:
            raise BatchInputError(
                f"{source / 'variants'}: no variant folders (put each compression variant's "
                "GIFs in variants/<name>/)"
            )
        if not _gifs_under(originals):
            raise BatchInputError(f"{originals}: no .gif files (put the original GIFs here)")
        for folder in folders if variants else ():  # folders named with --variants
            if folder.is_dir() and not _gifs_under(folder):
                raise BatchInputError(
                    f"{folder}: no .gif files (put the compressed GIFs here, at the same "
                    f"relative paths as in {originals})"
                )
        return pairs_from_dirs(originals, folders)
    raise BatchInputError(
        f"{source}: give a manifest file, a directory with originals/ and variants/*/, "
        "or a directory of originals with --variants DIR (one per compression variant)"
    )
