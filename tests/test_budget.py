"""Bounded work (issue 21, item 2; DESIGN decision 50): a memory budget per task, off-screen
pixels never decoded, a time limit per pair, and the pipeline's per-frame cost on tiny frames."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pytest

from giflab_dask import budget
from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.errors import ConfigError, GiflabError, GifLimitError, MemoryBudgetError
from giflab_dask.framestore import open_frame_store, read_frames
from giflab_dask.inputs import PairInput
from giflab_dask.metrics import BoundMetric, measure_block, register_metric, resolve_metrics
from giflab_dask.pipeline import validate_batch, validate_pair
from giflab_dask.testing import (
    GifFrame,
    encode_gif,
    encode_solid_gif,
    lzw_encode,
    solid_lzw,
    solid_palette,
    write_gif,
)

REPO = Path(__file__).resolve().parents[1]


def _child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; its last line of output is JSON, to which the
    child's peak RSS (VmHWM, bytes) is added."""
    wrapper = code + textwrap.dedent(
        """
        with open("/proc/self/status") as f:
            peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
        print(json.dumps({**RESULT, "peak": peak}))
        """
    )
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- test GIFs: solid frames of any size, without a pixel array -----------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 4000, 7_400_000])
def test_solid_lzw_is_lzw_encode_of_a_constant_stream(n: int) -> None:
    assert solid_lzw(3, n, 2) == lzw_encode(bytes([3]) * n, 2)


def test_a_solid_gif_decodes_to_its_colour(tmp_path: Path) -> None:
    path = tmp_path / "solid.gif"
    path.write_bytes(encode_solid_gif((50, 40), (50, 40), 2, value=2))
    frames = [rgb.copy() for rgb, _ in iter_frames(path)]
    assert len(frames) == 2
    assert (frames[1] == [0, 255, 0]).all()


# -- (b) off-screen pixels ------------------------------------------------------------------


