"""Content keys: a GIF's identity is a hash of its bytes plus the decoder/layout version.

The bytes are hashed streaming (constant memory). A small SQLite stat index
``(path, size, mtime_ns, ctime_ns, inode) -> digest`` lets an unchanged file skip re-hashing.
It never returns a stale digest: any change of size, mtime, ctime or inode misses, and a file
modified within ``_RACY_SECONDS`` of being indexed is not trusted (the "racy git" rule: a second
write in the same timestamp tick would otherwise look unchanged).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from giflab_dask.errors import GifDecodeError

__all__ = [
    "DECODER_VERSION",
    "LAYOUT_VERSION",
    "GifSource",
    "check_regular",
    "content_digest",
    "content_digests",
    "gif_key",
    "gif_keys",
    "hash_files",
]

#: Bump when decoded pixels could change for the same bytes (compositing rules, colour handling).
DECODER_VERSION = 2  # 2: transparent first canvas, disposal 4 restores, as Chromium does
#: Bump when the frame store's on-disk layout changes.
LAYOUT_VERSION = 3  # 2: chunks are zstd (no content checksum) + crc32c; 3: "." chunk keys

_READ_SIZE = 1 << 20
_RACY_SECONDS = 2.0


def _file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_regular(path: Path, st: os.stat_result) -> None:
    """Refuse what is not a regular file, or is larger than ``giflab.limits.max-file-bytes``,
    before a byte is read: a FIFO or ``/dev/zero`` would block or never end, and a huge
    (even sparse) file would be hashed for minutes."""
    kind = _file_kind(st.st_mode)
    if kind is not None:
        raise GifDecodeError(path, f"is {kind}, not a regular GIF file")
    limit = max_file_bytes()
    if limit is not None and st.st_size > limit:
        from giflab_dask.decode import _limit_error

        raise _limit_error(path, "file size in bytes", st.st_size, "max-file-bytes", limit)


def max_file_bytes() -> int | None:
    """``giflab.limits.max-file-bytes`` (None: unbounded)."""
    from giflab_dask import config

    raw = config.get("limits.max-file-bytes")
    return config.parse_bytes(raw, key="limits.max-file-bytes")


def _hash_file(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=32)
    try:
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open; the checks
        # then run on what was opened.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as f:
            check_regular(path, os.fstat(fd))
            while block := f.read(_READ_SIZE):
                digest.update(block)
    except IsADirectoryError:
        raise GifDecodeError(path, "is a directory, not a GIF file") from None
    except FileNotFoundError:
        raise GifDecodeError(path, "file not found (check the path)") from None
    except PermissionError:
        raise GifDecodeError(path, "permission denied") from None
    except OSError as exc:
        raise GifDecodeError(path, f"cannot read file ({exc.strerror or exc})") from None
    return digest.hexdigest()


class _StatIndex:
    """``(path, stat) -> digest`` memo in one SQLite file (safe under concurrent processes)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        # A link (or anything but a file) planted under the index's name is refused, never
        # written through (SQLite's nofollow URI flag did not stop it here, SQLite 3.40).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(self.db_path).st_mode):
                raise sqlite3.OperationalError(f"{self.db_path} is not a regular file")
        conn = sqlite3.connect(self.db_path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS stat_index (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, digest TEXT)"
        )
        return conn

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        return self.lookup_many([(path, st)])[0]

    def lookup_many(self, files: Sequence[tuple[Path, os.stat_result]]) -> list[str | None]:
        """The indexed digest of each ``(path, stat)``, or None (unknown or changed since)."""
        try:
            with contextlib.closing(self._connect()) as conn:
                rows = [
                    conn.execute(
                        "SELECT size, mtime_ns, ctime_ns, inode, digest FROM stat_index "
                        "WHERE path=?",
                        (str(path),),
                    ).fetchone()
                    for path, _ in files
                ]
        except sqlite3.Error:
            return [None] * len(files)  # the index is only a shortcut; hashing is always correct
        return [
            str(row[4])
            if row is not None
            and tuple(row[:4]) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            else None
            for row, (_, st) in zip(rows, files, strict=True)
        ]

    def store(self, path: Path, st: os.stat_result, digest: str) -> None:
        self.store_many([(path, st, digest)])

    def store_many(self, files: Sequence[tuple[Path, os.stat_result, str]]) -> None:
        """Remember digests, in one transaction (a commit per file would fsync once per file)."""
        now = time.time_ns()
        rows = [
            (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest)
            for path, st, digest in files
            # too fresh to trust a stat match later
            if now - max(st.st_mtime_ns, st.st_ctime_ns) >= _RACY_SECONDS * 1e9
        ]
        if not rows:
            return
        try:
            with contextlib.closing(self._connect()) as conn, conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO stat_index VALUES (?, ?, ?, ?, ?, ?)", rows
                )
        except sqlite3.Error:
            pass


