"""validate_pair end to end: identities, chunk invariance, laziness, names, failures, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dask
import numpy as np
import pytest
from click.testing import CliRunner
from dask.utils import key_split

from giflab_dask.cli import cli
from giflab_dask.errors import MeasurementError
from giflab_dask.graph import build
from giflab_dask.metrics import available_metrics, register_metric
from giflab_dask.pipeline import validate_pair, validate_pair_lazy
from giflab_dask.resultstore import ResultStore
from giflab_dask.testing import GifFrame, encode_gif, make_animation_frames

from .conftest import write_lossy_variants, write_pillow_gif

H, W, T = 40, 56, 15


@pytest.fixture(scope="module")
def gifs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An original and a lossy variant (palette cut to 16 colours, every 3rd frame dropped)."""
    made = write_lossy_variants(tmp_path_factory.mktemp("pair"), T, W, H, seed=11)
    return made["original"], made["dropped"]


def with_chunk_frames(n: int) -> dict[str, float]:
    return {"giflab.framestore.chunk-mib": n * H * W * 3 / 2**20}


def test_identity_gives_perfect_scores(gifs: tuple[Path, Path]) -> None:
    original, _ = gifs
    result = validate_pair(original, original, metrics="ssim,psnr,mse,gmsd,chist")
    s = result.summaries
    assert s["ssim_min"] == pytest.approx(1.0)
    assert s["gmsd_max"] == pytest.approx(0.0) and s["chist_min"] == pytest.approx(1.0)
    assert s["mse_max"] == 0.0
    assert s["psnr_min"] == 100.0 and s["psnr_of_mean_mse"] == 100.0
    assert result.status == "pass"
    np.testing.assert_array_equal(result.mapping, np.arange(T))


@pytest.mark.parametrize("metrics", [None])
def test_results_do_not_depend_on_chunking(
    gifs: tuple[Path, Path], tmp_path: Path, metrics
) -> None:
    original, compressed = gifs
    results = []
    for n in (1, 7, T):
        with dask.config.set({**with_chunk_frames(n), "giflab.cache-dir": str(tmp_path / str(n))}):
            result = validate_pair(original, compressed, metrics=metrics)
        assert result.per_frame  # computed something
        results.append(result)
    chunks = [r for r in results]
    reference = chunks[-1]
    for other in chunks[:-1]:
        assert other.missing == reference.missing
        for name, values in reference.per_frame.items():
            np.testing.assert_allclose(other.per_frame[name], values, rtol=1e-9, atol=1e-12,
                                       equal_nan=True, err_msg=name)  # fmt: skip
        for key, value in reference.summaries.items():
            assert math.isclose(other.summaries[key], value, rel_tol=1e-9, abs_tol=1e-12) or (
                math.isnan(value) and math.isnan(other.summaries[key])
            ), key


def test_metric_groups_fill_the_workers_without_rereading_more_than_needed() -> None:
    from giflab_dask.metrics import resolve_metrics

    assert build.metric_groups(build.FUSE_FROM_TASKS, 14) == 1  # enough tasks: fused
    assert build.metric_groups(1, 14) == 14  # one chunk: a task per metric
    assert build.metric_groups(29, 14) == 2  # a long pair: two groups reach the target
    assert build.metric_groups(3, 2) == 2  # never more groups than metrics
    specs = resolve_metrics(None)
    groups = build.balanced_groups(specs, 2)
    assert sorted(s.name for g in groups for s in g) == sorted(s.name for s in specs)
    loads = sorted(sum(s.cost for s in g) for g in groups)
    # greedy by cost: the lighter group carries at least what the dearest metric leaves over
    assert loads[1] - loads[0] <= max(s.cost for s in specs)


def test_frame_measurements_are_counted_for_progress(gifs: tuple[Path, Path]) -> None:
    from giflab_dask.diagnostics import frames_measured

    original, compressed = gifs
    lazy = validate_pair_lazy(original, compressed, metrics="ssim,psnr,temporal_consistency")
    expected = lazy.plan.frame_measurements
    assert expected == T * 3  # every original frame, once per metric
    before = frames_measured()
    lazy.compute(scheduler="threads")
    assert frames_measured() - before == expected


