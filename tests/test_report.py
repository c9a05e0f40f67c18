"""The HTML report (self-contained, rendered in headless Chromium) and PairResult's HTML view."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dask
import numpy as np
import pytest

from .conftest import REQUIRE_TOOLS, _find_tool, _need

if REQUIRE_TOOLS:  # CI installs the test extra: a missing matplotlib is a failure there
    import matplotlib  # noqa: F401
else:
    pytest.importorskip("matplotlib", reason="pip install 'giflab-dask[test]'")

from giflab_dask.framestore import FrameStore
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import validate_batch, validate_pair
from giflab_dask.report import report_command, write_report
from giflab_dask.results import PairResult, batch_table, write_table
from giflab_dask.resultstore import ResultStore
from giflab_dask.verdicts import Check, Verdict

METRICS = "ssim,psnr,deltae"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A batch of 3 demo pairs plus one row whose compressed GIF is missing, saved as Parquet."""
    from giflab_dask.demo import write_demo_data

    root = tmp_path_factory.mktemp("report")
    write_demo_data(root / "demo", n_originals=1, n_frames=8, size=(64, 48))
    manifest = root / "manifest.csv"
    lines = ["original,compressed,variant"]
    for variant in ("colors-32", "colors-8", "frames-50"):
        lines.append(f"demo/originals/demo-01.gif,demo/variants/{variant}/demo-01.gif,{variant}")
    lines.append("demo/originals/demo-01.gif,demo/variants/gone/demo-01.gif,gone")
    manifest.write_text("\n".join(lines) + "\n")
    cache = root / "cache"
    with dask.config.set({"giflab.cache-dir": str(cache)}):
        batch = validate_batch(collect_pairs(manifest), metrics=METRICS)
    table = batch_table(batch.outcomes)
    results_file = write_table(table, root / "results.parquet")
    return {
        "root": root,
        "cache": cache,
        "table": table,
        "results_file": results_file,
        "stores": {
            "results": ResultStore(cache / "results"),
            "store": FrameStore(cache / "frames"),
        },
        "batch": batch,
    }


@pytest.fixture(scope="module")
def report(run: dict) -> tuple[Path, str]:
    out = run["root"] / "out" / "report.html"
    write_report(run["results_file"], out, max_pairs=2, k_frames=2, **run["stores"])
    return out, out.read_text(encoding="utf-8")


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", body, flags=re.S)


# -- the file ---------------------------------------------------------------------------------


def test_report_is_one_self_contained_file(report) -> None:
    _, html = report
    assert html.startswith("<!DOCTYPE html>")
    references = re.findall(r"""(?:src|href|action|data)\s*=\s*["']([^"']*)["']""", html)
    assert references, "the report should hold images and links"
    assert all(r.startswith(("data:image/png;base64,", "#")) for r in references), references
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html.replace("\\/", "/"))
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r"<script[^>]+src", html)


def test_report_table_has_every_row_with_verdicts(report, run) -> None:
    _, html = report
    rows = _rows(html)
    table = run["table"]
    assert len(rows) == len(table) == 4
    assert sum('class="row-error"' in r for r in rows) == 1
    (error_row,) = [r for r in rows if 'class="row-error"' in r]
    assert "file not found" in error_row
    for verdict, n in table["verdict"].value_counts().items():
        assert f'<span class="badge {verdict}">{n} {verdict}</span>' in html
    assert 'data-default-sort="1">composite_quality' in html


def test_report_details_failed_pairs_first_with_curves_and_worst_frames(report, run) -> None:
    _, html = report
    table = run["table"]
    sections = re.findall(
        r'<section class="pair pair-(\w+)" id="pair-(\d+)">(.*?)</section>', html, re.S
    )
    assert len(sections) == 2  # max_pairs
    failed = table[table["verdict"] == "fail"].sort_values("composite_quality")
    expected = failed.index[:2].tolist() if len(failed) >= 2 else None
    if expected is not None:
        assert [int(pos) for _, pos, _ in sections] == expected
    for _, pos, body in sections:
        assert 'alt="per-frame curves of' in body and 'alt="worst frames of' in body
        assert f'href="#pair-{pos}"' in html  # the table row links to its section
    # 2 distribution figures + 2 per detailed pair
    assert html.count("<img ") == 2 + 2 * len(sections)


def test_report_without_stored_vectors_still_writes_the_table(run, tmp_path: Path) -> None:
    out = write_report(
        run["table"],
        tmp_path / "r.html",
        results=ResultStore(tmp_path / "elsewhere"),
        store=run["stores"]["store"],
        max_pairs=1,
    )
    html = out.read_text()
    assert "No per-frame vectors for this pair" in html
    assert len(_rows(html)) == 4


def test_report_rejects_what_is_not_a_batch_table(tmp_path: Path) -> None:
    import pandas as pd

    from giflab_dask.errors import GiflabError

    with pytest.raises(GiflabError, match="no such results file"):
        write_report(tmp_path / "missing.parquet", tmp_path / "r.html")
    with pytest.raises(GiflabError, match="not a giflab-dask batch table"):
        write_report(pd.DataFrame({"a": [1]}), tmp_path / "r.html")


