"""Huge-batch benchmark: many tiny pairs, cold and hot, on a local-disk cache and an S3 cache.

    python benchmarks/bench_huge.py [--sizes 1000,10000] [--stores local,s3]
        [--scheduler threads,local-cluster] [--data DIR] [--quick] [--profile] [--json FILE]

Issue 18 measures where the client, not the workers, limits huge batches. Each batch is N
pairs of 10-frame 64x48 GIFs (an original and a 16-colour copy; SSIM+PSNR+MSE), generated once
into ``--data`` (default: the user cache directory; the first N of one pool, content-stable,
so reruns and larger N reuse the files). For each N, cache store and scheduler:

* cold: empty caches (frame store, result store, stat index);
* hot: the same batch again (every node stored).

Every run is ``giflab_dask.validate_batch`` in its own child process (public API only), which
reports: wall seconds from reading the manifest to the result; the client's time before the
first task starts (manifest + planning + graph; dask's ``pretask`` callback on the local
schedulers, the task stream's first compute start on a LocalCluster, whose start-up is timed
apart; a run with no task is all client time); its time after the last task ends (results
assembled and stored on the client); the CPU time of its main thread, all of it and before
the first task (local schedulers: a shared machine's load stretches it less than the wall
time); the result summary's own clock; peak RSS of the client process (VmHWM; a
LocalCluster's scheduler runs in it too, its workers do not). The threads run on the local
disk is followed by a hot ``giflab-dask batch`` on the same cache (process time beside its
summary line's seconds).
The parent counts objects stored under ``results/`` and ``frames/`` afterwards. S3 is moto's
server on 127.0.0.1 in the parent process, wrapped in a WSGI middleware that counts every
HTTP request (method and store) the run's processes make: server-side, so it includes the
workers' requests and every retry.

Prints one row per run, then the ratios the issue's targets are stated in, and how each
figure grows with N. ``--profile``: cProfile of the client (main thread) during one cold run
of the smallest N on the local disk with threads; the top entries in giflab_dask.
``--quick`` (200 and 1000 pairs): the S3 cold run of 1000 pairs alone took 400 s here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from _common import run_child

from giflab_dask.testing.s3 import CountingS3, request_method

GENERATOR = "v1"  # bump when the generated GIFs change, so old pools are not reused
METRICS = "ssim,psnr,mse"

RUN = """
import json, time
import dask
args = json.loads(sys.argv[1])
cfg = {"giflab.cache-dir": args["cache"], "giflab.stat-index": args["stat_index"]}
if args["options"]:
    cfg["giflab.storage-options"] = args["options"]
dask.config.set(cfg)
from giflab_dask import collect_pairs, scheduler_context, validate_batch
METRICS = args["metrics"].split(",")
base = _rss_mib()
starts, stops, first_cpu = [], [], []
def _run(**kwargs):
    global cpu, cpu0
    t0, t0_wall, cpu0 = time.perf_counter(), time.time(), time.thread_time()
    pairs = collect_pairs(args["manifest"])
    r = validate_batch(pairs, metrics=METRICS, **kwargs)
    cpu = time.thread_time() - cpu0
    return r, t0_wall, time.perf_counter() - t0
startup = 0.0
profiler = None
if args["profile"]:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
if args["scheduler"] == "local-cluster":
    from distributed import get_task_stream
    t = time.perf_counter()
    with scheduler_context("local-cluster", workers=2, echo=None) as session:
        startup = time.perf_counter() - t
        with get_task_stream(session.client) as stream:
            r, t0_wall, wall = _run(**session.compute_kwargs)
    spans = [s for task in stream.data for s in task.get("startstops", ())
             if s.get("action") == "compute"]
    starts, stops = [s["start"] for s in spans], [s["stop"] for s in spans]
else:
    from dask.callbacks import Callback
    def _pretask(key, dsk, state):  # on the client's main thread
        if not starts:
            starts.append(time.time())
            first_cpu.append(time.thread_time())
    def _posttask(key, value, dsk, state, worker_id):
        stops[:] = [time.time()]
    with Callback(pretask=_pretask, posttask=_posttask):
        r, t0_wall, wall = _run(scheduler=args["scheduler"])
