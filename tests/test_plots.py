"""Plots: figures carry the expected artists, from stored results only (nothing recomputed)."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest

from .conftest import REQUIRE_TOOLS

if REQUIRE_TOOLS:  # CI installs the test extra: a missing matplotlib is a failure there
    import matplotlib
else:
    matplotlib = pytest.importorskip("matplotlib", reason="pip install 'giflab-dask[test]'")
matplotlib.use("Agg")

from giflab_dask import plots  # noqa: E402
from giflab_dask.errors import GiflabError  # noqa: E402
from giflab_dask.framestore import FrameStore  # noqa: E402
from giflab_dask.inputs import collect_pairs  # noqa: E402
from giflab_dask.pipeline import validate_batch  # noqa: E402
from giflab_dask.results import batch_table  # noqa: E402
from giflab_dask.resultstore import ResultStore  # noqa: E402

METRICS = "ssim,psnr,deltae"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory):
    """One demo original with its three variants (8 frames), validated once for the module."""
    from giflab_dask.demo import write_demo_data

    root = tmp_path_factory.mktemp("plots")
    write_demo_data(root / "demo", n_originals=1, n_frames=8, size=(64, 48))
    with dask.config.set({"giflab.cache-dir": str(root / "cache")}):
        result = validate_batch(collect_pairs(root / "demo"), metrics=METRICS)
    table = batch_table(result.outcomes)
    stores = {
        "results": ResultStore(root / "cache" / "results"),
        "store": FrameStore(root / "cache" / "frames"),
    }
    return result, table, stores


def _pair(batch, variant: str):
    result, table, _ = batch
    index = int(np.flatnonzero(table["variant"].to_numpy() == variant)[0])
    return result.outcomes[index].result, table.iloc[index]


def _images(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


# -- helpers ----------------------------------------------------------------------------------


def test_dropped_frames_are_repeats_of_the_previous_compressed_frame() -> None:
    assert plots.dropped_frames([0, 0, 1, 1, 2, 3, 3]).tolist() == [1, 3, 6]
    assert plots.dropped_frames([0, 1, 2]).tolist() == []
    assert plots.dropped_frames([0]).tolist() == []
    assert plots.dropped_frames([]).tolist() == []


def test_pareto_front_keeps_only_undominated_points() -> None:
    x = [1.0, 2.0, 3.0, 2.5, 4.0, np.nan, 0.5]
    y = [0.9, 0.8, 0.5, 0.7, 0.5, 1.0, 0.85]
    # (2.5, 0.7) is beaten by nobody on both; (3, 0.5) is beaten by (4, 0.5) (same y, more x);
    # (0.5, 0.85) by (1, 0.9); NaN never counts.
    assert plots.pareto_front(x, y).tolist() == [0, 1, 3, 4]
    assert plots.pareto_front([], []).tolist() == []


def test_worst_frames_order_and_direction() -> None:
    values = [0.9, np.nan, 0.2, 0.5, 0.95]
    assert plots.worst_frames(values, 2).tolist() == [2, 3]
    assert plots.worst_frames(values, 2, higher_is_better=False).tolist() == [4, 0]
    assert plots.worst_frames(values, 10).tolist() == [2, 3, 0, 4]  # NaN frames never shown


# -- per-frame curves -------------------------------------------------------------------------


def test_per_frame_curves_one_line_per_metric_and_dropped_frames(batch) -> None:
    result, _ = _pair(batch, "frames-50")
    fig = plots.plot_per_frame(result)
    assert len(fig.axes) == 3
    gids = [[line.get_gid() for line in ax.get_lines()] for ax in fig.axes]
    assert gids == [["metric:ssim"], ["metric:psnr"], ["metric:deltae_mean"]]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), result.per_frame["ssim"])
    # frames-50 keeps every second frame: originals 1, 3, 5, 7 repeat the previous compressed one.
    expected = plots.dropped_frames(result.mapping)
    assert expected.tolist() == [1, 3, 5, 7]
    for ax in fig.axes:
        (marks,) = [c for c in ax.collections if c.get_gid() == "dropped-frames"]
        xs = sorted(seg[0][0] for seg in marks.get_segments())
        assert xs == expected.tolist()


def test_per_frame_curves_no_marks_when_nothing_dropped(batch) -> None:
    result, _ = _pair(batch, "colors-32")
    fig = plots.plot_per_frame(result, ["ssim"])
    assert len(fig.axes) == 1
    assert not [c for c in fig.axes[0].collections if c.get_gid() == "dropped-frames"]


def test_per_frame_curves_from_a_table_row_read_the_result_store(batch, monkeypatch) -> None:
    result, row = _pair(batch, "colors-8")
    stores = batch[2]

    def no_kernels(*args, **kwargs):
        raise AssertionError("plotting must not compute a metric")

    monkeypatch.setattr("giflab_dask.metrics.MetricSpec.resolve_kernel", no_kernels)
    monkeypatch.setattr("giflab_dask.metrics.per_frame", no_kernels)
    # metric names resolve to their first output (deltae -> deltae_mean)
    fig = plots.plot_per_frame(row, "ssim,deltae", run_metrics=METRICS, results=stores["results"])
    assert [ax.get_lines()[0].get_gid() for ax in fig.axes] == ["metric:ssim", "metric:deltae_mean"]
    np.testing.assert_allclose(
        fig.axes[1].get_lines()[0].get_ydata(), result.per_frame["deltae_mean"]
    )
    assert "colors-8" in fig.get_suptitle() and "fail" in fig.get_suptitle()


def test_per_frame_curves_unknown_metric_names_what_is_stored(batch) -> None:
    result, _ = _pair(batch, "colors-8")
    with pytest.raises(GiflabError, match=r"no per-frame values for 'fsim'.*ssim"):
        plots.plot_per_frame(result, ["fsim"])
    with pytest.raises(GiflabError, match="cannot plot a int"):
        plots.plot_per_frame(3)
    error_row = {"row": 9, "original_key": float("nan"), "compressed_key": None, "error": "boom"}
    with pytest.raises(GiflabError, match=r"row 9 has no content keys \(error: boom\)"):
        plots.plot_per_frame(error_row)


# -- batch plots ------------------------------------------------------------------------------


def test_distributions_one_histogram_per_variant_with_thresholds(batch) -> None:
    _, table, _ = batch
    fig = plots.plot_distributions(table, ["ssim_mean", "composite_quality"])
    assert len(fig.axes) == 2
    for ax in fig.axes:
        groups = {p.get_gid() for p in ax.patches}
        assert groups == {"group:colors-32", "group:colors-8", "group:frames-50"}
    thresholds = {line.get_gid() for line in fig.axes[0].get_lines()}
    assert thresholds == {"threshold:fail-below", "threshold:warn-below"}  # default profile


def test_distributions_without_a_variant_column_is_one_group(batch) -> None:
    _, table, _ = batch
    fig = plots.plot_distributions(table.drop(columns="variant"), "ssim_mean", profile="lenient")
    (ax,) = fig.axes
    assert {p.get_gid() for p in ax.patches} == {"group:all pairs"}
    assert not ax.get_lines()  # the lenient profile has no ssim_mean threshold
    with pytest.raises(GiflabError, match="no column"):
        plots.plot_distributions(table, "fsim_mean")


def test_size_quality_points_per_variant_and_pareto_line(batch) -> None:
    _, table, _ = batch
    fig = plots.plot_size_quality(table)
    assert len(fig.axes) == 2
    for ax, column in zip(fig.axes, ["ssim_mean", "composite_quality"], strict=True):
        points = {c.get_gid(): c for c in ax.collections}
        assert set(points) == {"group:colors-32", "group:colors-8", "group:frames-50"}
        for variant, collection in points.items():
            part = table[table["variant"] == variant.removeprefix("group:")]
            np.testing.assert_allclose(
                collection.get_offsets(), part[["compression_ratio", column]].to_numpy()
            )
        (pareto,) = [line for line in ax.get_lines() if line.get_gid() == "pareto"]
        front = plots.pareto_front(table["compression_ratio"], table[column])
        np.testing.assert_allclose(pareto.get_xdata(), table["compression_ratio"].iloc[front])


# -- worst frames -----------------------------------------------------------------------------


def test_worst_frames_k_rows_of_three_images_from_the_frame_store(batch) -> None:
    result, _ = _pair(batch, "frames-50")
    store = batch[2]["store"]
    fig = plots.plot_worst_frames(result, k=2, metric="ssim", store=store)
    axes = _images(fig)
    assert len(axes) == 6
    rows = [axes[i : i + 3] for i in range(0, 6, 3)]
    worst = plots.worst_frames(result.per_frame["ssim"], 2)
    original = store.open(result.original_key).frames()
    compressed = store.open(result.compressed_key).frames()
    for r, row_axes in enumerate(rows):
        images = [ax.get_images()[0] for ax in row_axes]
        assert [im.get_gid() for im in images] == ["original", "compressed", "difference"]
        i = int(worst[r])
        o = original[i].compute()
        c = compressed[int(result.mapping[i])].compute()
        np.testing.assert_array_equal(images[0].get_array(), o)
        np.testing.assert_array_equal(images[1].get_array(), c)
        np.testing.assert_allclose(
            images[2].get_array(), np.abs(o.astype(int) - c.astype(int)).mean(axis=-1)
        )
        assert f"#{i}" in row_axes[0].get_title()
    assert len(fig.axes) == 7  # plus one shared colour bar


def test_worst_frames_from_a_row_and_k_larger_than_the_gif(batch) -> None:
    _, row = _pair(batch, "colors-8")
    stores = batch[2]
    fig = plots.plot_worst_frames(row, k=50, metric="deltae", run_metrics=METRICS, **stores)
    assert len(_images(fig)) == 3 * 8  # every measured frame, once


def test_worst_frames_missing_from_the_frame_store_says_so(batch, tmp_path: Path) -> None:
    result, _ = _pair(batch, "colors-8")
    with pytest.raises(GiflabError, match="not in the frame store"):
        plots.plot_worst_frames(result, store=FrameStore(tmp_path / "empty"))
