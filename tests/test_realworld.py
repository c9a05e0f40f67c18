"""Real GIFs and variants made by real tools (gifsicle, ImageMagick, ffmpeg) through the CLI.

The originals are what a fresh CI machine has: the animated GIF that ships with scikit-image
(a dependency), ImageMagick's built-in images animated by ImageMagick itself (local palettes,
"restore to background" disposal with transparency, interlacing, optimised partial frames) and,
when ffmpeg is installed, a palettegen/paletteuse animation (partial frames, transparency).
Every file must decode to Chromium's frames (and ImageMagick's ``-coalesce`` frames), and a
batch over the pairs must finish without error rows, with PSNR/SSIM at their caps for lossless
re-encodes and finite, lower values for lossy ones.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from giflab_dask.cli import cli
from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.testing import make_animation

from .conftest import REQUIRE_TOOLS, _find_tool

_SKIMAGE_GIF = "no_time_for_that_tiny.gif"


def _run(*args: str | Path) -> None:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{args[0]} failed: {out.stderr[-500:]}"


def _skimage_gif(gifsicle: str, tmp: Path) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / _SKIMAGE_GIF
    if not path.is_file():
        pytest.skip(f"scikit-image {skimage.__version__} does not ship data/{_SKIMAGE_GIF}")
    # Upscaled by gifsicle (nearest neighbour: still a palette GIF with its partial frames and
    # transparency) so that 7x7 SSIM windows fit; the file itself is 14x25 pixels.
    out = tmp / "skimage.gif"
    _run(gifsicle, "--scale", "4", path, "-o", out)
    return out


def _im_transparent_dispose_background(im: str, tmp: Path) -> Path:
    """Transparent canvas, "restore to background" disposal, a moving disc and bar."""
    args: list[str] = []
    for i in range(10):
        x = 10 + 6 * i
        disc = ["-fill", f"rgb({25 * i},{200 - 15 * i},180)", "-draw", f"circle {x},32 {x + 12},32"]
        bar = ["-fill", "yellow", "-draw", f"rectangle 0,{4 * i} 24,{4 * i + 6}"]
        args += ["(", "-size", "96x64", "xc:none", *disc, *bar, ")"]
    out = tmp / "im_dispose_bg.gif"
    _run(im, "-delay", "6", "-dispose", "Background", *args, "-loop", "0", out)
    return out


def _im_photo_pan(im: str, tmp: Path) -> Path:
    """ImageMagick's built-in photo moving over its logo for 12 frames, optimised by ImageMagick
    into partial frames."""
    out = tmp / "im_rose_pan.gif"
    frames: list[str] = []
    for i in range(12):
        frames += ["(", "logo:", "-resize", "96x64!", "(", "rose:", "-resize", "32x22", ")",
                   "-geometry", f"+{5 * i}+{2 * i}", "-composite", ")"]  # fmt: skip
    _run(im, "-delay", "8", *frames, "-layers", "Optimize", "-loop", "0", out)
    return out


def _im_interlaced_logo(im: str, tmp: Path) -> Path:
    """ImageMagick's logo, interlaced, three frames with different crops."""
    out = tmp / "im_logo_interlaced.gif"
    frames: list[str] = []
    for i in range(3):
        frames += ["(", "logo:", "-crop", f"320x240+{80 * i}+{40 * i}", "+repage",
                   "-resize", "80x60", ")"]  # fmt: skip
    _run(im, "-delay", "20", *frames, "-interlace", "GIF", out)
    return out