if profiler is not None:
    profiler.disable()
    profiler.dump_stats(args["profile"])
first = min(starts) - t0_wall if starts else None
tail = t0_wall + wall - max(stops) if stops else None
stats = r.stats
result = {"wall": wall, "first_task": first, "after_last_task": tail, "main_thread_cpu": cpu,
          "first_task_cpu": first_cpu[0] - cpu0 if first_cpu else None,
          "startup": startup, "base_rss_mib": base,
          "summary_seconds": stats.get("seconds"), "pairs": len(r.outcomes),
          "errors": r.counts()["error"], "first_error": next((o.error for o in r.outcomes
          if o.error), None), "node_hits": stats.get("node_hits"),
          "node_misses": stats.get("node_misses"), "decode_tasks": stats.get("decode_tasks")}
"""


# -- data -------------------------------------------------------------------------------------


def _write_pair(root: Path, k: int) -> None:
    """Pair ``k``: a 10-frame 64x48 original (seeded) and its 16-colour copy, written atomically
    (a file that exists is complete, so an interrupted generation resumes)."""
    from _common import synthetic_gif
    from PIL import Image, ImageSequence

    original, compressed = _pair_paths(root, k)
    if compressed.exists():
        return
    original.parent.mkdir(parents=True, exist_ok=True)
    compressed.parent.mkdir(parents=True, exist_ok=True)
    if not original.exists():
        tmp = original.with_suffix(".tmp.gif")
        tmp.unlink(missing_ok=True)
        synthetic_gif(tmp, 10, 64, 48, seed=k)
        tmp.replace(original)
    with Image.open(original) as im:
        frames = [f.convert("RGB").quantize(16, method=Image.Quantize.FASTOCTREE)
                  for f in ImageSequence.Iterator(im)]  # fmt: skip
    tmp = compressed.with_suffix(".tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=40, loop=0)
    tmp.replace(compressed)


def _pair_paths(root: Path, k: int) -> tuple[Path, Path]:
    sub = f"{k // 1000:03d}/{k:06d}.gif"  # 1000 files per folder
    return root / "o" / sub, root / "c" / sub


def make_manifest(data: Path, n: int) -> Path:
    """The manifest of the first ``n`` pairs of the pool under ``data``, generating what is
    missing."""
    root = data / GENERATOR
    manifest = root / f"manifest-{n}.csv"
    if manifest.exists():
        return manifest
    start = time.perf_counter()
    for k in range(n):
        _write_pair(root, k)
        if k and k % 2000 == 0:
            print(f"  generated {k} of {n} pairs ({time.perf_counter() - start:.0f} s)",
                  flush=True)  # fmt: skip
    lines = ["original,compressed"]
    for k in range(n):
        o, c = _pair_paths(root, k)
        lines.append(f"{o.relative_to(root)},{c.relative_to(root)}")
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(manifest)
    return manifest


# -- S3 on 127.0.0.1, counting requests -------------------------------------------------------


def _method_and_store(environ: dict[str, Any]) -> tuple[str, str]:
    """A request's (method, store): the store is the path component after the run's prefix."""
    path = environ.get("PATH_INFO", "").strip("/")
    where = path + "/" + unquote(environ.get("QUERY_STRING", ""))  # listings: ?prefix=
    store = next((s for s in ("results", "frames") if f"/{s}/" in where), "other")
    return request_method(environ), store


def _s3_objects(s3: CountingS3, prefix: str) -> Counter[str]:
    """Objects under ``s3://bench/<prefix>/`` by store."""
    found: Counter[str] = Counter()
    pages = s3.client().get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket="bench", Prefix=prefix + "/"):
        for obj in page.get("Contents", ()):
            found[obj["Key"][len(prefix) + 1 :].split("/", 1)[0]] += 1
    return found


def _local_objects(cache: Path) -> Counter[str]:
    return Counter(
        {store: sum(len(files) for _, _, files in os.walk(cache / store))
         for store in ("results", "frames")}
    )  # fmt: skip


