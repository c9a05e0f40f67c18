"""Shared per-frame conversions (kernels/_frames.py): same bytes as the reference, computed
once per frame inside a block, never shared outside one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from giflab_dask.kernels import _frames
from giflab_dask.kernels._luma import luma as numpy_luma


def test_numba_luma_equals_numpy_luma_on_every_colour() -> None:
    codes = np.arange(2**24, dtype=np.uint32)
    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8)
    rgb = rgb.reshape(4096, 4096, 3)
    assert _frames._luma_kernel() is not None  # numba is a dependency: the compiled path runs
    np.testing.assert_array_equal(_frames.luma(rgb), numpy_luma(rgb))


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (270, 480)])
def test_luma_of_views_and_odd_shapes(shape: tuple[int, int]) -> None:
    frame = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_frames.luma(frame), numpy_luma(frame))
    view = frame[::-1, ::2]  # not contiguous
    np.testing.assert_array_equal(_frames.luma(view), numpy_luma(view))


def test_conversions_are_shared_within_a_block_only() -> None:
    block = np.random.default_rng(2).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    outside = _frames.luma(block[0])
    assert _frames.luma(block[0]) is not outside  # no memo: computed on each call
    with _frames.shared_conversions():
        first = _frames.luma(block[0])
        assert _frames.luma(block[0]) is first  # the same frame: computed once
        assert _frames.luma(block[1]) is not first  # another frame: its own
        assert not first.flags.writeable  # no kernel can change what another reads
        np.testing.assert_array_equal(first, numpy_luma(block[0]))
    with _frames.shared_conversions():
        assert _frames.luma(block[0]) is not first  # a new block starts empty


def test_a_new_array_at_a_reused_address_is_not_a_hit() -> None:
    # The memo pins every frame it saw, so a freed buffer's address cannot come back with
    # other pixels while the memo lives.
    with _frames.shared_conversions():
        seen = []
        for value in range(20):
            frame = np.full((16, 16, 3), value, dtype=np.uint8)
            seen.append(int(_frames.luma(frame)[0, 0]))
            del frame
        assert seen == [int(numpy_luma(np.full((1, 1, 3), v, np.uint8))[0, 0]) for v in range(20)]


def test_threads_have_their_own_memo() -> None:
    frame = np.random.default_rng(3).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    got: list[np.ndarray] = []
    with _frames.shared_conversions():
        mine = _frames.luma(frame)
        thread = threading.Thread(target=lambda: got.append(_frames.luma(frame)))
        thread.start()
        thread.join()
    assert got[0] is not mine and np.array_equal(got[0], mine)