def _ff_palette(ff: str, tmp: Path) -> Path:
    out = tmp / "ffmpeg_testsrc2.gif"
    _run(ff, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=96x72:rate=12:duration=2",
         "-filter_complex",
         "split[a][b];[a]palettegen=stats_mode=diff:reserve_transparent=1[p];"
         "[b][p]paletteuse=diff_mode=rectangle:dither=bayer",
         "-y", out)  # fmt: skip
    return out


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(rgb.copy(), alpha.copy()) for rgb, alpha in iter_frames(path)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _assert_equal_coalesce(im: str, paths: list[Path]) -> None:
    """Our frames equal ImageMagick's ``-coalesce`` frames, for many files in one call
    (``( file -coalesce )`` coalesces each file on its own; starting ImageMagick per file costs
    more than the comparison)."""
    args: list[str] = []
    for path in paths:
        args += ["(", str(path), "-coalesce", ")"]
    out = subprocess.run([im, *args, "rgba:-"], capture_output=True, timeout=120)
    raw = np.frombuffer(out.stdout, dtype=np.uint8)
    position = 0
    for path in paths:
        rgb, alpha = _decode(path)
        size = alpha.size * 4
        assert position + size <= raw.size, f"{path.name}: ImageMagick gave fewer frames"
        ref = raw[position : position + size].reshape(*alpha.shape, 4)
        position += size
        np.testing.assert_array_equal(alpha, ref[..., 3], err_msg=f"{path.name}: alpha")
        visible = alpha > 0
        np.testing.assert_array_equal(
            rgb[visible], ref[..., :3][visible], err_msg=f"{path.name}: rgb"
        )
    assert position == raw.size, f"ImageMagick gave more frames than we decoded {out.stderr!r}"