# -- runs -------------------------------------------------------------------------------------


def measure(
    manifest: Path, store: str, scheduler: str, scratch: Path, s3: CountingS3 | None,
    profile: str | None = None, cli: bool = False, runs: tuple[str, ...] = ("cold", "hot"),
    keep: bool = False,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Cold then hot run of one batch on a fresh cache; one row each. ``cli``: then a hot run
    of the CLI on the same local cache (``row["cli"]`` of the hot row). ``keep``: the local
    cache is named by store, scheduler and size under ``scratch`` and kept, so a later
    ``runs=("hot",)`` measures it again (with another version of the code, say)."""
    n = sum(1 for _ in manifest.open()) - 1
    tag = f"{store}-{scheduler}-{n}" if keep else f"{store}-{scheduler}-{uuid.uuid4().hex[:8]}"
    if store == "s3":
        assert s3 is not None
        cache, options = f"s3://bench/{tag}", s3.options
    else:
        cache, options = str(scratch / tag), {}
    args = {
        "manifest": str(manifest), "cache": cache, "options": options,
        "stat_index": str(scratch / f"{tag}-stat-index.sqlite"), "scheduler": scheduler,
        "metrics": METRICS, "profile": profile,
    }  # fmt: skip
    rows = {}
    for run in ("cold",) if profile else runs:
        if s3 is not None:
            s3.take()
        row = run_child(RUN, json.dumps(args))
        if store == "s3" and s3 is not None:
            row["requests"], row["objects"] = _by_key(s3.take()), dict(_s3_objects(s3, tag))
        else:
            row["requests"], row["objects"] = None, dict(_local_objects(Path(cache)))
        if row["errors"]:
            print(f"  {row['errors']} error rows, first: {row['first_error']}", flush=True)
        rows[run] = row
    if store == "local":
        if cli and "hot" in rows:
            rows["hot"]["cli"] = cli_hot(manifest, Path(cache), Path(args["stat_index"]))
        if not keep:
            shutil.rmtree(cache, ignore_errors=True)
    return rows


def _by_key(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    return {f"{method} {store}": n for (method, store), n in sorted(counts.items())}


def cli_hot(manifest: Path, cache: Path, stat_index: Path) -> dict[str, Any]:
    """``giflab-dask batch`` on a stored batch: the process's wall time beside the seconds its
    summary line reports."""
    env = {**os.environ, "DASK_GIFLAB__CACHE_DIR": str(cache),
           "DASK_GIFLAB__STAT_INDEX": str(stat_index)}  # fmt: skip
    exe = shutil.which("giflab-dask")
    command = [exe] if exe else [sys.executable, "-m", "giflab_dask"]
    t0 = time.perf_counter()
    out = subprocess.run([*command, "batch", str(manifest), "--metrics", METRICS, "-q"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    wall = time.perf_counter() - t0
    found = re.search(r"\(([\d.]+) s;", out.stdout)
    return {"process_wall": wall, "summary_seconds": float(found[1]) if found else None,
            "exit": out.returncode}  # fmt: skip


# -- report -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _before(row: dict[str, Any]) -> float:
    """Client seconds before the first task (the whole run when nothing was computed)."""
    return row["first_task"] if row["first_task"] is not None else row["wall"]


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'N':>7} {'store':<6}{'scheduler':<14}{'run':<5}{'wall s':>8}{'ms/pair':>9}"
          f"{'before':>8}{'CPU':>6}{'after':>7}{'client CPU':>11}{'req/pair':>9}{'result obj':>11}"
          f"{'frame obj':>10}{'RSS MiB':>8}{'clock/wall':>11}")  # fmt: skip
    for r in results:
        n = r["n"]
        after = r.get("after_last_task")
        after = 1000 * after / n if after is not None else None
        req = sum(r["requests"].values()) / n if r["requests"] is not None else None
        clock = r["summary_seconds"] / r["wall"] if r["summary_seconds"] is not None else None
        before_cpu = r.get("first_task_cpu")
        before_cpu = 1000 * before_cpu / n if before_cpu is not None else None
        print(f"{n:>7} {r['store']:<6}{r['scheduler']:<14}{r['run']:<5}{r['wall']:>8.1f}"
              f"{1000 * r['wall'] / n:>9.2f}{1000 * _before(r) / n:>8.2f}"
              f"{_fmt(before_cpu, '.2f'):>6}{_fmt(after, '.2f'):>7}"
              f"{1000 * r['main_thread_cpu'] / n:>11.2f}{_fmt(req, '.2f'):>9}"
              f"{r['objects'].get('results', 0):>11}{r['objects'].get('frames', 0):>10}"
              f"{r['peak_rss_mib']:>8.0f}{_fmt(clock, '.2f'):>11}")  # fmt: skip
    print(
        "ms per pair: wall; before: client time before the first task (all of the run when "
        "nothing is computed); CPU: the client main thread's CPU of it (local schedulers); "
        "after: client time after the last task ended; client CPU: "
        "CPU of the client's main thread (planning, dask's local scheduler loop, assembling "
        "results). clock/wall: the result's own seconds over the measured wall time"
    )
    for r in results:
        if r["requests"]:
            shown = ", ".join(f"{k} {v / r['n']:.2f}" for k, v in r["requests"].items())
            print(f"requests per pair, {r['n']} {r['scheduler']} {r['run']}: {shown}")
        if r.get("cli"):
            c = r["cli"]
            print(f"`giflab-dask batch` hot, {r['n']} pairs: process {c['process_wall']:.1f} s "
                  f"(imports included), its summary line says "
                  f"{_fmt(c['summary_seconds'], '.1f')} s")  # fmt: skip
        if r["startup"]:
            print(f"LocalCluster start-up (not in wall), {r['n']} {r['store']} {r['run']}: "
                  f"{r['startup']:.1f} s")  # fmt: skip


def print_ratios(results: list[dict[str, Any]]) -> None:
    def get(n: int, store: str, scheduler: str, run: str) -> dict[str, Any] | None:
        return next((r for r in results if (r["n"], r["store"], r["scheduler"], r["run"])
                     == (n, store, scheduler, run)), None)  # fmt: skip

    sizes = sorted({r["n"] for r in results})
    schedulers = sorted({r["scheduler"] for r in results})
    stores = sorted({r["store"] for r in results})
    print("\nissue 18 targets:")
    for scheduler in schedulers:
        for n in sizes:
            local, s3 = get(n, "local", scheduler, "hot"), get(n, "s3", scheduler, "hot")
            if local and s3:
                print(f"  S3 hot / local hot per pair, {n} pairs, {scheduler}: "
                      f"{s3['wall'] / local['wall']:.1f}x (target <= 2x)")  # fmt: skip
            if s3:
                per100 = 100 * sum(s3["requests"].values()) / n
                print(f"  S3 requests per 100 pairs hot, {n} pairs, {scheduler}: {per100:.0f} "
                      "(target <= 5)")  # fmt: skip
            for store in stores:
                cold = get(n, store, scheduler, "cold")
                if cold and cold["first_task"] is not None:
                    plan, after = cold["first_task"], cold["after_last_task"] or 0.0
                    span = max(cold["wall"] - plan - after, 1e-9)  # first task to last
                    print(f"  client ms per pair before the first task, cold, {n} {store} "
                          f"{scheduler}: {1000 * plan / n:.2f} (target <= 2; after the last "
                          f"task: {1000 * after / n:.2f}); before / tasks' span "
                          f"{plan / span:.0%} (target <= 10% at 10k)")  # fmt: skip
    for scheduler in schedulers:
        for store in stores:
            for run in ("cold", "hot"):
                rows = [get(n, store, scheduler, run) for n in sizes]
                rows = [r for r in rows if r]
                if len(rows) < 2:
                    continue
                a, b = rows[0], rows[-1]
                growth = b["n"] / a["n"]

                def per(r: dict[str, Any], field: str) -> float:
                    return r[field] / r["n"]

                objects_a, objects_b = (r["objects"].get("results", 0) for r in (a, b))
                line = (f"  {store} {scheduler} {run}, {b['n']} / {a['n']} pairs (x{growth:g}):"
                        f" per pair wall {per(b, 'wall') / per(a, 'wall'):.2f}x, client before"
                        f" first task {_before(b) / b['n'] / (_before(a) / a['n']):.2f}x, peak "
                        f"RSS {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x, result objects "
                        f"{objects_b / max(objects_a, 1):.2f}x")  # fmt: skip
                if a["requests"] and b["requests"]:
                    ra, rb = sum(a["requests"].values()), sum(b["requests"].values())
                    line += f", requests {rb / max(ra, 1):.2f}x"
                target = " (target: hot per pair within 1.5x)" if run == "hot" else ""
                print(line + target)


def print_profile(path: str, top: int = 15) -> None:
    import pstats

    stream = io.StringIO()
    stats = pstats.Stats(path, stream=stream)
    stats.sort_stats("cumulative").print_stats("giflab_dask", top)
    print(f"\ncProfile, client main thread, cold run (top {top} cumulative in giflab_dask):")
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[-4000:])


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--sizes", default="1000,10000", help="pairs per batch (100000 works)")
    parser.add_argument("--stores", default="local,s3", help="local, s3 or both")
    parser.add_argument("--scheduler", default="threads", help="threads and/or local-cluster")
    parser.add_argument("--data", type=Path, help="pool of generated pairs (reused)")
    parser.add_argument("--quick", action="store_true", help="--sizes 200,1000")
    parser.add_argument("--profile", action="store_true", help="cProfile a cold client too")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI hot run")
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument("--runs", default="cold,hot", help="cold,hot (default) or hot alone")
    parser.add_argument(
        "--keep", type=Path,
        help="keep the local caches here (named by store, scheduler and size); with --runs hot,"
        " measure a cache an earlier run kept",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    schedulers = args.scheduler.split(",")
    runs = tuple(args.runs.split(","))
    if args.data is None:
        import platformdirs

        args.data = Path(platformdirs.user_cache_dir("giflab-dask-bench", appauthor=False))
    print(f"metrics {METRICS}; pairs of 10-frame 64x48 GIFs under {args.data}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    s3 = CountingS3("bench", _method_and_store) if "s3" in stores else None
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="giflab-huge-") as tmp:
            scratch = Path(tmp) if args.keep is None else args.keep
            scratch.mkdir(parents=True, exist_ok=True)
            for n in sizes:
                manifest = make_manifest(args.data, n)
                for store in stores:
                    for scheduler in schedulers:
                        t = time.perf_counter()
                        cli = store == "local" and scheduler == "threads" and not args.no_cli
                        rows = measure(manifest, store, scheduler, scratch, s3, cli=cli,
                                       runs=runs, keep=args.keep is not None)  # fmt: skip
                        for run, row in rows.items():
                            results.append({"n": n, "store": store, "scheduler": scheduler,
                                            "run": run, **row})  # fmt: skip
                        walls = ", ".join(f"{run} {row['wall']:.1f} s" for run, row in rows.items())
                        took = time.perf_counter() - t
                        print(f"  {n} pairs, {store}, {scheduler}: {walls} ({took:.0f} s with"
                              " start-up)", flush=True)  # fmt: skip
                        if "cli" in rows.get("hot", {}):
                            c = rows["hot"]["cli"]
                            said = _fmt(c["summary_seconds"], ".1f")
                            print(f"  CLI hot run, {n} pairs: process {c['process_wall']:.1f} s,"
                                  f" its summary says {said} s (exit {c['exit']}; 1: some pairs"
                                  " fail their verdict)", flush=True)  # fmt: skip
            print_table(results)
            print_ratios(results)
            if args.profile:
                profile = str(scratch / "client.prof")
                manifest = make_manifest(args.data, sizes[0])
                measure(manifest, "local", "threads", scratch, None, profile=profile)
                print_profile(profile)
    finally:
        if s3 is not None:
            s3.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