def _offscreen_reference(
    indices: np.ndarray, palette: np.ndarray, left: int, top: int, screen: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The screen (RGB, alpha) after drawing one opaque frame: plain numpy, the whole frame
    drawn on a canvas large enough, then cropped. What no frame covers is transparent: (0, 0,
    0) with alpha 0 (decision 46)."""
    w, h = screen
    rgb = np.zeros((h + indices.shape[0] + top, w + indices.shape[1] + left, 3), np.uint8)
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    rgb[top : top + indices.shape[0], left : left + indices.shape[1]] = palette[indices]
    alpha[top : top + indices.shape[0], left : left + indices.shape[1]] = 255
    return rgb[:h, :w], alpha[:h, :w]


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("where", [(0, 0), (5, 3), (15, 11), (0, 10), (3, 0)])
def test_frames_past_the_screen_are_cropped_exactly(
    tmp_path: Path, interlace: bool, where: tuple[int, int]
) -> None:
    rng = np.random.default_rng(1)
    palette = solid_palette(16, seed=2)
    indices = rng.integers(0, 16, (37, 41), dtype=np.uint8)
    path = write_gif(
        tmp_path / "big.gif",
        [GifFrame(indices, left=where[0], top=where[1], interlace=interlace)],
        16, 12, global_palette=palette,
    )  # fmt: skip
    ((rgb, alpha),) = [(rgb.copy(), a.copy()) for rgb, a in iter_frames(path)]
    want_rgb, want_alpha = _offscreen_reference(indices, palette, *where, (16, 12))
    np.testing.assert_array_equal(rgb, want_rgb)
    np.testing.assert_array_equal(alpha, want_alpha)


@pytest.mark.parametrize("interlace", [False, True])
def test_off_screen_rows_are_never_decoded(tmp_path: Path, monkeypatch, interlace: bool) -> None:
    from giflab_dask import decode

    shapes = []
    real = decode._decode_indices

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(decode, "_decode_indices", spy)
    path = tmp_path / "wide.gif"
    frames = encode_solid_gif((1, 1), (9459, 9459), 3, interlace=interlace)
    # a fourth frame wholly off the screen: nothing of it is decoded
    off = encode_solid_gif((1, 1), (500, 500), 1, left=10, top=10)
    path.write_bytes(frames[:-1] + off[off.index(b"\x21\xf9") :])
    out = [rgb.copy() for rgb, _ in iter_frames(path)]
    assert len(out) == 4
    assert shapes == [(1, 9459)] * 3  # one row each; the off-screen frame not at all
    assert (out[0] == [255, 0, 0]).all()


def test_decoded_bytes_count_what_decoding_produces(tmp_path: Path) -> None:
    path = tmp_path / "wide.gif"
    path.write_bytes(encode_solid_gif((1, 1), (9459, 9459), 10))
    produced = 10 * (1 * 1 * 3 + 9459 * 1)  # the 1x1 frames, one row of indices per frame
    with dask.config.set({"giflab.limits.max-decoded-bytes": produced}):
        assert scan_gif(path).n_frames == 10
    with (
        dask.config.set({"giflab.limits.max-decoded-bytes": produced - 1}),
        pytest.raises(GifLimitError, match="decoded size"),
    ):
        scan_gif(path)
    # Two rows of an interlaced frame: its stream up to row 1, in the fourth pass, is decoded.
    path.write_bytes(encode_solid_gif((1, 2), (9459, 9459), 10, interlace=True))
    stream = len(range(0, 9459, 8)) + len(range(4, 9459, 8)) + len(range(2, 9459, 4)) + 1
    produced = 10 * (1 * 2 * 3 + 9459 * stream)
    with dask.config.set({"giflab.limits.max-decoded-bytes": produced}):
        assert scan_gif(path).n_frames == 10
    with (
        dask.config.set({"giflab.limits.max-decoded-bytes": produced - 1}),
        pytest.raises(GifLimitError, match="decoded size"),
    ):
        scan_gif(path)


# -- (a) memory budget ----------------------------------------------------------------------


def test_budget_config_is_checked_eagerly() -> None:
    with dask.config.set({"giflab.limits.memory-budget": "25%"}):
        assert budget.memory_budget() == int(0.25 * budget.machine_memory())
    with dask.config.set({"giflab.limits.memory-budget": "3 GB"}):
        assert budget.memory_budget() == 3_000_000_000
    with dask.config.set({"giflab.limits.memory-budget": None}):
        assert budget.memory_budget() is None
    for bad in ("150%", "x%", "lots", 0, -5):
        with (
            dask.config.set({"giflab.limits.memory-budget": bad}),
            pytest.raises(ConfigError, match="memory-budget"),
        ):
            budget.memory_budget()
    for bad in (0, -1, "soon"):
        with (
            dask.config.set({"giflab.limits.max-pair-seconds": bad}),
            pytest.raises(ConfigError, match="max-pair-seconds"),
        ):
            budget.max_pair_seconds()


_HUGE_PAIR = """
import json, sys, time
from pathlib import Path
import dask
from giflab_dask.inputs import PairInput
from giflab_dask.keys import gif_key
from giflab_dask.pipeline import validate_batch
from giflab_dask.testing import encode_solid_gif
root = Path(sys.argv[1])
for name, value in (("o", 1), ("c", 2)):
    (root / f"{name}.gif").write_bytes(encode_solid_gif((9459, 9459), (9459, 9459), value=value))
(root / "small_o.gif").write_bytes(encode_solid_gif((64, 48), (64, 48), 3, value=1))
(root / "small_c.gif").write_bytes(encode_solid_gif((64, 48), (64, 48), 3, value=3))
pairs = [PairInput(1, str(root / "o.gif"), str(root / "c.gif")),
         PairInput(2, str(root / "small_o.gif"), str(root / "small_c.gif"))]
with dask.config.set({"giflab.cache-dir": str(root / "cache"),
                      "giflab.limits.memory-budget": "6 GB"}):
    result = validate_batch(pairs, scheduler="threads")
frames = root / "cache" / "frames"
RESULT = {
    "errors": [o.error for o in result.outcomes],
    "statuses": [o.result.status if o.result else None for o in result.outcomes],
    "stored": sorted(p.name for p in frames.iterdir()) if frames.exists() else [],
    "keys": [gif_key(root / n) for n in ("o.gif", "c.gif", "small_o.gif", "small_c.gif")],
    "decode_tasks": result.stats["decode_tasks"],
}
"""


def test_a_pair_that_cannot_fit_is_refused_before_any_decode(tmp_path: Path) -> None:
    """Two one-frame 9459x9459 GIFs (inside max-frame-pixels; OOM-killed at 23 GiB before):
    at a 6 GB budget (the default set's estimate is ~12 GB) the pair is an error row naming
    the budget and the hungriest metric, nothing of it is decoded, and the batch's other pair
    finishes."""
    got = _child(_HUGE_PAIR, str(tmp_path))
    error, small = got["errors"]
    hungriest = max((s for s in resolve_metrics(None)), key=budget.kernel_bytes_per_pixel).name
    assert error is not None and "memory-budget" in error and hungriest in error
    assert "c.gif vs" in error
    assert small is None and got["statuses"][1] in ("pass", "warn", "fail")
    big, small_keys = got["keys"][:2], got["keys"][2:]
    assert not any(key in name for key in big for name in got["stored"])  # nothing decoded
    assert all(any(key in name for name in got["stored"]) for key in small_keys)
    assert got["decode_tasks"] == 2  # the run counts only the decodes it ran
    # One 9459x9459 RGB frame alone is 268 MB; the whole child stayed well under it.
    assert got["peak"] < 400 * 2**20, got["peak"] / 2**20


_MEASURED = """
import json, sys
from pathlib import Path
import dask
import numpy as np
from giflab_dask import budget
from giflab_dask.testing import GifFrame, write_gif
from giflab_dask.metrics import resolve_metrics
from giflab_dask.pipeline import validate_pair
size, names = int(sys.argv[2]), sys.argv[3]
root = Path(sys.argv[1])
ramp = (np.add.outer(np.arange(size), np.arange(size)) * 255 // (2 * size)).astype(np.uint8)
noisy = np.where(np.random.default_rng(0).random((size, size)) < 0.05, 7, ramp).astype(np.uint8)
grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
for name, idx in (("o", ramp), ("c", noisy)):
    write_gif(root / f"{name}.gif", [GifFrame(idx)] * 2, size, size, global_palette=grey)
    write_gif(root / f"w{name}.gif", [GifFrame(idx[:192, :192])] * 2, 192, 192,
              global_palette=grey)
with dask.config.set({"giflab.cache-dir": str(root / "cache")}):
    validate_pair(root / "o.gif", root / "c.gif", metrics=["mse"], use_cache=False,
                  scheduler="sync")  # decodes outside the peak
    # the measured kernels' imports and numba compiles (or cache loads) outside the peak too
    validate_pair(root / "wo.gif", root / "wc.gif", metrics=names, use_cache=False,
                  scheduler="sync")
    specs = resolve_metrics(names)
    estimate = budget.pair_task_bytes(specs, frames=2, original=(size, size),
                                      compressed=(size, size), size=(size, size), alpha=False)
    with open("/proc/self/status") as f:
        before = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    validate_pair(root / "o.gif", root / "c.gif", metrics=names, use_cache=False,
                  scheduler="sync")
RESULT = {"estimate": estimate, "before": before}
"""


def test_the_estimate_bounds_a_measured_task(tmp_path: Path) -> None:
    """The estimate of a pair-metrics task is at least the peak RSS rise it causes (the
    hungriest kernels, frames of 1024x1024). Not deltae: its figure is its worst case, every
    pixel a new colour pair (noise, as test_no_kernel_needs_more_than_its_figure measures),
    which frames of a GIF's palettes do not reach, so this pair would only show the estimate
    loose."""
    got = _child(_MEASURED, str(tmp_path), "1024", "ms_ssim,banding,fsim")
    rise = got["peak"] - got["before"]
    assert rise > 0
    assert got["estimate"] >= rise, (got["estimate"] / 2**20, rise / 2**20)
    assert got["estimate"] < 3 * rise  # and not so loose that it refuses what would fit


_DECODED = """
import json, sys
from pathlib import Path
import numpy as np
from giflab_dask import budget
from giflab_dask.decode import scan_gif
from giflab_dask.framestore import FrameStore
from giflab_dask.testing import GifFrame, encode_solid_gif, solid_palette, write_gif
root = Path(sys.argv[1])
rng = np.random.default_rng(0)
frames = [GifFrame(rng.integers(0, 4, (1024, 1024), dtype=np.uint8), transparency=0,
                   disposal=3 if i % 2 else 1) for i in range(6)]
path = write_gif(root / "a.gif", frames, 1024, 1024, global_palette=solid_palette(4))
store = FrameStore(root / "cache")
(root / "warm.gif").write_bytes(encode_solid_gif((8, 8), (8, 8), 2))
store.ensure(root / "warm.gif")  # imports and numba's load outside the peak
estimate = budget.decode_bytes(scan_gif(path))
with open("/proc/self/status") as f:
    before = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
store.ensure(path)
RESULT = {"estimate": estimate, "before": before}
"""


def test_the_decode_estimate_bounds_a_measured_decode(tmp_path: Path) -> None:
    """Transparency and disposal 3 (alpha chunks and a saved copy of the canvas), frames of
    1024x1024, two per chunk."""
    got = _child(_DECODED, str(tmp_path))
    rise = got["peak"] - got["before"]
    assert 0 < rise <= got["estimate"] < 3 * rise, (got["estimate"] / 2**20, rise / 2**20)


_KERNELS = """
import ctypes, json, sys
import numpy as np
from giflab_dask import budget
from giflab_dask.metrics import BoundMetric, get_metric, measure_block

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))

size = int(sys.argv[1])
rng = np.random.default_rng(0)
libc = ctypes.CDLL("libc.so.6")

def block(t, s):
    o = rng.integers(0, 256, (t, s, s, 3), dtype=np.uint8)
    o[:, : s // 2] = np.linspace(0, 255, s, dtype=np.uint8)[None, None, :, None]
    c = np.clip(o.astype(np.int16) + rng.integers(-6, 7, o.shape), 0, 255).astype(np.uint8)
    return o, c

per_pixel = {}
for name in budget.BYTES_PER_PIXEL:
    metric = BoundMetric.of(get_metric(name))
    # one frame measured; a temporal kernel gets the frame before it too
    previous = metric.spec.temporal
    measure_block([metric], *block(1 + previous, 200), previous=previous)  # imports, numba
    o, c = block(1 + previous, size)
    libc.malloc_trim(0)  # what earlier kernels freed must not be counted as free room
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    measure_block([metric], o, c, previous=previous)
    per_pixel[name] = (status("VmHWM:") - before) / (size * size)
    del o, c
RESULT = {"per_pixel": per_pixel}
"""


def test_no_kernel_needs_more_than_its_figure() -> None:
    """Each built-in kernel's peak-RSS rise per pixel of one frame stays within
    ``BYTES_PER_PIXEL`` and its margin: a kernel changed to use more memory fails here (then
    re-measure with benchmarks/bench_budget.py and update the table)."""
    got = _child(_KERNELS, "1024")["per_pixel"]
    over = {
        name: round(value, 1)
        for name, value in got.items()
        if value > budget.BYTES_PER_PIXEL[name] * budget.MARGIN + 2  # 2: page granularity
    }
    assert not over, over


def test_a_small_budget_refuses_the_hungry_metric_set_only(gif_pair) -> None:
    original, compressed = gif_pair
    with dask.config.set({"giflab.limits.memory-budget": "800 kB"}):
        # validate_pair raises a batch row's error as a GiflabError
        with pytest.raises(GiflabError, match=r"memory-budget = .*\(deltae, 106 bytes"):
            validate_pair(original, compressed, metrics=["deltae", "mse"])
        result = validate_pair(original, compressed, metrics=["mse"])
    assert np.isfinite(result.summaries["mse_mean"])


def test_tasks_reserve_their_memory_and_wait_for_each_other() -> None:
    inside, peak, lock = [0], [0], threading.Lock()

    def task() -> None:
        with budget.reserve(60, 100):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=task) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1  # 60 + 60 > 100: never two at once
    # First come, first served: a large task waiting is not overtaken by small ones that fit.
    order: list[str] = []

    def hold(name: str, nbytes: int, seconds: float) -> None:
        with budget.reserve(nbytes, 100):
            order.append(name)
            time.sleep(seconds)

    first = threading.Thread(target=hold, args=("small-1", 30, 0.3))
    first.start()
    time.sleep(0.05)
    large = threading.Thread(target=hold, args=("large", 90, 0.0))
    large.start()
    time.sleep(0.05)
    small = threading.Thread(target=hold, args=("small-2", 30, 0.0))  # would fit beside small-1
    small.start()
    for t in (first, large, small):
        t.join()
    assert order == ["small-1", "large", "small-2"]
    # A task interrupted while waiting gives up its turn: the ones after it still run.
    reservations, order = budget._Reservations(), []

    def take(name: str, seconds: float) -> None:
        with reservations.reserve(60, 100):
            order.append(name)
            time.sleep(seconds)

    running = threading.Thread(target=take, args=("running", 0.3))
    running.start()
    time.sleep(0.05)
    waiting = threading.Thread(target=take, args=("waiting", 0.0))
    waiting.start()
    time.sleep(0.05)
    real_wait = reservations.cond.wait_for

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    reservations.cond.wait_for = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt), reservations.reserve(60, 100):
        pass
    reservations.cond.wait_for = real_wait  # type: ignore[method-assign]
    later = threading.Thread(target=take, args=("later", 0.0))
    later.start()
    for t in (running, waiting, later):
        t.join(10)
    assert order == ["running", "waiting", "later"] and reservations.in_use == 0
    with pytest.raises(MemoryBudgetError, match="more than"), budget.reserve(101, 100):
        pass
    with budget.reserve(10**15, None):  # no budget: no reservation
        pass


# -- (d) time limit per pair ----------------------------------------------------------------


def test_grouped_measurement_equals_one_call(gif_pair) -> None:
    """The clock is read between groups of frames; values are those of one call."""
    original, _ = gif_pair
    store = open_frame_store()
    entry = store.ensure(original)
    frames = read_frames(str(entry.path), "frames", slice(0, entry.n_frames))
    other = frames[::-1].copy()
    metrics = [BoundMetric.of(s) for s in resolve_metrics("ssim,temporal_consistency,chist")]
    limits = budget.TaskLimits(pair="x", max_seconds=1e9, group_pixels=3 * frames[0, ..., 0].size)
    for previous in (False, True):
        whole = measure_block(metrics, frames, other, previous=previous)
        grouped = budget.measure_in_groups(
            metrics, frames, other, previous=previous, clock=budget.PairClock(limits)
        )
        for name in whole:
            np.testing.assert_array_equal(grouped[name], whole[name])


def test_a_pair_over_its_time_limit_is_an_error_row(tmp_path: Path) -> None:
    calls: list[int] = []

    def slow(original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
        calls.append(len(original))
        time.sleep(0.2)
        return np.zeros(len(original))

    register_metric("slow_metric", slow, replace=True)
    rng = np.random.default_rng(0)
    palette = solid_palette(8)

    def gif(name: str, n: int) -> str:
        frames = [GifFrame(rng.integers(0, 8, (32, 32), dtype=np.uint8)) for _ in range(n)]
        return str(write_gif(tmp_path / name, frames, 32, 32, global_palette=palette))

    pairs = [PairInput(1, gif("long.gif", 30), gif("long_c.gif", 30)),
             PairInput(2, gif("short.gif", 1), gif("short_c.gif", 1))]  # fmt: skip
    # One frame per chunk: 30 tasks of 0.2 s for the long pair.
    config = {"giflab.limits.max-pair-seconds": 1.0, "giflab.framestore.chunk-mib": 0.003}
    with dask.config.set(config):
        result = validate_batch(pairs, metrics=["slow_metric"], scheduler="threads")
    long, short = result.outcomes
    assert long.error is not None and "max-pair-seconds" in long.error
    assert "long_c.gif vs" in long.error
    assert short.error is None and short.result is not None
    assert len(calls) < 20  # the long pair stopped well before its 30 kernel calls


# -- (c) tiny frames ------------------------------------------------------------------------


def test_tiny_frames_cost_the_pipeline_little_beyond_their_kernels(tmp_path: Path) -> None:
    """3000 frames of 16x16: the whole pipeline (plan, read, align, measure, summarise, store)
    against the kernels alone on the same frames, measured side by side. Time chunks hold
    10922 such frames, so the pipeline adds a fixed cost per pair, not per frame (the
    per-frame cost of tiny frames is the kernels' own loops; benchmarks/README.md)."""
    rng = np.random.default_rng(0)
    palette = solid_palette(16)
    frames = [GifFrame(rng.integers(0, 16, (16, 16), dtype=np.uint8)) for _ in range(3000)]
    noisy = [GifFrame(np.where(rng.random((16, 16)) < 0.1, 0, f.indices).astype(np.uint8))
             for f in frames]  # fmt: skip
    o = write_gif(tmp_path / "o.gif", frames, 16, 16, global_palette=palette)
    c = write_gif(tmp_path / "c.gif", noisy, 16, 16, global_palette=palette)
    store = open_frame_store()
    o_rgb = read_frames(str(store.ensure(o).path), "frames", slice(None))
    c_rgb = read_frames(str(store.ensure(c).path), "frames", slice(None))
    names = "gmsd,chist,sharpness_similarity"
    metrics = [BoundMetric.of(s) for s in resolve_metrics(names)]
    measure_block(metrics, o_rgb[:4], c_rgb[:4], previous=False)  # warm
    kernels, pipeline = [], []
    for _ in range(3):
        started = time.perf_counter()
        measure_block(metrics, o_rgb, c_rgb, previous=False)
        kernels.append(time.perf_counter() - started)
        started = time.perf_counter()
        with dask.config.set({"giflab.limits.max-pair-seconds": 3600}):
            validate_pair(o, c, metrics=names, use_cache=False, scheduler="sync")
        pipeline.append(time.perf_counter() - started)
    assert min(pipeline) / min(kernels) < 1.5, (pipeline, kernels)


@pytest.fixture
def gif_pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    palette = solid_palette(32, seed=1)
    frames = [GifFrame(rng.integers(0, 32, (60, 80), dtype=np.uint8)) for _ in range(6)]
    o = tmp_path / "o.gif"
    o.write_bytes(encode_gif(frames, 80, 60, global_palette=palette))
    altered = [GifFrame(np.where(rng.random((60, 80)) < 0.1, 1, f.indices).astype(np.uint8))
               for f in frames]  # fmt: skip
    c = tmp_path / "c.gif"
    c.write_bytes(encode_gif(altered, 80, 60, global_palette=palette))
    return o, c
