"""Which entries a listing of an object-store root shows, read only while it pays.

A bulk open (``FsspecFrameStore.open_many``) fetches every wanted manifest, one GET each; a
key the root's listing does not show has no entry, so its GET can be skipped. But the listing
of a large shared store is one sequential request per thousand entries, so it is read page by
page in key order, and the next page only while the pages read have each saved at least
:data:`GETS_PER_PAGE` GETs. A listing is a snapshot: an entry committed after it is found by the
decode task's own open (or decoded again, which the first manifest settles).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["GETS_PER_PAGE", "PAGE_KEYS", "unlisted"]

#: Entries per listing page (S3's most).
PAGE_KEYS = 1000
#: GETs a page must save to be worth reading: S3 prices a LIST like ~12 GETs, and botocore
#: keeps 10 connections, so GETs run ~10 at a time where pages run one after another.
GETS_PER_PAGE = 10


def unlisted(fs: AbstractFileSystem, base: str, keys: Iterable[str]) -> set[str]:
    """The ``keys`` (entry names under ``base``) that a listing of ``base`` shows no entry for.

    Empty when the listing would not pay (fewer keys than :data:`GETS_PER_PAGE`, a filesystem
    without ordered pages, a listing refused); otherwise at most one page is read beyond what
    the pages saved, so the listing costs at most a request more than a tenth of its savings.
    """
    pending = sorted(f"{key}/" for key in set(keys))  # as S3 orders an entry's prefix
    if len(pending) < GETS_PER_PAGE:
        return set()
    absent: set[str] = set()
    pages = 0
    try:
        for names, last in _pages(fs, base):
            pages += 1
            # every entry up to `last` (all of them when `last` is None) is in this page or before
            split = len(pending) if last is None else bisect.bisect_right(pending, last)
            covered, pending = pending[:split], pending[split:]
            absent.update(key[:-1] for key in covered if key[:-1] not in names)
            if not pending or len(absent) < GETS_PER_PAGE * pages:
                break
    except Exception:  # no listing (permissions, network): the GETs say what is wrong
        return absent
    return absent


def _pages(fs: AbstractFileSystem, base: str) -> Iterator[tuple[set[str], str | None]]:
    """The root's entry names page by page, in key order, each with the last item it covers
    (``<name>/`` for an entry; None on the last page); nothing where pages cannot be read in
    order."""
    if hasattr(fs, "_call_s3") and not getattr(fs, "version_aware", False):
        yield from _s3_pages(fs, base)
    elif getattr(fs, "protocol", None) in ("memory", ("memory",)):  # in process: one page
        try:
            listing = fs.ls(base, detail=False)
        except FileNotFoundError:
            listing = []
        yield {str(p).rstrip("/").rsplit("/", 1)[-1] for p in listing}, None


def _s3_pages(fs: Any, base: str) -> Iterator[tuple[set[str], str | None]]:
    """ListObjectsV2 with a delimiter: one common prefix per entry, in UTF-8 byte order (the
    order of Python's ``str`` comparison); a page covers every item up to its last."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(base)
    prefix = f"{key.strip('/')}/" if key.strip("/") else ""
    kwargs: dict[str, Any] = {
        "Bucket": bucket,
        "Prefix": prefix,
        "Delimiter": "/",
        "MaxKeys": PAGE_KEYS,
        **getattr(fs, "req_kw", {}),
    }
    while True:
        page = sync(fs.loop, fs._call_s3, "list_objects_v2", **kwargs)
        items = [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        items += [c["Key"] for c in page.get("Contents", ())]
        names = {item[len(prefix) :].rstrip("/") for item in items}
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if token is None:
            yield names, None
            return
        yield names, max(item[len(prefix) :] for item in items) if items else ""
        kwargs["ContinuationToken"] = token