def test_report_command(run, tmp_path: Path) -> None:
    from click.testing import CliRunner

    out = tmp_path / "cli" / "report.html"
    runner = CliRunner()
    with dask.config.set({"giflab.cache-dir": str(run["cache"])}):
        ok = runner.invoke(
            report_command,
            [str(run["results_file"]), "--out", str(out), "--metrics", METRICS, "--pairs", "1"],
        )
    assert ok.exit_code == 0, ok.output
    assert "report:" in ok.output and out.is_file()
    assert out.read_text().count('<section class="pair') == 1
    bad = runner.invoke(report_command, [str(tmp_path / "nope.parquet"), "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output


# -- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = _find_tool(["chromium", "chromium-browser", "google-chrome"], ["--version"], "Chrom")
    return _need(exe, "Chromium")


def _chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        # No name resolves: the page must render from its own bytes.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(chromium: str, report, tmp_path: Path) -> None:
    path, html = report
    url = path.resolve().as_uri()
    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    # The inline script ran: it sorted the table (worst composite quality first) and counted
    # the images that decoded.
    assert '<table id="summary" class="sortable" data-ready="1">' in page
    assert re.search(r'<th[^>]*aria-sort="ascending"[^>]*>composite_quality', page)
    rows = _rows(page)
    assert len(rows) == 4
    quality = []
    for row in rows:
        cells = re.findall(r'<td class="num" data-value="([^"]*)"', row)
        quality.append(float(cells[3]) if cells[3] else np.inf)  # row, frames, ratio, quality
    assert quality == sorted(quality)
    n_images = html.count("<img ")
    loaded = re.search(r'data-images-loaded="(\d+)"', page)
    assert loaded and int(loaded.group(1)) == n_images == page.count("<img ")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    taken = _chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        url,
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    shutil.copyfile(path, ARTIFACTS / "report.html")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 500, "the screenshot looks blank"


# -- PairResult in Jupyter --------------------------------------------------------------------


def _result(per_frame: dict, **kw) -> PairResult:
    checks = (Check("ssim_mean", "fail", 0.5, 0.8, "fail-below", "ssim_mean 0.5 < 0.8"),)
    values = {
        "original": "in/a<b>.gif",
        "compressed": "out/a.gif",
        "original_key": "k1",
        "compressed_key": "k2",
        "summaries": {"ssim_mean": 0.5, "psnr_mean": float("nan"), "original_frames": 4.0,
                      "compressed_frames": 2.0},
        "per_frame": per_frame,
        "mapping": np.array([0, 0, 1, 1]),
        "alignment": {"mode": "time"},
        "verdict": Verdict("fail", checks, "default"),
        "missing": {"ms_ssim": "frames under 161 px"},
    }  # fmt: skip
    values.update(kw)
    return PairResult(**values)


def test_repr_html_shows_verdict_metrics_reasons_and_sparkline() -> None:
    html = _result(
        {"ssim": np.array([0.9, np.nan, 0.5, 0.7, 0.6]), "psnr": np.ones(5)}
    )._repr_html_()
    assert ">fail</span>" in html and "#c62828" in html
    assert "in/a&lt;b&gt;.gif" in html and "a<b>.gif" not in html
    assert "ssim_mean" in html and "0.5" in html and "missing" in html  # NaN psnr_mean
    assert "4 → 2" in html
    assert "<li>ssim_mean 0.5 &lt; 0.8</li>" in html
    assert "ms_ssim: frames under 161 px" in html
    assert html.count("<svg") == 1 and 'aria-label="ssim per frame"' in html
    assert html.count("<polyline") == 2  # the NaN frame splits the line


def test_repr_html_long_vectors_are_binned_and_first_metric_used() -> None:
    values = np.linspace(10, 40, 5000)
    html = _result({"psnr": values})._repr_html_()
    (points,) = re.findall(r'points="([^"]*)"', html)
    assert len(points.split()) <= 260
    assert 'aria-label="psnr per frame"' in html


def test_repr_html_without_vectors_or_store() -> None:
    class Broken(dict):
        def items(self):
            raise OSError("result store gone")

    assert "<svg" not in _result({})._repr_html_()
    html = _result(Broken())._repr_html_()
    assert "<svg" not in html and ">fail</span>" in html


def test_repr_html_of_a_validated_pair(run) -> None:
    demo = run["root"] / "demo"
    with dask.config.set({"giflab.cache-dir": str(run["cache"])}):
        result = validate_pair(
            demo / "originals" / "demo-01.gif",
            demo / "variants" / "frames-50" / "demo-01.gif",
            metrics=METRICS,
        )
    html = result._repr_html_()
    assert f">{result.status}</span>" in html and "<polyline" in html
    assert "frames-50/demo-01.gif" in html
