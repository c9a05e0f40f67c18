"""Byte-exact GIF construction for tests.

Pillow's GIF writer optimises frames (crops, merges, rewrites palettes and disposal), so it cannot
produce exact disposal / transparency / local-palette cases; these modules write every block:

- :mod:`~giflab_dask.testing.lzw`: GIF's LZW code stream;
- :mod:`~giflab_dask.testing.gifwriter`: frames and the container around them;
- :mod:`~giflab_dask.testing.animations`: deterministic animations and palettes;
- :mod:`~giflab_dask.testing.cases`: small GIFs for the decoder's corners.

Pure stdlib + numpy; nothing here imports dask. Everything is importable from here.
"""

from giflab_dask.testing.animations import make_animation, make_animation_frames, solid_palette
from giflab_dask.testing.cases import (
    CASE_HEIGHT,
    CASE_LOCAL_PALETTES,
    CASE_PALETTE,
    CASE_WIDTH,
    disposal_case_specs,
    disposal_cases,
    quirk_cases,
)
from giflab_dask.testing.gifwriter import (
    GifFrame,
    GifSpec,
    encode_gif,
    encode_solid_gif,
    interlace_order,
    write_gif,
)
from giflab_dask.testing.lzw import lzw_encode, solid_lzw

__all__ = [
    "CASE_HEIGHT",
    "CASE_LOCAL_PALETTES",
    "CASE_PALETTE",
    "CASE_WIDTH",
    "GifFrame",
    "GifSpec",
    "disposal_case_specs",
    "disposal_cases",
    "encode_gif",
    "encode_solid_gif",
    "interlace_order",
    "lzw_encode",
    "make_animation",
    "make_animation_frames",
    "quirk_cases",
    "solid_lzw",
    "solid_palette",
    "write_gif",
]
