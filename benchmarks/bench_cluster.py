"""Scheduler benchmark: the batch benchmark's 40 pairs under threads, processes and LocalClusters.

    python benchmarks/bench_cluster.py [--quick] [--repeat N] [--quiet-wait SECONDS]

The batch of ``bench_batch.py`` (8 originals x 5 variants, SSIM+PSNR+MSE), cold caches for
every run, each run in its own child process:

* threads: dask's threaded scheduler, 2 threads;
* processes: dask's multiprocessing scheduler, 2 processes (pool start-up included: it is part
  of every compute under that scheduler);
* LocalCluster 1 worker / 2 workers: ``distributed.LocalCluster(processes=True,
  threads_per_worker=1)`` with giflab's worker settings (``cluster.WORKER_CONFIG``);
  and 1 worker with the whole run (client, scheduler, worker) pinned to one core
  (``sched_setaffinity``): what one worker does with one core of its own, where the unpinned
  1-worker run also uses the second core for the decoder's writer thread, the scheduler and
  the client;
  start-up and the first imports (workers' and client's, numba's SSIM kernel included) are
  timed apart (a cluster is started once and serves many batches). The threads and processes
  runs import the same in their parent first (processes: the pool's children still pay it).

Prints seconds, pairs/s, frames/s, cores used (CPU seconds of every process of the run over
wall seconds), the tasks the batch ran, and the speedup of 2 workers over 1 (target >= 1.7x on
a 2-core machine), with where the clusters' CPU went (the workers' task threads, their other
threads, the client and scheduler) and the bound the 1-worker run's cores put on it; peak
RSS of the client and of each worker (VmHWM), each worker's memory limit and whether any
worker was restarted or paused.

The machine may be shared. Before each run the script waits (up to ``--quiet-wait`` seconds)
until the CPUs are idle, and it reports the cores other processes used during each run
("others": CPU time of the whole machine from /proc/stat minus the run's own), so a disturbed
run is visible. ``--repeat N`` interleaves N rounds: the fastest run of each setup counts, and
the speedup is also given round by round (1 and 2 workers run back to back). A pure-Python
loop in 1 and in 2 processes measures what two cores give right now ("ceiling").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
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
    # what a process imports for its first task, so it is not timed as batch work; numba's
    # SSIM kernel too (importing numba and loading the compiled kernel: ~1.4 s per process)
    import zarr, giflab_dask.framestore
    import giflab_dask.kernels.structural, giflab_dask.kernels.fidelity
    from giflab_dask.kernels import _numba
    _numba.load()
    return True
def _frames(r):
    return sum(int(o.result.summaries["original_frames"]) for o in r.outcomes if o.result)
def _cpu(who=None):
    import resource
    u = resource.getrusage(resource.RUSAGE_SELF if who is None else who)
    return u.ru_utime + u.ru_stime
def _tasks(r):
    return sum(n for n, _ in r.report.prefixes.values())
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
          "cpu_seconds": cpu, "load": load, "tasks": _tasks(r) or None,
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
n = int(sys.argv[3].split("-")[0])
if sys.argv[3].endswith("-1core"):  # this process and the cluster's: one core between them
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
t0 = time.perf_counter()
from giflab_dask.cluster import WORKER_CONFIG  # what giflab's own LocalCluster uses
with dask.config.set(WORKER_CONFIG):
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
client = distributed.Client(cluster, set_as_default=False)
client.run(_warm)
_warm()  # the client's imports too: a notebook or a long-lived client has them already
startup = time.perf_counter() - t0
def _split_cpu():
    # (CPU seconds of the worker's task threads, of the whole worker process): the rest is
    # its event loop, the decoder's writer threads and Zarr's IO thread
    import threading
    tasks = 0.0
    for t in threading.enumerate():
        if "Dask-Default-Threads" in t.name:  # distributed's executor threads
            with open(f"/proc/self/task/{t.native_id}/schedstat") as f:
                tasks += int(f.read().split()[0]) / 1e9
    return tasks, _cpu()
pids = client.run(os.getpid)
base = _rss_mib()
load = os.getloadavg()[0]
split0 = client.run(_split_cpu)
client0 = _cpu()  # the LocalCluster's scheduler runs in here, beside the client
t0 = time.perf_counter()
r = validate_batch(pairs, metrics=METRICS, scheduler=client)
elapsed = time.perf_counter() - t0
client_cpu = _cpu() - client0
split = {w: (t - split0[w][0], c - split0[w][1]) for w, (t, c) in client.run(_split_cpu).items()}
task_cpu = sum(t for t, _ in split.values())
cpu = sum(c for _, c in split.values()) + client_cpu
peaks = client.run(_vmhwm)
info = client.scheduler_info(n_workers=-1)["workers"]
restarted = client.run(os.getpid) != pids
paused = [w for w, d in info.items() if d.get("status") not in (None, "running")]
result = {"seconds": elapsed, "frames": _frames(r), "errors": r.counts()["error"],
          "cpu_seconds": cpu, "load": load, "tasks": _tasks(r),
          "task_thread_cpu": task_cpu, "client_cpu": client_cpu,
          "stages": r.report.stages, "startup_seconds": startup, "base_rss_mib": base,
          "worker_peak_mib": sorted(peaks.values()),
          "memory_limit_mib": min(d["memory_limit"] for d in info.values()) / 2**20,
          "restarted": restarted, "paused": paused}
client.close()
cluster.close()
"""
)

