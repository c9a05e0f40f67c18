"""Hardening, round 2 (issue 21 items 1, 4, 9, 10): no verdict from a failed measurement,
only regular files read, manifests read exactly as written or refused, small input edges."""

from __future__ import annotations

import csv
import errno
import functools
import json
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest
from click.testing import CliRunner

import giflab_dask.keys as keys
from giflab_dask.cli import cli
from giflab_dask.decode import iter_frames, scan_gif
from giflab_dask.errors import GifDecodeError, GifLimitError, MeasurementError
from giflab_dask.inputs import BatchInputError, PairInput, read_manifest
from giflab_dask.kernels import structural
from giflab_dask.pipeline import plan_batch, validate_batch, validate_pair
from giflab_dask.results import batch_table, load_results, write_table
from giflab_dask.resultstore import ResultStore
from giflab_dask.testing import lzw_encode, make_animation

METRICS = ["mse", "ssim", "gmsd"]


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of hanging the suite) if the test blocks for 60 s."""

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError("blocked: a non-regular file was read")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _pairs(tmp_path: Path) -> list[PairInput]:
    """Three pairs; the second one's frames (40x30) are the fault-injection target."""
    pairs = []
    for row, (w, h, seed) in enumerate([(32, 24, 1), (40, 30, 2), (32, 24, 3)], start=1):
        original, compressed = tmp_path / f"o{row}.gif", tmp_path / f"c{row}.gif"
        original.write_bytes(make_animation(6, w, h, seed=seed))
        compressed.write_bytes(make_animation(6, w, h, seed=seed, moving_box=False))
        pairs.append(PairInput(row, str(original), str(compressed)))
    return pairs


def _verdicts(outcomes: list) -> list[tuple[str | None, float | None]]:
    return [
        (o.result.status, o.result.summaries["composite_quality"]) if o.result else (None, None)
        for o in outcomes
    ]


# -- item 1: a metric that fails at run time gives no verdict, and is retried ---------------


def test_a_kernel_out_of_memory_makes_its_pair_an_error_and_the_rerun_computes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _pairs(tmp_path)
    reference = validate_batch(
        pairs, metrics=METRICS, results=ResultStore(tmp_path / "ref"), scheduler="sync"
    )
    assert reference.counts()["error"] == 0
    real = structural.ssim

    @functools.wraps(real)
    def short_of_memory(original: np.ndarray, compressed: np.ndarray, **kw: object) -> object:
        if original.shape[1:3] == (30, 40):
            raise MemoryError
        return real(original, compressed, **kw)

    monkeypatch.setattr(structural, "ssim", short_of_memory)
    results = ResultStore(tmp_path / "results")
    failed = validate_batch(pairs, metrics=METRICS, results=results, scheduler="sync")
    target = failed.outcomes[1]
    assert target.result is None and target.failed == {"ssim": "MemoryError"}
    assert "ssim: MemoryError" in target.error and "next run" in target.error
    expected = reference.counts()
    expected[reference.outcomes[1].result.status] -= 1
    assert failed.counts() == {**expected, "error": 1}
    others = [0, 2]
    assert [_verdicts(failed.outcomes)[i] for i in others] == [
        _verdicts(reference.outcomes)[i] for i in others
    ]
    assert batch_table(failed.outcomes).loc[1, "verdict"] == "error"

    monkeypatch.setattr(structural, "ssim", real)
    rerun = plan_batch(pairs, metrics=METRICS, results=results)
    assert rerun.n_metric_tasks == 1  # only the failed metric of the failed pair
    again = rerun.compute(scheduler="sync")
    assert again.counts() == reference.counts()
    assert _verdicts(again.outcomes) == _verdicts(reference.outcomes)


