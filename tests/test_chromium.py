"""Our frames and durations equal Chromium's own decoder's (WebCodecs ``ImageDecoder``).

Chromium is the decode oracle (decision 46): every synthetic case here and every real GIF of
tests/test_realworld.py (with its tool-made variants, in that module) decodes to exactly the
frames Chromium shows. One browser per session (the ``chromium`` fixture), many GIFs per call.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from giflab_dask.align import AlignOptions, display_times
from giflab_dask.chromium import ChromiumGifDecoder, disagreements
from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.testing import disposal_cases, make_animation, quirk_cases


def _write(root: Path, cases: dict[str, bytes]) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in sorted(cases.items()):
        paths.append(root / f"{name}.gif")
        paths[-1].write_bytes(data)
    return paths


def _synthetic(root: Path) -> list[Path]:
    cases = {**disposal_cases(), **quirk_cases()}
    cases["animation"] = make_animation(24, 48, 36, seed=5)
    return _write(root, cases)


def test_synthetic_cases_decode_like_chromium(tmp_path: Path, chromium: ChromiumGifDecoder) -> None:
    paths = _synthetic(tmp_path)
    decoded = chromium.decode(paths)
    assert [d.n_frames for d in decoded] == [scan_gif(p).n_frames for p in paths]
    found = [line for frames in decoded for line in disagreements(frames)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("level", ["-O1", "-O2", "-O3"])
def test_gifsicle_reencodes_of_synthetic_cases_decode_like_chromium(
    level: str, tmp_path: Path, chromium: ChromiumGifDecoder, gifsicle: str
) -> None:
    originals = _synthetic(tmp_path / "o")
    outputs = []
    for path in originals:
        out = tmp_path / level / path.name
        out.parent.mkdir(exist_ok=True)
        # gifsicle refuses a 0x0 screen and rewrites stray bytes; the rest it optimises.
        done = subprocess.run([gifsicle, level, str(path), "-o", str(out)], capture_output=True)
        if done.returncode == 0:
            outputs.append(out)
    assert len(outputs) >= len(originals) - 2
    found = [line for frames in chromium.decode(outputs) for line in disagreements(frames)]
    assert not found, "\n".join(found)


def test_the_canvas_a_first_frame_leaves_uncovered_is_transparent(
    tmp_path: Path, chromium: ChromiumGifDecoder
) -> None:
    # Decision 46's evidence, kept: Chromium ignores the background colour (here index 5,
    # yellow, in a global colour table) and shows nothing where the first frame is not.
    (path,) = _write(tmp_path, {"c": disposal_cases()["partial_first_frame_bg_index5"]})
    (theirs,) = chromium.decode([path])
    first = scan_gif(path).frames[0]
    outside = np.ones(theirs.rgba.shape[1:3], bool)
    outside[first.top : first.top + first.height, first.left : first.left + first.width] = False
    assert (theirs.rgba[0][outside] == 0).all()
    _, alpha = next(iter_frames(path))
    assert (alpha[outside] == 0).all() and (alpha[~outside] == 255).all()


def test_durations_are_the_declared_ones_and_the_clamp_is_playback_only(
    tmp_path: Path, chromium: ChromiumGifDecoder
) -> None:
    (path,) = _write(tmp_path, {"d": quirk_cases()["zero_and_tiny_delays"]})
    (theirs,) = chromium.decode([path])
    declared = scan_gif(path).durations_ms
    np.testing.assert_array_equal(theirs.durations_us, declared.astype(np.int64) * 1000)
    # ImageDecoder reports what the file declares; the player's clamp of tiny delays is the
    # alignment's (giflab.align.min-delay-ms / clamp-to-ms): 0 and 10 ms play as 100 ms.
    shown = display_times(declared, AlignOptions())
    np.testing.assert_array_equal(shown, [100, 100, 20, 50, 100, 10000])


def test_a_wrong_decode_is_reported(tmp_path: Path, chromium: ChromiumGifDecoder) -> None:
    """The comparison can fail: a GIF Chromium decodes, paired with another file's frames."""
    a, b = _write(tmp_path, {"a": disposal_cases()["dispose2_partial"],
                             "b": disposal_cases()["dispose3_partial"]})  # fmt: skip
    theirs = chromium.decode([a])[0]
    swapped = type(theirs)(path=b, rgba=theirs.rgba, durations_us=theirs.durations_us)
    found = disagreements(swapped)
    assert found and all(line.startswith("b.gif frame") for line in found)


def test_real_gifs_on_this_machine_decode_like_chromium(chromium: ChromiumGifDecoder) -> None:
    from .test_decode import _real_gifs

    gifs = _real_gifs()
    if not gifs:
        pytest.skip("no GIF files ship with this Python or under /usr/share")
    found = [line for frames in chromium.decode(gifs) for line in disagreements(frames)]
    assert not found, "\n".join(found)


def test_the_corpus_script_counts_and_lists_disagreements(
    tmp_path: Path, chromium: ChromiumGifDecoder, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    script = Path(__file__).parents[1] / "tools" / "compare_chromium.py"
    spec = importlib.util.spec_from_file_location("compare_chromium", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    good = _write(tmp_path / "corpus", {"ok": disposal_cases()["dispose3_partial"]})[0]
    (tmp_path / "corpus" / "cut.gif").write_bytes(good.read_bytes()[:-40])
    assert module.main([str(tmp_path / "corpus"), "--chromium", chromium.executable]) == 1
    out = capsys.readouterr().out
    assert "cut.gif" in out and "ok.gif" not in out
    assert out.strip().endswith("2 GIFs: 1 agree, 0 differ, 1 rejected by one decoder")
