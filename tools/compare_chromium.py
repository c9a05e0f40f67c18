"""Decode every GIF under some directories with giflab and with Chromium; print the differences.

    python tools/compare_chromium.py DIR [DIR ...] [--batch 50] [--chromium PATH]

Prints one line per disagreement (frame, pixels differing in alpha / in visible colour,
durations) and a count of files that agree, differ, or that one decoder rejects. Exits 1 when
any file differs. Needs Playwright (``pip install playwright``, the ``test`` extra) and an
installed Chromium (Debian: ``apt-get install chromium``); no browser is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from giflab_dask.chromium import ChromiumGifDecoder, disagreements
from giflab_dask.errors import GiflabError


def _gifs(roots: list[Path]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        found.update([root] if root.is_file() else root.rglob("*.gif"))
    return sorted(p for p in found if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="directories (searched for *.gif)")
    parser.add_argument("--batch", type=int, default=50, help="GIFs per call into the page")
    parser.add_argument("--chromium", help="Chromium binary (default: found on PATH)")
    args = parser.parse_args(argv)
    paths = _gifs(args.roots)
    counts: Counter[str] = Counter()
    with ChromiumGifDecoder(args.chromium) as chromium:
        for start in range(0, len(paths), args.batch):
            for frames in chromium.decode(paths[start : start + args.batch]):
                if frames.error is not None:
                    found, kind = [f"{frames.path}: Chromium stopped: {frames.error}"], "rejected"
                else:
                    try:
                        found = disagreements(frames)
                    except GiflabError as exc:  # giflab rejects a file Chromium decoded
                        found, kind = [f"{frames.path}: giflab: {exc}"], "rejected"
                    else:
                        kind = "differ" if found else "agree"
                counts[kind] += 1
                if found:
                    print(f"{frames.path.parent}:", *found, sep="\n  ")
    print(f"{len(paths)} GIFs: {counts['agree']} agree, {counts['differ']} differ, "
          f"{counts['rejected']} rejected by one decoder")  # fmt: skip
    return 1 if counts["differ"] or counts["rejected"] else 0


if __name__ == "__main__":
    sys.exit(main())
