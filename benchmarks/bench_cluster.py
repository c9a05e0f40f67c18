"""Scheduler benchmark: the batch benchmark's 40 pairs under threads, processes and LocalClusters.

    python benchmarks/bench_cluster.py [--quick]

The batch of ``bench_batch.py`` (8 originals x 5 variants, SSIM+PSNR+MSE), cold caches for
every run, each run in its own child process:

* threads: dask's threaded scheduler, 2 threads;
* processes: dask's multiprocessing scheduler, 2 processes (pool start-up included: it is part
  of every compute under that scheduler);
* LocalCluster 1 worker / 2 workers: ``distributed.LocalCluster(processes=True,
  threads_per_worker=1)`` with giflab's worker settings (``cluster.WORKER_CONFIG``);
  start-up and the workers' first imports are timed apart
  (a cluster is started once and serves many batches).

Prints seconds, pairs/s, frames/s and cores used (CPU seconds of every process of the run over
wall seconds), the speedup of 2 workers over 1 (target >= 1.7x on a
2-core machine), peak RSS of the client and of each worker (VmHWM), each worker's memory limit
and whether any worker was restarted or paused.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import run_child
from bench_batch import make_batch

_COMMON = """
import os, time
import dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.inputs import read_manifest
from giflab_dask.pipeline import validate_batch
METRICS = ["ssim", "psnr", "mse"]
pairs = read_manifest(sys.argv[1])
def _warm():
    # what a worker imports for its first task, so it is not timed as batch work
    import zarr, giflab_dask.framestore
    import giflab_dask.kernels.structural, giflab_dask.kernels.fidelity
    return True
def _frames(r):
    return sum(int(o.result.summaries["original_frames"]) for o in r.outcomes if o.result)
def _cpu(who=None):
    import resource
    u = resource.getrusage(resource.RUSAGE_SELF if who is None else who)
    return u.ru_utime + u.ru_stime
"""

LOCAL = (
    _COMMON
    + """
import resource
_warm()
base = _rss_mib()
load = os.getloadavg()[0]
cpu0 = _cpu() + _cpu(resource.RUSAGE_CHILDREN)
t0 = time.perf_counter()
r = validate_batch(pairs, metrics=METRICS, scheduler=sys.argv[3], num_workers=2)
elapsed = time.perf_counter() - t0
cpu = _cpu() + _cpu(resource.RUSAGE_CHILDREN) - cpu0
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
result = {"seconds": elapsed, "frames": _frames(r), "errors": r.counts()["error"],
          "cpu_seconds": cpu, "load": load,
          "stages": r.report.stages, "base_rss_mib": base,
          "worker_peak_mib": [children_kib / 1024] if sys.argv[3] == "processes" else []}
"""
)

CLUSTER = (
    _COMMON
    + """
import distributed
def _vmhwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
n = int(sys.argv[3])
t0 = time.perf_counter()
from giflab_dask.cluster import WORKER_CONFIG  # what giflab's own LocalCluster uses
with dask.config.set(WORKER_CONFIG):
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
client = distributed.Client(cluster, set_as_default=False)
client.run(_warm)
startup = time.perf_counter() - t0
pids = client.run(os.getpid)
base = _rss_mib()
load = os.getloadavg()[0]
cpu0 = sum(client.run(_cpu).values()) + _cpu()  # the LocalCluster's scheduler runs in here
t0 = time.perf_counter()
r = validate_batch(pairs, metrics=METRICS, scheduler=client)
elapsed = time.perf_counter() - t0
cpu = sum(client.run(_cpu).values()) + _cpu() - cpu0
peaks = client.run(_vmhwm)
info = client.scheduler_info(n_workers=-1)["workers"]
restarted = client.run(os.getpid) != pids
paused = [w for w, d in info.items() if d.get("status") not in (None, "running")]
result = {"seconds": elapsed, "frames": _frames(r), "errors": r.counts()["error"],
          "cpu_seconds": cpu, "load": load,
          "stages": r.report.stages, "startup_seconds": startup, "base_rss_mib": base,
          "worker_peak_mib": sorted(peaks.values()),
          "memory_limit_mib": min(d["memory_limit"] for d in info.values()) / 2**20,
          "restarted": restarted, "paused": paused}
client.close()
cluster.close()
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller GIFs (a few minutes)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per scheduler, interleaved; the fastest counts"
    )
    args = parser.parse_args()
    setups = {
        "threads (2 threads)": (LOCAL, "threads"),
        "processes (2 processes)": (LOCAL, "processes"),
        "LocalCluster 1 worker": (CLUSTER, "1"),
        "LocalCluster 2 workers": (CLUSTER, "2"),
    }
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="giflab-cluster-") as tmp:
        manifest = str(make_batch(Path(tmp) / "data", args.quick))
        for i in range(args.repeat):
            for k, (name, (code, arg)) in enumerate(setups.items()):
                r = run_child(code, manifest, str(Path(tmp) / f"cache-{i}-{k}"), arg)
                if name not in runs or r["seconds"] < runs[name]["seconds"]:
                    runs[name] = r
    frames = runs["threads (2 threads)"]["frames"]
    print(f"batch: 40 pairs, {frames} original frames, metrics ssim+psnr+mse, cold caches"
          f" (fastest of {args.repeat})")  # fmt: skip
    header = f"{'scheduler':<26}{'seconds':>9}{'pairs/s':>9}{'frames/s':>10}{'cores':>7}"
    print(header + f"{'client MiB':>12}{'worker peak MiB':>17}{'start-up s':>12}{'load':>6}")
    for name, r in runs.items():
        assert r["errors"] == 0, f"{name}: {r['errors']} error rows"
        workers = ", ".join(f"{m:.0f}" for m in r["worker_peak_mib"]) or "-"
        startup = f"{r['startup_seconds']:.1f}" if "startup_seconds" in r else "-"
        print(f"{name:<26}{r['seconds']:>9.2f}{40 / r['seconds']:>9.2f}"
              f"{r['frames'] / r['seconds']:>10.1f}{r['cpu_seconds'] / r['seconds']:>7.2f}"
              f"{r['peak_rss_mib']:>12.0f}{workers:>17}{startup:>12}{r['load']:>6.1f}")  # fmt: skip
    print(
        "cores: CPU seconds of all our processes / wall seconds; load: 1-minute load average "
        "before the run (other processes compete for the 2 cores when it is high)"
    )
    one, two = runs["LocalCluster 1 worker"], runs["LocalCluster 2 workers"]
    speedup = one["seconds"] / two["seconds"]
    print(f"speedup 2 workers / 1 worker: {speedup:.2f}x (target >= 1.7x)")
    threads = runs["threads (2 threads)"]["seconds"]
    print(f"LocalCluster 2 workers vs threads: {threads / two['seconds']:.2f}x")
    for name in ("LocalCluster 1 worker", "LocalCluster 2 workers"):
        r = runs[name]
        peak, limit = max(r["worker_peak_mib"]), r["memory_limit_mib"]
        paused = r["paused"] or "none"
        print(f"{name}: worker memory limit {limit:.0f} MiB, peak {peak:.0f} MiB "
              f"({peak / limit:.1%}); restarted: {r['restarted']}, paused: {paused}")  # fmt: skip
    for name, r in runs.items():
        stages = ", ".join(f"{s} {t:.1f}" for s, (_, t) in r["stages"].items()) or "not measured"
        print(f"task seconds by stage, {name}: {stages}")


if __name__ == "__main__":
    main()