def test_a_node_write_failing_with_enospc_makes_its_pair_an_error_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _pairs(tmp_path)
    results = ResultStore(tmp_path / "results")
    plan = plan_batch(pairs, metrics=METRICS, results=results)
    full = plan.outcomes[1].metric_keys["gmsd"]
    real_put = ResultStore.put

    def put(self: ResultStore, key: str, kind: str, data: dict) -> None:
        if key == full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_put(self, key, kind, data)

    monkeypatch.setattr(ResultStore, "put", put)
    done = plan.compute(scheduler="sync")
    target = done.outcomes[1]
    assert target.result is None and list(target.failed) == ["gmsd"]
    assert "No space left on device" in target.error and "gmsd" in target.error
    assert [o.error for o in done.outcomes] == [None, target.error, None]
    assert results.get(full) is None  # nothing half-written is read back
    monkeypatch.setattr(ResultStore, "put", real_put)
    again = plan_batch(pairs, metrics=METRICS, results=results)
    assert again.n_metric_tasks == 1
    assert again.compute(scheduler="sync").counts()["error"] == 0


def test_validate_exits_1_naming_the_failed_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = _pairs(tmp_path)[1]
    real = structural.ssim

    @functools.wraps(real)
    def broken(original: np.ndarray, compressed: np.ndarray, **kw: object) -> object:
        raise MemoryError("cannot allocate 12 GiB")

    monkeypatch.setattr(structural, "ssim", broken)
    with pytest.raises(MeasurementError, match="ssim: MemoryError: cannot allocate 12 GiB"):
        validate_pair(pair.original, pair.compressed, metrics=METRICS, scheduler="sync")
    out = CliRunner().invoke(
        cli, ["validate", pair.original, pair.compressed, "--metrics", ",".join(METRICS)]
    )
    assert out.exit_code == 1, out.output
    assert "ssim: MemoryError: cannot allocate 12 GiB" in out.output
    assert "verdict:" not in out.output


def test_batch_prints_the_failed_pair_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _pairs(tmp_path)
    manifest = _manifest(tmp_path, [(p.original, p.compressed) for p in pairs])
    real = structural.ssim

    @functools.wraps(real)
    def short_of_memory(original: np.ndarray, compressed: np.ndarray, **kw: object) -> object:
        if original.shape[1:3] == (30, 40):
            raise MemoryError
        return real(original, compressed, **kw)

    monkeypatch.setattr(structural, "ssim", short_of_memory)
    out_csv = tmp_path / "out.csv"
    args = ["batch", str(manifest), "--out", str(out_csv), "--metrics", ",".join(METRICS)]
    out = CliRunner().invoke(cli, [*args, "--no-progress", "--scheduler", "sync"])
    assert out.exit_code == 1, out.output
    assert "row 2: metric failed, no verdict" in out.output and "ssim: MemoryError" in out.output
    table = load_results(out_csv)
    assert table["verdict"].tolist()[1] == "error"
    assert table["verdict"].tolist()[0] != "error" and table["verdict"].tolist()[2] != "error"


def test_a_metric_missing_by_nature_still_gets_a_verdict(tmp_path: Path) -> None:
    # 4x4 frames: SSIM and GMSD are NaN on every frame (too small), not failed.
    original, compressed = tmp_path / "o.gif", tmp_path / "c.gif"
    original.write_bytes(make_animation(3, 4, 4, seed=1))
    compressed.write_bytes(make_animation(3, 4, 4, seed=1, moving_box=False))
    result = validate_pair(original, compressed, metrics=METRICS, scheduler="sync")
    assert set(result.missing) == {"ssim", "gmsd"} and result.status in ("pass", "warn", "fail")


# -- item 4: only regular files are read, and their size is checked first -------------------


def test_fifo_device_and_directory_rows_are_errors_not_hangs(tmp_path: Path, no_hang: None) -> None:
    good = _pairs(tmp_path)[0]
    fifo = tmp_path / "pipe.gif"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.gif"
    folder.mkdir()
    manifest = tmp_path / "m.csv"
    rows = [(good.original, good.compressed)] + [
        (good.original, str(p)) for p in (fifo, Path("/dev/zero"), folder)
    ]
    manifest.write_text("original,compressed\n" + "".join(f"{a},{b}\n" for a, b in rows))
    done = validate_batch(read_manifest(manifest), metrics=["mse"], scheduler="sync")
    errors = [o.error for o in done.outcomes]
    assert errors[0] is None and done.outcomes[0].result is not None
    assert "pipe.gif: is a FIFO (named pipe), not a regular GIF file" in errors[1]
    assert "/dev/zero: is a character device" in errors[2]
    assert "folder.gif: is a directory" in errors[3]
    # Below the manifest check too: the key of a FIFO is refused, not read.
    with pytest.raises(GifDecodeError, match="FIFO"):
        keys.gif_key(fifo)


