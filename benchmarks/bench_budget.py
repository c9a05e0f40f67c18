"""Working memory of each metric kernel per pixel, the figures behind ``giflab_dask.budget``.

Each measurement runs in its own child process: the kernel is warmed on a small frame (imports,
numba compilation), the input frames are allocated, the peak RSS is reset
(``/proc/self/clear_refs``), then the kernel runs on ``--frames`` frames of ``--size`` x
``--size``; what the peak rose by, divided by the pixels of the block, is the metric's working
memory per pixel (inputs excluded: the budget counts them apart). Run at two frame counts it
shows whether a kernel's memory follows the frame (it loops per frame) or the block.

With ``--pipeline`` it also runs one ``pair-metrics`` task of a stored pair (all default
metrics) and prints its peak next to :func:`giflab_dask.budget.pair_task_bytes`'s estimate.

    python benchmarks/bench_budget.py [--size 1024] [--frames 1 4] [--pipeline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from giflab_dask.metrics import BoundMetric, get_metric, measure_block

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(key)

    name, size, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    metric = BoundMetric.of(get_metric(name))
    rng = np.random.default_rng(0)

    def block(t, s):
        o = rng.integers(0, 256, (t, s, s, 3), dtype=np.uint8)
        o[:, : s // 2] = np.linspace(0, 255, s, dtype=np.uint8)[None, None, :, None]
        c = np.clip(o.astype(np.int16) + rng.integers(-6, 7, o.shape), 0, 255).astype(np.uint8)
        return o, c

    measure_block([metric], *block(2, 200), previous=False)  # imports, numba compilation
    o, c = block(frames, size)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    out = measure_block([metric], o, c, previous=False)
    peak = status("VmHWM:")
    value = out[name]
    print(json.dumps({
        "bytes_per_pixel": (peak - before) / (frames * size * size),
        "error": value if isinstance(value, str) else None,
    }))
    """
)


def measure(name: str, size: int, frames: int) -> dict[str, float | str | None]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, name, str(size), str(frames)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


_PIPELINE = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np
    import dask
    from giflab_dask import budget
    from giflab_dask.testing import GifFrame, solid_palette, write_gif

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024

    size = int(sys.argv[1])
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    ramp = (np.add.outer(np.arange(size), np.arange(size)) * 255 // (2 * size)).astype(np.uint8)
    noisy = np.where(rng.random((size, size)) < 0.05, 7, ramp).astype(np.uint8)
    pal = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    for name, idx in (("o", ramp), ("c", noisy)):
        write_gif(root / f"{name}.gif", [GifFrame(idx)], size, size, global_palette=pal)
    with dask.config.set({"giflab.cache-dir": str(root / "cache"),
                          "giflab.limits.memory-budget": None}):
        from giflab_dask.framestore import open_frame_store
        from giflab_dask.metrics import resolve_metrics
        from giflab_dask.pipeline import validate_pair

        store = open_frame_store()
        for name in ("o", "c"):
            store.ensure(root / f"{name}.gif")
        estimate = budget.pair_task_bytes(
            resolve_metrics(None), frames=1, original=(size, size), compressed=(size, size),
            size=(size, size), alpha=False,
        )
        validate_pair(root / "o.gif", root / "c.gif", metrics=["mse"], use_cache=False,
                      scheduler="sync")  # imports and numba compilation outside the peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
        validate_pair(root / "o.gif", root / "c.gif", use_cache=False, scheduler="sync")
        peak = status("VmHWM:")
    print(json.dumps({"measured": peak - before, "estimate": estimate}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--metrics", default=None, help="comma-separated; default: all")
    parser.add_argument("--pipeline", action="store_true")
    args = parser.parse_args()
    from giflab_dask.metrics import available_metrics

    names = args.metrics.split(",") if args.metrics else available_metrics()
    header = " ".join(f"{f:>3} frame(s)" for f in args.frames)
    print(f"bytes of working memory per pixel, {args.size}x{args.size}:")
    print(f"{'metric':22s} {header}")
    for name in names:
        cells = []
        for frames in args.frames:
            got = measure(name, args.size, frames)
            cells.append(f"{got['bytes_per_pixel']:12.1f}" + (" (error)" if got["error"] else ""))
        print(f"{name:22s} " + " ".join(cells), flush=True)
    if args.pipeline:
        done = subprocess.run(
            [sys.executable, "-c", _PIPELINE, str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"one pair-metrics task, all default metrics, 1 frame {args.size}x{args.size}: "
            f"peak rise {got['measured'] / 2**20:.0f} MiB, estimate "
            f"{got['estimate'] / 2**20:.0f} MiB (ratio {got['estimate'] / got['measured']:.2f})"
        )


if __name__ == "__main__":
    main()