def _stat_index() -> _StatIndex:
    from giflab_dask import roots
    from giflab_dask.config import get

    configured = get("stat-index")
    if configured:
        return _StatIndex(Path(configured).expanduser())
    root = roots.cache_dir()
    if not isinstance(root, Path):
        # A URL cache-dir (shared object store): the index describes this machine's files
        # and needs SQLite's file locking, so it stays in the local user cache directory.
        root = roots.local_cache_dir()
    return _StatIndex(root / "stat-index.sqlite")


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        reason = "dangling symlink" if path.is_symlink() else "file not found (check the path)"
        raise GifDecodeError(path, reason) from None
    except OSError as exc:
        raise GifDecodeError(path, f"cannot stat file ({exc.strerror or exc})") from None


#: Hashes files (their digests or the errors naming them, in order): :func:`hash_files` here,
#: or the same as tasks on a cluster's workers (:mod:`giflab_dask.graph.files`).
Hasher = Callable[[Sequence[Path]], Sequence["str | GifDecodeError"]]


def hash_files(paths: Sequence[str | os.PathLike[str]]) -> list[str | GifDecodeError]:
    """The BLAKE2b-256 hex digest of each file, or the error naming it (no stat index)."""
    out: list[str | GifDecodeError] = []
    for path in paths:
        try:
            out.append(_hash_file(Path(path)))
        except GifDecodeError as exc:
            out.append(exc)
    return out


def content_digests(
    paths: Iterable[str | os.PathLike[str]],
    *,
    use_index: bool = True,
    hasher: Hasher | None = None,
) -> dict[str, str | GifDecodeError]:
    """BLAKE2b-256 hex digest of each file's bytes (keyed by the path as given), or the error
    that names the file. The stat index is opened once and written in one transaction; the
    files it does not know are hashed by ``hasher`` (default: :func:`hash_files`, here)."""
    order = list(dict.fromkeys(os.fspath(p) for p in paths))  # as given, each path once
    out: dict[str, str | GifDecodeError] = {}
    files: list[tuple[str, Path, os.stat_result]] = []
    for given in order:
        path = Path(given).absolute()
        try:
            st = _stat(path)
            check_regular(path, st)
            files.append((given, path, st))
        except GifDecodeError as exc:
            out[given] = exc
    index = _stat_index() if use_index and files else None
    hits = index.lookup_many([(p, st) for _, p, st in files]) if index else [None] * len(files)
    misses: list[tuple[str, Path, os.stat_result]] = []
    for (given, path, st), hit in zip(files, hits, strict=True):
        if hit is not None:
            out[given] = hit
        else:
            misses.append((given, path, st))
    digests = (hasher or hash_files)([path for _, path, _ in misses]) if misses else []
    hashed: list[tuple[Path, os.stat_result, str]] = []
    for (given, path, st), digest in zip(misses, digests, strict=True):
        out[given] = digest
        if not isinstance(digest, GifDecodeError):
            hashed.append((path, st, digest))
    if index is not None and hashed:
        index.store_many(hashed)
    return {given: out[given] for given in order}


def content_digest(path: str | os.PathLike[str], *, use_index: bool = True) -> str:
    """BLAKE2b-256 hex digest of the file's bytes (stat index consulted when ``use_index``)."""
    digest = content_digests([path], use_index=use_index)[os.fspath(path)]
    if isinstance(digest, GifDecodeError):
        raise digest
    return digest


def key_from_digest(digest: str) -> str:
    """The frame-store key for content ``digest`` under this decoder and layout version."""
    tagged = f"giflab-gif|{digest}|decoder={DECODER_VERSION}|layout={LAYOUT_VERSION}"
    return hashlib.blake2b(tagged.encode(), digest_size=16).hexdigest()


def gif_key(path: str | os.PathLike[str], *, use_index: bool = True) -> str:
    """The content key of a GIF file: same bytes at any path give the same key."""
    return key_from_digest(content_digest(path, use_index=use_index))


def gif_keys(
    paths: Iterable[str | os.PathLike[str]],
    *,
    use_index: bool = True,
    hasher: Hasher | None = None,
) -> dict[str, str | GifDecodeError]:
    """:func:`gif_key` of many files at once (keyed by the path as given), or the error naming
    the file: what a batch's planning calls, one stat-index transaction for all (``hasher``:
    see :func:`content_digests`)."""
    digests = content_digests(paths, use_index=use_index, hasher=hasher)
    return {
        path: value if isinstance(value, GifDecodeError) else key_from_digest(value)
        for path, value in digests.items()
    }


@dataclass(frozen=True)
class GifSource:
    """A GIF file identified by its content key (the path only says where to read it)."""

    path: Path
    key: str

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, use_index: bool = True) -> GifSource:
        return cls(Path(path), gif_key(path, use_index=use_index))

    def __dask_tokenize__(self) -> tuple[str, str]:
        # Identity is content: two paths holding the same bytes tokenize alike.
        return ("giflab-gif-source", self.key)