def test_max_file_bytes_refuses_a_huge_sparse_file_before_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = tmp_path / "huge.gif"
    with huge.open("wb") as f:
        f.truncate(20 * 10**9)  # sparse: 20 GB that take no disk

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed")

    monkeypatch.setattr(keys, "_hash_file", no_hashing)
    with pytest.raises(GifLimitError, match=r"huge\.gif: file size.*max-file-bytes"):
        keys.gif_key(huge)
    good = _pairs(tmp_path)[0]
    rows = read_manifest(_manifest(tmp_path, [(good.original, str(huge))]))
    assert "max-file-bytes" in (rows[0].error or "")


def test_max_file_bytes_is_configurable_and_null_disables_it(tmp_path: Path) -> None:
    gif = tmp_path / "a.gif"
    gif.write_bytes(make_animation(2, 8, 8, seed=1))
    size = gif.stat().st_size
    with (
        dask.config.set({"giflab.limits.max-file-bytes": size - 1}),
        pytest.raises(GifLimitError, match="DASK_GIFLAB__LIMITS__MAX_FILE_BYTES"),
    ):
        keys.gif_key(gif, use_index=False)
    with dask.config.set({"giflab.limits.max-file-bytes": None}):
        assert keys.gif_key(gif, use_index=False)
    with dask.config.set({"giflab.limits.max-file-bytes": f"{size} B"}):
        assert keys.gif_key(gif, use_index=False)


# -- item 9: manifests are read exactly as written, or refused naming row and column --------


