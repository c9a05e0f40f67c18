"""Small GIFs covering the decoder's corners: disposal, transparency, palettes, layout, quirks.

Frame rectangles are patterned (checkers/stripes) so a misplaced or mis-disposed area shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from giflab_dask.testing.gifwriter import GifFrame, GifSpec, encode_gif

__all__ = [
    "CASE_HEIGHT",
    "CASE_LOCAL_PALETTES",
    "CASE_PALETTE",
    "CASE_WIDTH",
    "disposal_case_specs",
    "disposal_cases",
    "quirk_cases",
]

#: Global palette of :func:`disposal_case_specs` (index: colour).
CASE_PALETTE = np.array(
    [
        (0, 0, 0),  # 0 black
        (255, 255, 255),  # 1 white
        (255, 0, 0),  # 2 red
        (0, 255, 0),  # 3 green
        (0, 0, 255),  # 4 blue
        (255, 255, 0),  # 5 yellow
        (0, 255, 255),  # 6 cyan
        (255, 0, 255),  # 7 magenta
    ],
    np.uint8,
)
#: Local palettes of :func:`disposal_case_specs`; none of their colours is in CASE_PALETTE.
CASE_LOCAL_PALETTES = (
    np.array([(255, 128, 0), (128, 0, 255), (0, 128, 128), (128, 128, 128)], np.uint8),
    np.array([(64 + 8 * i, 200 - 8 * i, 32 + 12 * i) for i in range(16)], np.uint8),
    np.array([(10, 20, 30), (40, 50, 60), (70, 80, 90)], np.uint8),
)
CASE_WIDTH = 24
CASE_HEIGHT = 16


def _checker(h: int, w: int, a: int, b: int, cell: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.where(((yy // cell) + (xx // cell)) % 2 == 0, a, b).astype(np.uint8)


def _stripes(h: int, w: int, values: Sequence[int], band: int = 4) -> np.ndarray:
    xx = np.arange(w) // band
    row = np.asarray(values, np.uint8)[xx % len(values)]
    return np.tile(row, (h, 1))


def _base(disposal: int = 1, **kw: Any) -> GifFrame:
    """Full-screen opaque first frame: white/cyan vertical stripes."""
    return GifFrame(_stripes(CASE_HEIGHT, CASE_WIDTH, (1, 6)), disposal=disposal, **kw)


def _spec(frames: Sequence[GifFrame], **options: Any) -> GifSpec:
    gpal = options.pop("global_palette", CASE_PALETTE)
    return GifSpec(tuple(frames), CASE_WIDTH, CASE_HEIGHT, gpal, options)


def _partial_sequence(d1: int, d2: int) -> list[GifFrame]:
    """A full first frame, then two partial frames disposed with ``d1`` and ``d2``."""
    return [
        _base(),
        GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=d1),
        GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=d2),
        GifFrame(np.full((4, 4), 7, np.uint8), left=0, top=0, disposal=1),
    ]


def _disposal_specs() -> dict[str, GifSpec]:
    """Disposal methods 0-3, out-of-range ones, and their sequences."""
    cases: dict[str, GifSpec] = {}
    for d in (0, 1, 2, 3):
        cases[f"dispose{d}_partial"] = _spec(_partial_sequence(d, 1))
    cases["dispose4_out_of_range_partial"] = _spec(_partial_sequence(4, 1))
    cases["dispose7_out_of_range_partial"] = _spec(_partial_sequence(7, 1))
    cases["dispose2_then_0"] = _spec(_partial_sequence(2, 0))
    cases["dispose3_then_0"] = _spec(_partial_sequence(3, 0))
    cases["dispose3_consecutive"] = _spec(_partial_sequence(3, 3))
    cases["dispose2_full_first_frame"] = _spec(
        [_base(disposal=2), GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=1)]
    )
    cases["dispose3_first_frame"] = _spec(
        [
            GifFrame(_checker(8, 12, 2, 3), left=2, top=2, disposal=3),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=1),
        ]
    )
    return cases


def _transparency_specs() -> dict[str, GifSpec]:
    """Transparent indices on first and later frames, with disposals."""
    cases: dict[str, GifSpec] = {}
    holes = _checker(CASE_HEIGHT, CASE_WIDTH, 0, 4, cell=4)  # index 0 transparent
    cases["transparency_frame0"] = _spec(
        [
            GifFrame(holes, transparency=0, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=1),
        ]
    )
    cases["transparency_frame0_dispose2"] = _spec(
        [
            GifFrame(holes, transparency=0, disposal=2),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
        ]
    )
    cases["transparency_later_frames_only"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
            GifFrame(_checker(6, 8, 4, 5, cell=3), left=10, top=6, transparency=5, disposal=1),
        ]
    )
    cases["transparency_index_changes"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=2, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=12, top=8, transparency=3, disposal=1),
            GifFrame(_checker(6, 8, 2, 3), left=8, top=5, transparency=None, disposal=1),
        ]
    )
    cases["transparency_with_dispose2_and_3"] = _spec(
        [
            _base(transparency=6),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, transparency=3, disposal=2),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, transparency=4, disposal=3),
            GifFrame(np.full((4, 4), 7, np.uint8), left=0, top=0, disposal=1),
        ]
    )
    return cases


def _palette_specs() -> dict[str, GifSpec]:
    """Local palettes, no global palette, partial first frames, background index."""
    cases: dict[str, GifSpec] = {}
    lp0, lp1, lp2 = CASE_LOCAL_PALETTES
    cases["local_palette_differs"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 0, 3), left=4, top=3, palette=lp0, disposal=1),
            GifFrame(
                (np.arange(CASE_WIDTH * CASE_HEIGHT) % 16).astype(np.uint8).reshape(16, 24),
                palette=lp1,
                disposal=1,
            ),
            GifFrame(_checker(6, 8, 2, 3), left=10, top=6, disposal=1),
            GifFrame(_checker(5, 7, 1, 2), left=1, top=9, palette=lp2, transparency=1),
        ]
    )
    cases["no_global_palette"] = _spec(
        [
            GifFrame(_stripes(CASE_HEIGHT, CASE_WIDTH, (0, 1, 2, 3)), palette=lp0, disposal=1),
            GifFrame(_checker(6, 8, 0, 2), left=4, top=3, palette=lp2, disposal=2),
            GifFrame(_checker(6, 8, 5, 9), left=10, top=6, palette=lp1, disposal=1),
        ],
        global_palette=None,
    )
    cases["partial_first_frame"] = _spec(
        [
            GifFrame(_checker(8, 10, 2, 3), left=6, top=4, disposal=1),
            GifFrame(_checker(6, 8, 4, 5), left=12, top=8, disposal=1),
        ]
    )
    cases["partial_first_frame_bg_index5"] = _spec(
        [
            GifFrame(_checker(8, 10, 2, 3), left=6, top=4, disposal=1),
            GifFrame(_checker(6, 8, 4, 7), left=12, top=8, disposal=1),
        ],
        background_index=5,
    )
    cases["bg_index5_opaque_dispose2"] = _spec(
        [
            _base(disposal=2),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=2),
            GifFrame(_checker(6, 8, 4, 7), left=10, top=6, disposal=1),
        ],
        background_index=5,
    )
    return cases


def _layout_specs() -> dict[str, GifSpec]:
    """Interlacing, single frames, frames without a GCE or beyond the screen."""
    cases: dict[str, GifSpec] = {}
    rows = (np.arange(CASE_HEIGHT) % 8).astype(np.uint8)[:, None].repeat(CASE_WIDTH, axis=1)
    cases["interlaced_frame"] = _spec(
        [
            GifFrame(rows, interlace=True, disposal=1),
            GifFrame(
                (np.arange(11) % 8).astype(np.uint8)[:, None].repeat(9, axis=1)[:, ::-1].copy(),
                left=3,
                top=2,
                interlace=True,
                disposal=1,
            ),
            GifFrame(_checker(6, 8, 2, 3), left=10, top=6, disposal=1),
        ]
    )
    cases["interlaced_small_frames"] = _spec(
        [_base()]
        + [
            GifFrame(
                ((np.arange(h) + h) % 8).astype(np.uint8)[:, None].repeat(5, axis=1),
                left=2 + 5 * i,
                top=1,
                interlace=True,
                disposal=1,
            )
            for i, h in enumerate((1, 2, 3, 5))
        ]
    )
    cases["single_frame"] = _spec([_base(disposal=0)])
    cases["single_frame_gif87a_no_gce"] = _spec(
        [GifFrame(_checker(CASE_HEIGHT, CASE_WIDTH, 2, 4), write_gce=False)],
        loop=None,
        version=b"GIF87a",
    )
    cases["frame_without_gce"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, write_gce=False),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=1),
        ]
    )
    cases["frame_beyond_screen"] = _spec(
        [
            _base(),
            GifFrame(_checker(10, 10, 2, 3), left=18, top=10, disposal=1),
            GifFrame(_checker(6, 8, 4, 5), left=2, top=2, disposal=1),
        ]
    )
    return cases


def disposal_case_specs() -> dict[str, GifSpec]:
    """Small (24x16 screen) GIF descriptions covering disposal/transparency/palette corners."""
    return {
        **_disposal_specs(),
        **_transparency_specs(),
        **_palette_specs(),
        **_layout_specs(),
    }


def disposal_cases() -> dict[str, bytes]:
    """Encoded :func:`disposal_case_specs`: name -> GIF bytes."""
    return {name: spec.encode() for name, spec in disposal_case_specs().items()}


def quirk_cases() -> dict[str, bytes]:
    """GIF bytes for decoder corners outside the disposal cases: zero and tiny delays, stray
    bytes after the frames, a missing trailer, a 0x0 logical screen, undefined disposals 5/6."""
    delays = (0, 1, 2, 5, 10, 1000)
    frames = [
        GifFrame(_checker(CASE_HEIGHT, CASE_WIDTH, i % 8, (i + 3) % 8), delay_cs=d)
        for i, d in enumerate(delays)
    ]
    cases = {"zero_and_tiny_delays": _spec(frames).encode()}
    three = _spec(frames[2:5]).encode()
    cases["stray_bytes_after_frames"] = three[:-1] + b"\x00\x17not a block"
    cases["no_trailer"] = three[:-1]
    cases["zero_size_screen"] = encode_gif(
        [GifFrame(_checker(6, 8, 2, 3), left=2, top=1)], 0, 0, global_palette=CASE_PALETTE
    )
    cases["dispose5_and_6"] = _spec(
        [
            _base(),
            GifFrame(_checker(6, 8, 2, 3), left=4, top=3, disposal=5),
            GifFrame(_checker(6, 8, 4, 5), left=10, top=6, disposal=6),
            GifFrame(_checker(6, 8, 4, 7), left=1, top=8, disposal=1),
        ]
    ).encode()
    return cases