@pytest.mark.parametrize("fused", [True, False])
def test_building_the_graph_computes_nothing(
    gifs: tuple[Path, Path], fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def spy(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
        calls.append(len(original))
        return np.zeros(len(original))

    register_metric("spy_metric", spy, replace=True)
    original, compressed = gifs
    # A batch of few chunks gives each metric its own tasks (parallel); a large one fuses them.
    monkeypatch.setattr(build, "FUSE_FROM_TASKS", 0 if fused else 10**9)
    lazy = validate_pair_lazy(original, compressed, metrics=["spy_metric", "ssim"])
    assert calls == []
    graph = {}
    for obj in lazy.dask_objects():
        graph.update(dict(obj.__dask_graph__()))
    # A pair-metrics task per chunk reads, aligns and runs the kernels (decision 32); the
    # alignment node is stored by the pair's first result-write (decision 62).
    assert {key_split(k) for k in graph} == {"gif-decode", "pair-metrics", "result-write"}
    assert sum(1 for k in graph if key_split(k) == "gif-decode") == 2
    assert sum(1 for k in graph if key_split(k) == "result-write") == 2  # a node per metric
    # 15 frames: 1 chunk, for both metrics at once or one task each
    assert sum(1 for k in graph if key_split(k) == "pair-metrics") == (1 if fused else 2)
    result = lazy.compute()
    assert sum(calls) == T  # each frame measured once
    assert result.summaries["spy_metric_mean"] == 0.0


def test_a_failing_metric_gives_no_verdict_and_is_retried(gifs: tuple[Path, Path]) -> None:
    calls = []

    def broken(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
        calls.append(len(original))
        raise FloatingPointError("kernel exploded")

    register_metric("broken_metric", broken, replace=True)
    original, compressed = gifs
    runs = []
    for _ in range(2):  # nothing of the failure is stored: the second run runs it again
        with pytest.raises(MeasurementError, match="broken_metric: FloatingPointError: kernel"):
            validate_pair(original, compressed, metrics=["broken_metric", "psnr"])
        runs.append(len(calls))
    assert runs[0] > 0 and runs[1] == 2 * runs[0]
    # The metric that did not fail was stored by the first run.
    lazy = validate_pair_lazy(original, compressed, metrics=["broken_metric", "psnr"])
    assert len(lazy.plan.writes) == 1


def test_user_metric_registered_and_picked_by_name(gifs: tuple[Path, Path]) -> None:
    def mean_abs(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
        """Mean absolute RGB difference per frame."""
        diff = np.abs(original.astype(np.int16) - compressed.astype(np.int16))
        return diff.mean(axis=(1, 2, 3))

    register_metric("mean_abs", mean_abs, higher_is_better=False, replace=True)
    assert "mean_abs" in available_metrics()
    original, compressed = gifs
    result = validate_pair(original, compressed, metrics="mean_abs")
    frame = result.per_frame_frame()
    assert list(frame.columns) == ["compressed_frame", "mean_abs"]
    assert len(frame) == T and frame["mean_abs"].iloc[0] > 0


def test_dropped_frames_are_in_the_mapping_and_timing(gifs: tuple[Path, Path]) -> None:
    original, compressed = gifs
    result = validate_pair(original, compressed, metrics="psnr")
    # frames 0,1,2 -> kept 1,2 (frame 0 dropped) ... the mapping is monotonic and covers all
    assert (np.diff(result.mapping) >= 0).all() and result.mapping.max() == 9
    assert result.summaries["frame_count_change"] == pytest.approx(5 / 15)
    assert result.alignment["mode"] == "time"


def test_cli_validate_table_json_and_exit_codes(gifs: tuple[Path, Path], tmp_path: Path) -> None:
    original, compressed = gifs
    runner = CliRunner()
    same = runner.invoke(cli, ["validate", str(original), str(original), "--metrics", "ssim,psnr"])
    assert same.exit_code == 0, same.output
    assert "verdict: PASS" in same.output and "ssim" in same.output
    as_json = runner.invoke(
        cli,
        ["validate", str(original), str(compressed), "--metrics", "ssim,mse,ms_ssim", "--json"],
    )

    def strict_json(token: str) -> None:
        raise AssertionError(f"not strict JSON: {token}")

    # MS-SSIM has no value on 56x40 frames: null, never a bare NaN a strict parser rejects
    payload = json.loads(as_json.output, parse_constant=strict_json)
    assert payload["verdict"]["status"] in ("pass", "warn", "fail")
    assert "ssim_mean" in payload["summaries"]
    assert payload["summaries"]["ms_ssim_mean"] is None and "ms_ssim" in payload["missing"]
    strict = {"giflab.verdicts.profiles.harsh": {"ssim_mean": {"fail-below": 0.9999}}}
    with dask.config.set(strict):
        failed = runner.invoke(
            cli,
            ["validate", str(original), str(compressed), "--metrics", "ssim", "--profile", "harsh"],
        )
    assert failed.exit_code == 1 and "ssim_mean" in failed.output
    bad = tmp_path / "bad.gif"
    bad.write_bytes(b"GIF89a\x01")
    broken = runner.invoke(cli, ["validate", str(bad), str(original)])
    assert broken.exit_code == 2 and "bad.gif" in broken.output
    unknown = runner.invoke(cli, ["validate", str(original), str(original), "--metrics", "nope"])
    assert unknown.exit_code == 2 and "unknown metric 'nope'" in unknown.output


def test_missing_metric_never_passes_silently(tmp_path: Path) -> None:
    # 8x8 frames are too small for MS-SSIM's five scales: reported missing, never invented.
    small = write_pillow_gif(tmp_path / "small.gif", n_frames=3, size=(8, 8), noise=True)
    result = validate_pair(small, small, metrics="ms_ssim,ssim")
    assert "ms_ssim" in result.missing
    # the reason says what the metric needs and what these frames are
    assert "161x161" in result.missing["ms_ssim"] and "3 frames of 8x8" in result.missing["ms_ssim"]
    assert math.isnan(result.summaries["ms_ssim_mean"])


def test_numba_setting_changes_speed_not_values(
    gifs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giflab_dask.kernels import _numba

    calls = []
    monkeypatch.setattr(_numba, "sse", lambda a, b: calls.append(a.shape) or None)
    original, compressed = gifs
    results = {}
    for setting in ("off", "auto"):
        with dask.config.set({"giflab.kernels.numba": setting,
                              "giflab.cache-dir": str(tmp_path / setting)}):  # fmt: skip
            results[setting] = validate_pair(original, compressed, metrics="ssim,psnr,mse")
        # "off" reaches the squared-error kernels too; "auto" asks numba first
        assert bool(calls) is (setting == "auto"), setting
    np.testing.assert_allclose(
        results["off"].per_frame["ssim"], results["auto"].per_frame["ssim"], rtol=0, atol=1e-12
    )
    for name in ("psnr", "mse"):
        np.testing.assert_array_equal(
            results["off"].per_frame[name], results["auto"].per_frame[name]
        )
    with (
        dask.config.set({"giflab.kernels.numba": "sometimes"}),
        pytest.raises(Exception, match="auto, on or off"),
    ):
        validate_pair(original, compressed, metrics="ssim", use_cache=False)


# -- the batch graph's pair-metrics tasks (DESIGN decision 32) --------------------------------


def _transparent_gif(path: Path, n: int) -> Path:
    """Frames whose first palette index is transparent: alpha is stored and composited."""
    frames, palette = make_animation_frames(n, W, H, seed=5, delay_cs=4)
    hole = int(frames[0].indices[0, 0])
    gif_frames = [GifFrame(f.indices, transparency=hole, disposal=2, delay_cs=4) for f in frames]
    path.write_bytes(encode_gif(gif_frames, W, H, global_palette=palette))
    return path


def _scenario(name: str, gifs: tuple[Path, Path], root: Path) -> tuple[Path, Path]:
    from PIL import Image, ImageSequence

    original, compressed = gifs
    if name == "dropped frames":  # frames shown twice: repeated indices
        return original, compressed
    with Image.open(original) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    out = root / f"{name.replace(' ', '-')}.gif"
    if name == "more frames":  # 3 compressed frames per original frame: sparse reads
        many = [f.quantize(64) for f in frames for _ in range(3)]
        many[0].save(out, save_all=True, append_images=many[1:], duration=20, loop=0)
        return original, out
    if name == "repeats and gaps":  # time alignment repeats some frames and skips others
        varied = [f.quantize(48) for f in frames]
        durations = [(80, 20, 20, 40)[i % 4] for i in range(len(varied))]
        varied[0].save(out, save_all=True, append_images=varied[1:], duration=durations, loop=0)
        return original, out
    if name == "resized":
        small = [f.resize((W * 3 // 4, H * 3 // 4)).quantize(32) for f in frames]
        small[0].save(out, save_all=True, append_images=small[1:], duration=40, loop=0)
        return original, out
    assert name == "transparent"
    return _transparent_gif(out, T), compressed


@pytest.mark.parametrize(
    "scenario", ["dropped frames", "more frames", "repeats and gaps", "resized", "transparent"]
)
def test_pair_metrics_tasks_equal_the_lazy_array_path(
    scenario: str, gifs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every metric, per frame, bit for bit: pair-metrics tasks (all metrics of a chunk in one
    task, or one task per metric) give what the per-stage arrays (align(), then per_frame())
    give, whatever the chunking."""
    from giflab_dask.align import align
    from giflab_dask.framestore import decode_gif
    from giflab_dask.metrics import per_frame, resolve_metrics

    original, compressed = _scenario(scenario, gifs, tmp_path)
    for n in (1, 4, T):
        with dask.config.set({**with_chunk_frames(n), "giflab.cache-dir": str(tmp_path / str(n))}):
            pair = align(decode_gif(original), decode_gif(compressed))
            arrays = {k: v for s in resolve_metrics(None) for k, v in per_frame(s, pair).items()}
            (expected,) = dask.compute(arrays, scheduler="sync")
            for fuse_from in (0, 10**9):
                monkeypatch.setattr(build, "FUSE_FROM_TASKS", fuse_from)
                results = ResultStore(tmp_path / f"results-{n}-{fuse_from}")
                result = validate_pair(
                    original, compressed, metrics=None, scheduler="sync", results=results
                )
                assert set(result.per_frame) == set(expected)
                for name, values in expected.items():
                    np.testing.assert_array_equal(
                        result.per_frame[name], values, err_msg=f"{name}, {n} frames a chunk"
                    )


def test_alpha_is_read_only_when_the_decode_found_transparency(
    gifs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import giflab_dask.framestore.read as framestore

    opened: list[str] = []
    real = framestore.chunk_files  # where every frame read looks its array up

    def spy(entry: str, name: str):  # type: ignore[no-untyped-def]
        opened.append(name)
        return real(entry, name)

    monkeypatch.setattr(framestore, "chunk_files", spy)
    original, compressed = gifs
    validate_pair(original, compressed, metrics="psnr", scheduler="sync")
    assert opened and "alpha" not in opened
    opened.clear()
    transparent = _transparent_gif(tmp_path / "t.gif", T)
    result = validate_pair(transparent, compressed, metrics="psnr", scheduler="sync")
    assert "alpha" in opened and np.isfinite(result.summaries["psnr_mean"])


def test_repeated_frame_pairs_are_measured_once_with_the_same_values() -> None:
    """A pair held on screen in both GIFs (static stretches; one compressed frame shown beside
    several original frames) is measured once per run of repeats; every metric's values equal
    those of measuring every frame."""
    import skimage.data

    from giflab_dask.metrics import BoundMetric, measure_block, resolve_metrics

    photo = skimage.data.astronaut()
    frames = np.stack([photo[20 * i : 20 * i + 40, 30 * i : 30 * i + 48] for i in range(4)])
    rng = np.random.default_rng(5)
    lossy = np.clip(frames.astype(int) + rng.integers(-9, 10, frames.shape), 0, 255).astype(
        np.uint8
    )
    runs = [0, 0, 1, 1, 1, 2, 3, 3]  # held frames in both streams
    original, compressed = frames[runs], lossy[runs]
    compressed[6] = lossy[2]  # frame 6: same original as 5, another compressed frame
    seen: list[int] = []

    def spy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        seen.append(len(a))
        return a.reshape(len(a), -1).mean(axis=1) - b.reshape(len(b), -1).mean(axis=1)

    register_metric("spy_repeats", spy, replace=True)
    specs = [s for s in resolve_metrics(None) if not s.temporal]
    metrics = [BoundMetric.of(s) for s in [*specs, *resolve_metrics("spy_repeats")]]
    got = measure_block(metrics, original, compressed, previous=False)
    assert seen == [5]  # 8 frames, 5 distinct consecutive pairs
    for metric in metrics:
        spec = metric.spec
        expected = np.asarray(
            metric.kernel(original, compressed, **spec.params, **metric.runtime), dtype=float
        ).reshape(len(original), -1)
        np.testing.assert_array_equal(got[spec.name], expected, err_msg=spec.name)


def test_options_object_gives_what_the_keywords_give(
    gifs: tuple[Path, Path], tmp_path: Path
) -> None:
    from giflab_dask import ValidateOptions
    from giflab_dask.errors import GiflabError, UnknownMetricError
    from giflab_dask.inputs import PairInput
    from giflab_dask.pipeline import plan_batch

    original, compressed = gifs
    by_keywords = validate_pair(
        original, compressed, metrics="ssim,psnr", results=ResultStore(tmp_path / "a")
    )
    options = ValidateOptions.of(metrics="ssim,psnr", results=ResultStore(tmp_path / "b"))
    assert [s.name for s in options.metrics] == ["ssim", "psnr"]
    by_options = validate_pair(original, compressed, options=options)
    assert by_options.summaries == by_keywords.summaries
    np.testing.assert_array_equal(by_options.per_frame["ssim"], by_keywords.per_frame["ssim"])
    # the same options plan the same nodes: a second plan is all lookups
    plan = plan_batch([PairInput(1, str(original), str(compressed))], options=options)
    assert not plan.writes and plan.outcomes[0].hits == 2
    with pytest.raises(GiflabError, match="either options= or keywords"):
        plan_batch([], options=options, refresh=True)
    with pytest.raises(UnknownMetricError):  # eager: before any file is read
        ValidateOptions.of(metrics="no_such_metric")


def test_worker_tasks_import_without_the_planner() -> None:
    import subprocess
    import sys

    code = (
        "import sys, giflab_dask.graph.tasks\n"
        "assert 'giflab_dask.pipeline' not in sys.modules, sorted(sys.modules)\n"
        "assert 'giflab_dask.graph.build' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