# name -> (tool, command builder(tool, src, dst, n_frames), lossless?)
_Maker = Callable[[str, Path, Path, int], list[str | Path]]
_VARIANTS: dict[str, tuple[str, _Maker, bool]] = {
    "gifsicle-O3": ("gifsicle", lambda t, s, d, n: [t, "-O3", s, "-o", d], True),
    "gifsicle-unoptimize": ("gifsicle", lambda t, s, d, n: [t, "--unoptimize", s, "-o", d], True),
    "gifsicle-interlace": ("gifsicle", lambda t, s, d, n: [t, "-i", "-O2", s, "-o", d], True),
    "gifsicle-lossy80": (
        "gifsicle",
        lambda t, s, d, n: [t, "-O3", "--lossy=80", s, "-o", d],
        False,
    ),
    "gifsicle-colors16": ("gifsicle", lambda t, s, d, n: [t, "--colors", "16", s, "-o", d], False),
    "gifsicle-half-width": (
        "gifsicle",
        lambda t, s, d, n: [t, "--resize-width", str(scan_gif(s).width // 2), s, "-o", d],
        False,
    ),
    "gifsicle-every-other-frame": (
        "gifsicle",
        lambda t, s, d, n: [t, "-U", s, *[f"#{i}" for i in range(0, n, 2)], "-O2", "-o", d],
        False,
    ),
    "imagemagick-colors32": (
        "im",
        lambda t, s, d, n: [t, s, "-coalesce", "-colors", "32", d],
        False,
    ),
    "imagemagick-resize50": (
        "im",
        lambda t, s, d, n: [t, s, "-coalesce", "-resize", "50%", d],
        False,
    ),
    "imagemagick-fuzz-opt-transparency": (
        "im",
        lambda t, s, d, n: [t, s, "-coalesce", "-fuzz", "5%", "-layers", "OptimizeTransparency", d],
        False,
    ),
    "ffmpeg-palette": (
        "ffmpeg",
        lambda t, s, d, n: [
            t,
            "-loglevel",
            "error",
            "-i",
            s,
            "-vf",
            "split[a][b];[a]palettegen[p];[b][p]paletteuse",
            "-y",
            d,
        ],
        False,
    ),
}
_EVERYWHERE = ["gifsicle-O3", "gifsicle-lossy80", "gifsicle-every-other-frame"]
# Which further variants each original gets: every tool and option at least once, few pairs
# (each ImageMagick GIF write costs seconds on a busy 2-core machine).
_PLAN = {
    "skimage": ["gifsicle-colors16", "gifsicle-half-width", "ffmpeg-palette"],
    "im_dispose_bg": ["gifsicle-unoptimize", "imagemagick-colors32"],
    "im_rose_pan": ["gifsicle-interlace", "imagemagick-resize50",
                    "imagemagick-fuzz-opt-transparency", "ffmpeg-palette"],
    "im_logo_interlaced": ["gifsicle-colors16"],
    "ffmpeg_testsrc2": ["gifsicle-unoptimize", "gifsicle-half-width"],
}  # fmt: skip


def _originals(tmp: Path, imagemagick: str, gifsicle: str, ff: str | None) -> list[Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    found = [
        _skimage_gif(gifsicle, tmp),
        _im_transparent_dispose_background(imagemagick, tmp),
        _im_photo_pan(imagemagick, tmp),
        _im_interlaced_logo(imagemagick, tmp),
    ]
    if ff is not None:
        found.append(_ff_palette(ff, tmp))
    return found


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, imagemagick: str, gifsicle: str
) -> list[tuple[Path, Path, str, bool]]:
    """(original, variant, variant name, lossless?) for every planned pair."""
    tmp = tmp_path_factory.mktemp("realworld")
    ff = _find_tool(["ffmpeg"], ["-version"], "ffmpeg version")
    if ff is None and REQUIRE_TOOLS:
        pytest.fail("ffmpeg is not installed (apt-get install ffmpeg); GIFLAB_REQUIRE_TOOLS=1")
    tools = {"im": imagemagick, "gifsicle": gifsicle, "ffmpeg": ff}
    pairs = []
    for original in _originals(tmp / "o", imagemagick, gifsicle, ff):
        n = scan_gif(original).n_frames
        for name in [*_EVERYWHERE, *_PLAN[original.stem]]:
            tool, make, lossless = _VARIANTS[name]
            exe = tools[tool]
            if exe is None:
                continue  # ffmpeg is optional: its pairs are left out, the rest still run
            out = tmp / "v" / name / original.name
            out.parent.mkdir(parents=True, exist_ok=True)
            _run(*make(exe, original, out, n))
            pairs.append((original, out, name, lossless))
    return pairs


def test_tool_made_originals_have_the_features_they_stand_for(
    corpus: list[tuple[Path, Path, str, bool]],
) -> None:
    # Guard: the originals exercise what real GIFs do, or the other tests prove little.
    gifs = {o.stem: scan_gif(o) for o, *_ in corpus}
    disposal_bg = gifs["im_dispose_bg"]
    assert any(f.disposal == 2 for f in disposal_bg.frames) and disposal_bg.declares_transparency
    assert sum(f.palette is not None for f in disposal_bg.frames) > 1  # local colour tables
    pan = gifs["im_rose_pan"]
    assert any(f.width < pan.width or f.height < pan.height for f in pan.frames[1:])
    assert all(f.interlace for f in gifs["im_logo_interlaced"].frames)
    if "ffmpeg_testsrc2" in gifs:  # ffmpeg's encoder crops frames to what changed
        video = gifs["ffmpeg_testsrc2"]
        assert any(f.height < video.height for f in video.frames[1:])
        assert video.declares_transparency
    tiny = gifs["skimage"]
    assert tiny.n_frames > 10 and tiny.declares_transparency
    assert any(f.width < tiny.width or f.height < tiny.height for f in tiny.frames[1:])


def test_originals_and_tool_variants_decode_like_imagemagick(
    corpus: list[tuple[Path, Path, str, bool]], imagemagick: str
) -> None:
    originals = sorted({o for o, *_ in corpus})
    _assert_equal_coalesce(imagemagick, [*originals, *(v for _, v, *_ in corpus)])


def test_originals_and_tool_variants_decode_like_chromium(
    corpus: list[tuple[Path, Path, str, bool]], chromium: Any
) -> None:
    from giflab_dask.chromium import disagreements

    paths = sorted({o for o, *_ in corpus}) + [v for _, v, *_ in corpus]
    found = [line for frames in chromium.decode(paths) for line in disagreements(frames)]
    assert not found, "\n".join(found)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(row: dict[str, str], column: str) -> float:
    return float(row[column]) if row[column] != "" else math.nan


def _batch(manifest: Path, out: Path, metrics: str) -> list[dict[str, str]]:
    result = CliRunner().invoke(
        cli, ["batch", str(manifest), "--out", str(out), "--metrics", metrics, "--no-progress"]
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    return _read_rows(out)


def test_batch_over_tool_variants_of_real_gifs(
    corpus: list[tuple[Path, Path, str, bool]], tmp_path: Path
) -> None:
    # A download cut short, next to the valid pairs: an error row naming it, the rest finish.
    first = corpus[0][0]
    truncated = tmp_path / "truncated.gif"
    truncated.write_bytes(first.read_bytes()[: first.stat().st_size * 2 // 3])
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["original", "compressed", "variant", "lossless"])
        writer.writerows([o, c, name, int(lossless)] for o, c, name, lossless in corpus)
        writer.writerow([first, truncated, "truncated", 0])
    table = _batch(manifest, tmp_path / "results.csv", "mse,psnr,ssim,deltae")
    assert len(table) == len(corpus) + 1

    errors = [r for r in table if r["error"]]
    assert [r["variant"] for r in errors] == ["truncated"], errors
    assert "truncated.gif" in errors[0]["error"] and "truncated" in errors[0]["error"]

    for r in table:
        if r["variant"] == "truncated":
            continue
        where = f"{Path(r['original']).name} ({r['variant']})"
        missing = json.loads(r["missing_metrics"]) if r["missing_metrics"] else {}
        assert not missing, f"{where}: missing {missing}"
        psnr, ssim = _num(r, "psnr_mean"), _num(r, "ssim_mean")
        if r["lossless"] == "1":
            assert psnr == 100.0 and ssim == 1.0, f"{where}: PSNR {psnr}, SSIM {ssim}"
            assert _num(r, "deltae_max") == 0.0, where
            assert r["verdict"] == "pass", f"{where}: {r['failed_checks']}"
        else:
            assert math.isfinite(psnr) and 0 < psnr <= 100, f"{where}: PSNR {psnr}"
            assert math.isfinite(ssim) and -1 <= ssim <= 1, f"{where}: SSIM {ssim}"
    # Lossy variants must mostly lose something, else the lossless checks above prove little
    # (a 16-colour or 80-lossy re-encode of a GIF with few colours can be exact).
    lossy = [r for r in table if r["lossless"] == "0" and r["variant"] != "truncated"]
    assert sum(_num(r, "psnr_mean") < 100 for r in lossy) >= len(lossy) * 2 // 3
    for r in table:
        if r["variant"] == "gifsicle-every-other-frame":
            # (frame counts read as floats: the error row leaves the column empty)
            assert float(r["compressed_frames"]) < float(r["original_frames"]), r["original"]
            assert r["alignment"] == "time"
        if r["variant"] in ("gifsicle-half-width", "imagemagick-resize50"):
            assert r["compressed_size"] != r["original_size"], r["original"]


def test_a_long_gif_and_its_gifsicle_variants(tmp_path: Path, gifsicle: str) -> None:
    """Hundreds of frames: every frame survives decoding, storing and time alignment."""
    original = tmp_path / "long.gif"
    original.write_bytes(make_animation(600, 32, 24, seed=3, delay_cs=4))
    optimized = tmp_path / "long-O3.gif"
    _run(gifsicle, "-O3", original, "-o", optimized)
    first_half = tmp_path / "long-first-half.gif"
    _run(gifsicle, original, "#0-299", "-o", first_half)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"original,compressed\n{original},{optimized}\n{original},{first_half}\n", encoding="utf-8"
    )
    lossless, half = _batch(manifest, tmp_path / "r.csv", "psnr")
    assert not lossless["error"] and not half["error"]
    assert (lossless["original_frames"], lossless["compressed_frames"]) == ("600", "600")
    assert float(lossless["psnr_min"]) == 100.0
    assert half["compressed_frames"] == "300"
    # The first 300 frames match; past the end the last compressed frame stays on screen.
    assert float(half["psnr_first"]) == 100.0 and float(half["psnr_last"]) < 100.0


def test_content_alignment_of_a_resized_variant(tmp_path: Path, gifsicle: str) -> None:
    """Content alignment compares thumbnails of both sides: sizes must not have to agree."""
    original = tmp_path / "a.gif"
    original.write_bytes(make_animation(12, 64, 48, seed=4))
    resized = tmp_path / "a-half.gif"
    _run(gifsicle, "--resize-width", "32", original, "-o", resized)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"original,compressed\n{original},{resized}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["batch", str(manifest), "--out", str(tmp_path / "r.csv"), "--metrics", "psnr",
         "--align", "content", "--no-progress"],
    )  # fmt: skip
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    (row,) = _read_rows(tmp_path / "r.csv")
    assert not row["error"] and row["alignment"] == "content"
    assert row["compressed_size"] == "32x24" and 15 < float(row["psnr_mean"]) < 100