_SPIN = """
import multiprocessing as mp, time
def spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x
if __name__ == "__main__":
    n = 6_000_000
    t = time.perf_counter(); spin(n); one = time.perf_counter() - t
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(spin, [1000, 1000])  # the pool is up before the clock starts
        t = time.perf_counter(); pool.map(spin, [n, n]); two = time.perf_counter() - t
    print(2 * one / two)
"""


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat)."""
    with Path("/proc/stat").open() as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (and theirs: workers included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_for_quiet(limit: float, threshold: float = 0.25) -> float:
    """Wait until other processes use less than ``threshold`` cores (1 s samples), at most
    ``limit`` seconds; returns the cores in use when it stopped waiting."""
    deadline = time.monotonic() + limit
    while True:
        start = _busy_seconds()
        time.sleep(1.0)
        cores = _busy_seconds() - start
        if cores < threshold or time.monotonic() >= deadline:
            return cores


def _ceiling() -> float:
    """Speedup of a pure-Python loop in 2 processes over 1, now (what 2 cores give)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _SPIN], capture_output=True, text=True, check=True, timeout=300
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller GIFs (a few minutes)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of runs, interleaved; the fastest counts"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0,
        help="seconds to wait for idle CPUs before each run (0: do not wait)",
    )  # fmt: skip
    parser.add_argument(
        "--clusters-only", action="store_true", help="only the LocalCluster runs (1 and 2 workers)"
    )
    args = parser.parse_args()
    setups = {
        "threads (2 threads)": (LOCAL, "threads"),
        "processes (2 processes)": (LOCAL, "processes"),
        "LocalCluster 1 worker": (CLUSTER, "1"),
        "LocalCluster 2 workers": (CLUSTER, "2"),
        "LocalCluster 1 w, 1 core": (CLUSTER, "1-1core"),
    }
    if args.clusters_only:
        setups = {k: v for k, v in setups.items() if k.startswith("LocalCluster")}
    runs: dict[str, dict] = {}
    rounds: list[dict[str, dict]] = []
    ceilings = []
    with tempfile.TemporaryDirectory(prefix="giflab-cluster-") as tmp:
        manifest = str(make_batch(Path(tmp) / "data", args.quick))
        for i in range(args.repeat):
            _wait_for_quiet(args.quiet_wait)
            ceilings.append(_ceiling())
            rounds.append({})
            for k, (name, (code, arg)) in enumerate(setups.items()):
                _wait_for_quiet(args.quiet_wait)
                busy0, cpu0, wall0 = _busy_seconds(), _children_cpu(), time.perf_counter()
                r = run_child(code, manifest, str(Path(tmp) / f"cache-{i}-{k}"), arg)
                # Over the child's whole life (start-up included): the machine's busy CPU time
                # less the child's own (with its workers), per wall second.
                ours = _children_cpu() - cpu0
                wall = time.perf_counter() - wall0
                r["others"] = max(0.0, (_busy_seconds() - busy0 - ours) / wall)
                rounds[-1][name] = r
                if name not in runs or r["seconds"] < runs[name]["seconds"]:
                    runs[name] = r
    frames = next(iter(runs.values()))["frames"]
    print(f"batch: 40 pairs, {frames} original frames, metrics ssim+psnr+mse, cold caches"
          f" (fastest of {args.repeat})")  # fmt: skip
    header = f"{'scheduler':<26}{'seconds':>9}{'pairs/s':>9}{'frames/s':>10}{'cores':>7}"
    print(header + f"{'tasks':>7}{'client MiB':>12}{'worker peak MiB':>17}{'start-up s':>12}"
          f"{'load':>6}{'others':>8}")  # fmt: skip
    for name, r in runs.items():
        assert r["errors"] == 0, f"{name}: {r['errors']} error rows"
        workers = ", ".join(f"{m:.0f}" for m in r["worker_peak_mib"]) or "-"
        startup = f"{r['startup_seconds']:.1f}" if "startup_seconds" in r else "-"
        tasks = str(r["tasks"]) if r.get("tasks") else "-"
        print(f"{name:<26}{r['seconds']:>9.2f}{40 / r['seconds']:>9.2f}"
              f"{r['frames'] / r['seconds']:>10.1f}{r['cpu_seconds'] / r['seconds']:>7.2f}"
              f"{tasks:>7}{r['peak_rss_mib']:>12.0f}{workers:>17}{startup:>12}{r['load']:>6.1f}"
              f"{r['others']:>8.2f}")  # fmt: skip
    print(
        "cores: CPU seconds of all our processes / wall seconds; load: 1-minute load average "
        "before the run; others: cores used by other processes during the run"
    )
    one, two = runs["LocalCluster 1 worker"], runs["LocalCluster 2 workers"]
    speedup = one["seconds"] / two["seconds"]
    per_round = [
        r["LocalCluster 1 worker"]["seconds"] / r["LocalCluster 2 workers"]["seconds"]
        for r in rounds
    ]
    print(f"speedup 2 workers / 1 worker: {speedup:.2f}x (fastest runs; target >= 1.7x); "
          f"round by round: {', '.join(f'{s:.2f}x' for s in per_round)}")  # fmt: skip
    print(f"ceiling (a pure-Python loop in 2 processes / 1, before each round): "
          f"{', '.join(f'{c:.2f}x' for c in ceilings)}")  # fmt: skip
    # Where the CPU went: a 1-worker run's helper threads (event loop, writer threads) and its
    # scheduler run beside its one task thread, on the second core; 2 workers doing the same
    # work on 2 cores can be at most 2 / (cores the 1-worker run used) times as fast.
    for name in ("LocalCluster 1 worker", "LocalCluster 2 workers"):
        r = runs[name]
        other = r["cpu_seconds"] - r["task_thread_cpu"] - r["client_cpu"]
        print(f"{name}: CPU seconds in task threads {r['task_thread_cpu']:.1f}, other worker "
              f"threads {other:.1f}, client and scheduler {r['client_cpu']:.1f}")  # fmt: skip
    print(f"bound on 2 cores if 2 workers do the 1-worker run's CPU work: 2 / "
          f"{one['cpu_seconds'] / one['seconds']:.2f} cores = "
          f"{2 * one['seconds'] / one['cpu_seconds']:.2f}x")  # fmt: skip
    pinned = runs.get("LocalCluster 1 w, 1 core")
    if pinned:
        print(f"speedup 2 workers on 2 cores / 1 worker on 1 core (scheduler and client on that "
              f"core too): {pinned['seconds'] / two['seconds']:.2f}x")  # fmt: skip
    if "threads (2 threads)" in runs:
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