def _manifest(tmp_path: Path, rows: list[tuple[str, str]], name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text("original,compressed\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


MANIFESTS = {
    "long-field.csv": (
        "original,compressed\na.gif," + "x" * 140_000 + "\n",
        r"row 1 \(line 2\), column 2 \('compressed'\): a value over 131072 characters",
    ),
    "nul.csv": ("original,compressed\na\0.gif,b.gif\n", "row 1 .*'original'.*NUL"),
    "nul.jsonl": ('{"original": "a\\u0000.gif", "compressed": "b.gif"}\n', "line 1.*NUL"),
    "deep.jsonl": ("[" * 100_000 + "]" * 100_000 + "\n", "line 1: JSON nested too deeply"),
    "nested.jsonl": ('{"original": ["a.gif"], "compressed": "b.gif"}\n', "line 1.*nested"),
    "bad.jsonl": ('{"original": "a.gif",\n', "line 1, column 22: not JSON"),
    "unterminated.csv": (
        'original,compressed\na.gif,"b.gif\nc.gif,d.gif\n',
        r"row 1 \(lines 2-3\), column 2 \('compressed'\): malformed CSV",
    ),
    "merged.csv": (
        'original,compressed,note\na.gif,b.gif,"oops\nc.gif,d.gif"\ne.gif,f.gif,ok\n',
        r"row 1 \(lines 2-3\), column 3 \('note'\): a quoted value spans lines",
    ),
    "stray.csv": (
        "original,compressed\na.gif,b.gif,c.gif\n",
        r"row 1 \(line 2\): 3 values for 2 columns",
    ),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_a_malformed_manifest_is_one_error_naming_row_and_column(tmp_path: Path, name: str) -> None:
    text, expected = MANIFESTS[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BatchInputError, match=expected) as info:
        read_manifest(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_malformed_manifest_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    out = CliRunner().invoke(cli, ["batch", str(path), "--out", str(tmp_path / "out.csv")])
    assert out.exit_code == 2 and "nested too deeply" in out.output
    assert "Traceback" not in out.output


@pytest.mark.parametrize("name", ["m.csv", "m.tsv", "m.jsonl"])
def test_line_separator_characters_inside_paths_are_kept(tmp_path: Path, name: str) -> None:
    # U+2028 and \x1c are line breaks to str.splitlines, not to CSV or JSON lines.
    original = tmp_path / "a\u2028b.gif"
    compressed = tmp_path / "c\x1cd.gif"
    original.write_bytes(make_animation(2, 8, 8, seed=1))
    compressed.write_bytes(make_animation(2, 8, 8, seed=1, moving_box=False))
    path = tmp_path / name
    if name.endswith(".jsonl"):
        record = {"original": original.name, "compressed": compressed.name, "note": "x\u2028y"}
        path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter=sep, quoting=csv.QUOTE_ALL)
            writer.writerows([["original", "compressed", "note"]])
            writer.writerow([original.name, compressed.name, "x\u2028y"])
    (pair,) = read_manifest(path)
    assert (pair.original, pair.compressed, pair.error) == (str(original), str(compressed), None)
    assert pair.extra == {"note": "x\u2028y"}


# -- item 10: a 0x0 canvas, formulas in CSV output, the LZW code size range ------------------


def _gif(width: int, height: int, frame: tuple[int, int], bits: int, lzw: bytes) -> bytes:
    blocks = b"".join(
        bytes([len(lzw[i : i + 255])]) + lzw[i : i + 255] for i in range(0, len(lzw), 255)
    )
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + bytes([0, 0, 0, 255, 255, 255])
        + b","
        + struct.pack("<HHHHB", 0, 0, *frame, 0)
        + bytes([bits])
        + blocks
        + b"\0;"
    )


def test_a_zero_size_canvas_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty-canvas.gif"
    path.write_bytes(_gif(0, 0, (0, 0), 2, lzw_encode(b"", 2)))
    with pytest.raises(GifDecodeError, match=r"empty-canvas\.gif: canvas of 0x0 pixels"):
        scan_gif(path)
    row = validate_batch([PairInput(1, str(path), str(path))], metrics=["mse"]).outcomes[0]
    assert "canvas of 0x0 pixels" in (row.error or "")


@pytest.mark.parametrize("bits", [9, 10, 11])
def test_lzw_code_sizes_past_8_decode(tmp_path: Path, bits: int) -> None:
    indices = np.random.default_rng(bits).integers(0, 2, (7, 9)).astype(np.uint8)
    path = tmp_path / "wide.gif"
    path.write_bytes(_gif(9, 7, (9, 7), bits, lzw_encode(indices.ravel(), bits)))
    frame, _ = next(iter_frames(path))
    np.testing.assert_array_equal(frame[..., 0], indices * 255)


def test_lzw_code_size_1_decodes(tmp_path: Path) -> None:
    path = tmp_path / "one-bit.gif"
    # clear (2), index 1, end (3) at 2 bits each, LSB first
    path.write_bytes(_gif(1, 1, (1, 1), 1, bytes([0b00110110])))
    frame, _ = next(iter_frames(path))
    assert frame.ravel().tolist() == [255, 255, 255]


@pytest.mark.parametrize("bits", [0, 12, 15])
def test_lzw_code_sizes_outside_1_to_11_are_refused_saying_so(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "bad.gif"
    path.write_bytes(_gif(1, 1, (1, 1), bits, bytes([0b00110110])))
    with pytest.raises(GifDecodeError, match=f"LZW minimum code size {bits} \\(must be 1-11\\)"):
        list(iter_frames(path))


def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    good = _pairs(tmp_path)[0]
    risky = ["=HYPERLINK(1)", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x", "-3", "plain"]
    pairs = [
        PairInput(1, good.original, good.compressed, {"note": v, "=col": "1"}) for v in risky[:1]
    ] + [
        PairInput(i, str(tmp_path / "missing.gif"), good.compressed, {"note": v, "=col": "1"})
        for i, v in enumerate(risky[1:], start=2)
    ]
    table = batch_table(validate_batch(pairs, metrics=["mse"]).outcomes)
    path = write_table(table, tmp_path / "out.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert "'=col" in rows[0]
    assert [r["note"] for r in rows] == [
        "'=HYPERLINK(1)", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "''=x", "-3", "plain"
    ]  # fmt: skip
    assert float(rows[0]["mse_mean"]) == table.loc[0, "mse_mean"]  # numbers stay numbers
    back = load_results(path)
    assert list(back.columns) == list(table.columns)
    assert back["note"].astype(str).tolist()[:7] == risky[:7]
