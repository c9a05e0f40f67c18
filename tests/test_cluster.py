"""Scale-out: scheduler choice, config reaching workers, shared caches, dashboard, resilience.

Cluster tests use loopback addresses only and are skipped without the distributed extra
(``pip install 'giflab-dask[distributed]'``); the local schedulers are tested either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import pytest
from click.testing import CliRunner
from dask.utils import key_split

from giflab_dask.cli import cli
from giflab_dask.cluster import INSTALL_HINT, SCHEDULERS
from giflab_dask.cluster import scheduler_context as scheduler_ctx
from giflab_dask.demo import write_demo_data
from giflab_dask.diagnostics import format_summary, run_summary
from giflab_dask.errors import ConfigError
from giflab_dask.framestore import FrameStore
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import plan_batch, validate_batch
from giflab_dask.results import batch_table, load_results, write_table
from giflab_dask.resultstore import ResultStore

METRICS = "psnr,mse,ssim"
# One pair-metrics task per pair and chunk reads, aligns and measures (DESIGN decision 32);
# inside it, reading, aligning and each kernel are activities on the dashboard.
STAGE_PREFIXES = {"gif-decode", "pair-metrics", "result-write"}
ACTIVITIES = {"read", "align", "psnr-frame", "mse-frame", "ssim-frame"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_data(root, n_originals=1, n_frames=6, size=(48, 32))
    return root


def _run(demo: Path, cache: Path, **compute_kwargs: Any) -> pd.DataFrame:
    with dask.config.set({"giflab.cache-dir": str(cache)}):
        result = validate_batch(collect_pairs(demo), metrics=METRICS, **compute_kwargs)
    assert result.counts()["error"] == 0 and result.stats["node_misses"] == 9
    return batch_table(result.outcomes)


@pytest.fixture(scope="module")
def reference(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return _run(demo, tmp_path_factory.mktemp("reference-cache"), scheduler="sync")


def _same(table: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        table.reset_index(drop=True), reference.reset_index(drop=True), check_dtype=False
    )


# -- choosing the scheduler (no cluster) ------------------------------------------------------


def test_scheduler_names_config_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCHEDULERS == ("threads", "processes", "sync", "local-cluster")
    with scheduler_ctx() as session:  # giflab.scheduler's default
        assert session.compute_kwargs == {"scheduler": "threads"} and not session.distributed
    with scheduler_ctx("processes", workers=3) as session:
        assert session.compute_kwargs == {"scheduler": "processes", "num_workers": 3}
    with dask.config.set({"giflab.scheduler": "sync"}), scheduler_ctx() as session:
        assert session.kind == "sync"
    monkeypatch.setenv("DASK_GIFLAB__SCHEDULER", "processes")
    dask.config.refresh()
    try:
        with scheduler_ctx() as session:
            assert session.kind == "processes"
    finally:
        monkeypatch.delenv("DASK_GIFLAB__SCHEDULER")
        dask.config.refresh()
    with scheduler_ctx("threads") as session:  # explicit beats configuration
        assert session.kind == "threads"
    with (
        pytest.raises(ConfigError, match="one of threads, processes, sync, local-cluster"),
        scheduler_ctx("gpu"),
    ):
        pass
    with pytest.raises(ConfigError, match="at least 1"), scheduler_ctx("threads", workers=0):
        pass


def test_without_distributed_local_schedulers_work_and_clusters_say_what_to_install(
    demo: Path, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    _same(_run(demo, tmp_path / "threads", scheduler="threads"), reference)
    for kwargs in ({"scheduler": "local-cluster"}, {"address": "tcp://127.0.0.1:8786"}):
        with pytest.raises(ConfigError) as excinfo, scheduler_ctx(**kwargs):
            pass
        assert INSTALL_HINT in str(excinfo.value)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match=r"giflab-dask\[distributed\]"), scheduler_ctx():
        pass
    out = CliRunner().invoke(cli, ["batch", str(demo), "--scheduler", "local-cluster"])
    assert out.exit_code == 2 and INSTALL_HINT in out.output


def test_a_local_run_never_imports_distributed(demo: Path, tmp_path: Path) -> None:
    """Resolving a scheduler by name imports distributed to look for a Client (0.5 s)."""
    code = (
        "import sys, dask\n"
        f"dask.config.set({{'giflab.cache-dir': {str(tmp_path)!r}}})\n"
        "from giflab_dask.inputs import collect_pairs\n"
        "from giflab_dask.pipeline import validate_batch\n"
        f"r = validate_batch(collect_pairs({str(demo)!r}), metrics='psnr', scheduler='threads')\n"
        "assert r.counts()['error'] == 0, r.counts()\n"
        "assert 'distributed' not in sys.modules, 'distributed imported by a local run'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_same_results_under_sync_threads_and_processes(
    demo: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    # The processes pool starts fresh interpreters: the client's settings must reach them.
    with dask.config.set({"giflab.framestore.chunk-mib": 0.01}):  # 2 frames per chunk
        for name in ("threads", "processes"):
            _same(_run(demo, tmp_path / name, scheduler=name, num_workers=2), reference)
            stored = FrameStore(tmp_path / name / "frames")
            chunks = {stored.open(e.key).chunk_frames for e in stored.entries()}
            assert chunks == {2}, f"{name}: chunking set in the client did not reach the pool"


def _graph_keys(demo: Path, cache: Path) -> set[Any]:
    with dask.config.set({"giflab.cache-dir": str(cache)}):
        plan = plan_batch(collect_pairs(demo), metrics=METRICS)
    graph: dict[Any, Any] = {}
    for write in plan.dask_objects():
        graph.update(dict(write.__dask_graph__()))
    return set(graph)


def test_batches_with_different_cache_roots_share_no_task(demo: Path, tmp_path: Path) -> None:
    # On one cluster a shared key would hand one batch the other's task: its decode would name
    # the other cache's entry, its writes the other result store.
    first, second = _graph_keys(demo, tmp_path / "a"), _graph_keys(demo, tmp_path / "b")
    assert {key_split(k) for k in first} == STAGE_PREFIXES
    assert not first & second
    assert _graph_keys(demo, tmp_path / "a") == first  # and the keys are deterministic


def test_local_run_report_splits_pair_metrics_into_stages(demo: Path, tmp_path: Path) -> None:
    with dask.config.set({"giflab.cache-dir": str(tmp_path / "cache")}):
        result = validate_batch(collect_pairs(demo), metrics=METRICS, scheduler="threads")
    assert result.report is not None and set(result.report.activities) >= ACTIVITIES
    stages = result.report.stages
    assert stages["metric"][0] == 9 and stages["write"][0] == 9
    for stage in ("read", "align", "summary"):  # measured inside other stages' tasks
        assert stages[stage][0] == 0 and stages[stage][1] > 0
    assert "read" in format_summary(run_summary(result))


# -- a LocalCluster ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distributed() -> Any:
    try:
        import bokeh  # noqa: F401  (the dashboard)
        import distributed
    except ImportError:
        message = f"needs dask.distributed and bokeh: {INSTALL_HINT}"
        if os.environ.get("GIFLAB_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; GIFLAB_REQUIRE_TOOLS=1 forbids skipping")
        pytest.skip(message)
    return distributed


@pytest.fixture(scope="module")
def client(distributed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    decoy = tmp_path_factory.mktemp("decoy-cache")
    # Workers start with another cache root and chunking: what the client sets later must win.
    with dask.config.set({"giflab.cache-dir": str(decoy), "giflab.framestore.chunk-mib": 4}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address="127.0.0.1:0",
        )  # fmt: skip
    with cluster, distributed.Client(cluster, set_as_default=False) as c:
        c.decoy = decoy
        yield c


def test_same_results_on_a_two_worker_local_cluster(
    demo: Path, reference: pd.DataFrame, client: Any, tmp_path: Path
) -> None:
    _same(_run(demo, tmp_path / "cluster", scheduler=client), reference)


def test_an_active_client_is_used_as_it_is(
    distributed: Any, demo: Path, reference: pd.DataFrame, client: Any, tmp_path: Path
) -> None:
    # A notebook's `client = Client(...)`: batches run there when no scheduler is named.
    with distributed.Client(client.scheduler.address) as notebook_client:
        with scheduler_ctx() as session:
            assert session.client is notebook_client
        with dask.config.set({"giflab.cache-dir": str(tmp_path / "current")}):
            result = validate_batch(collect_pairs(demo), metrics=METRICS)
        assert result.report.scheduler.startswith(f"cluster {client.scheduler.address}")
        _same(batch_table(result.outcomes), reference)
    assert notebook_client.status == "closed"


def test_client_settings_reach_worker_processes(
    demo: Path, reference: pd.DataFrame, client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "client-root"
    with dask.config.set({"giflab.framestore.chunk-mib": 0.01}):
        _same(_run(demo, root, scheduler=client), reference)
        seen = client.run(lambda: dask.config.get("giflab.framestore.chunk-mib"))
    assert set(seen.values()) == {0.01}
    frames = FrameStore(root / "frames")
    assert len(frames.entries()) == 4
    assert {frames.open(e.key).chunk_frames for e in frames.entries()} == {2}
    assert len(ResultStore(root / "results").entries()) == 3 + 9  # alignment + metric nodes
    assert not any(client.decoy.iterdir()), "a worker wrote under its own cache root"


def test_dashboard_serves_status_and_tasks_carry_stage_names(
    demo: Path, client: Any, tmp_path: Path
) -> None:
    with dask.config.set({"giflab.cache-dir": str(tmp_path / "cache")}):
        result = validate_batch(collect_pairs(demo), metrics=METRICS, scheduler=client)
    with urllib.request.urlopen(client.dashboard_link, timeout=30) as response:
        assert response.status == 200 and client.dashboard_link.startswith("http://127.0.0.1:")
    prefixes = set(
        client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    )
    assert prefixes >= STAGE_PREFIXES
    spans = client.run_on_scheduler(
        lambda dask_scheduler: [s.name for s in dask_scheduler.extensions["spans"].spans.values()]
    )
    for stage in ("decode", "metric", "write"):
        assert ("giflab-batch", stage) in spans
    # Fine Performance Metrics: the stages inside pair-metrics tasks, by name
    metrics = client.run_on_scheduler(
        lambda dask_scheduler: list(dask_scheduler.cumulative_worker_metrics)
    )
    inside = {k[2] for k in metrics if k[0] == "execute" and k[1] == "pair-metrics"}
    assert inside >= ACTIVITIES
    assert set(result.report.activities) >= ACTIVITIES | {"summary"}
    summary = run_summary(result)
    assert summary["pairs"] == 3 and summary["decoded"] == 4 and summary["result_misses"] == 9
    stages = ("decode", "read", "align", "metric", "summary", "write")
    assert set(summary["stage_seconds"]) >= set(stages)
    assert all(summary["stage_seconds"][s] > 0 for s in stages)
    assert result.report.prefixes["gif-decode"][0] == 4  # each distinct GIF once
    assert summary["stage_tasks"]["write"] == 9  # a pair's first also stores its alignment
    # 3 pairs of one chunk: too few to fuse, so one pair-metrics task per pair and metric
    assert summary["stage_tasks"]["metric"] == 9
    text = format_summary(summary)
    assert "pairs/s" in text and "frames/s" in text and "decode" in text


def test_local_cluster_scheduler_prints_a_loopback_dashboard_link(
    distributed: Any, demo: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    said: list[str] = []
    with scheduler_ctx(
        "local-cluster", workers=1, dashboard_address="127.0.0.1:0", echo=said.append
    ) as session:
        assert session.kind == "local-cluster" and session.distributed
        assert said == [f"dask dashboard: {session.dashboard_link}"]
        assert session.dashboard_link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(session.dashboard_link, timeout=30) as response:
            assert response.status == 200
        _same(_run(demo, tmp_path / "lc", **session.compute_kwargs), reference)
        cluster = session.client.cluster
    assert cluster.status.name == "closed"


# -- a cluster started from the command line --------------------------------------------------


def _dask_cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    dask_exe = Path(sys.executable).with_name("dask")
    with log.open("wb") as out:
        return subprocess.Popen([str(dask_exe), *args], stdout=out, stderr=subprocess.STDOUT)


def _scheduler_address(path: Path, deadline: float) -> str:
    """The address in a scheduler file, once the scheduler has written all of it (it writes
    the file in place: a read can see it empty or half written)."""
    while True:
        try:
            return str(json.loads(path.read_text())["address"])
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_cli_runs_on_a_cluster_by_address(
    distributed: Any, demo: Path, reference: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sched_file = tmp_path / "scheduler.json"
    procs = [  # the worker waits for the scheduler file, so both start at once
        _dask_cli("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                  str(sched_file), "--dashboard-address", "127.0.0.1:0",
                  log=tmp_path / "scheduler.log"),
        _dask_cli("worker", "--scheduler-file", str(sched_file), "--nworkers", "1",
                  "--nthreads", "2", "--host", "127.0.0.1", "--no-dashboard",
                  log=tmp_path / "worker.log"),
    ]  # fmt: skip
    try:
        address = _scheduler_address(sched_file, deadline=time.monotonic() + 60)
        with distributed.Client(address, set_as_default=False, timeout=60) as c:
            c.wait_for_workers(1, timeout=60)
        assert address.startswith("tcp://127.0.0.1:")
        cache, out = tmp_path / "cache", tmp_path / "table.csv"
        args = ["--cache-dir", str(cache), "batch", str(demo), "--metrics", METRICS,
                "--out", str(out)]  # fmt: skip
        from giflab_dask import decode, keys

        here: list[str] = []  # connected first, planning hashes and scans on the workers
        real_hash, real_scan = keys._hash_file, decode.scan_gif
        monkeypatch.setattr(keys, "_hash_file", lambda p: here.append("hash") or real_hash(p))
        monkeypatch.setattr(
            decode, "scan_gif", lambda p, *a: here.append("scan") or real_scan(p, *a)
        )
        monkeypatch.setattr(keys, "_RACY_SECONDS", 0.0)  # the demo's files were just written
        result = CliRunner().invoke(cli, [*args, "--address", address])
        assert result.exit_code == 1, result.output  # the demo's 8-colour variants fail
        assert here == [], "the CLI hashed or scanned GIFs on the client"
        assert "dask dashboard: http://127.0.0.1:" in result.stderr
        # the run summary is on stderr (stdout: the pair counts and worst pairs)
        assert f"on cluster {address} (1 workers, 2 threads)" in result.stderr
        # the files were hashed and scanned on the worker, before the decodes
        assert "task time by stage: scan" in result.stderr and " decode " in result.stderr
        expected = load_results(write_table(reference, tmp_path / "reference.csv"))
        _same(load_results(out), expected)
        # DASK_SCHEDULER_ADDRESS names the cluster when no scheduler is given
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
        with scheduler_ctx(echo=None) as session:
            assert session.kind == "address" and session.description.startswith(
                f"cluster {address} (1 workers"
            )
        bad = CliRunner().invoke(cli, [*args, "--refresh", "--workers", "2"])
        assert bad.exit_code == 2 and "keeps its own workers" in bad.output
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- resilience -------------------------------------------------------------------------------


class KillOnFirstTask:
    """Worker plugin: SIGKILL its own worker process when it starts the first task of a prefix
    (once per cluster: a marker file is created exclusively)."""

    name = "giflab-test-killer"
    idempotent = False

    def __init__(self, prefix: str, marker: str) -> None:
        self.prefix, self.marker = prefix, marker

    def setup(self, worker: Any) -> None:
        pass

    def teardown(self, worker: Any) -> None:
        pass

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        from dask.utils import key_split

        if finish != "executing" or key_split(key) != self.prefix:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_batch_does_not_lose_the_batch(
    demo: Path, reference: pd.DataFrame, client: Any, tmp_path: Path
) -> None:
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin = type("KillOnFirstTaskPlugin", (KillOnFirstTask, WorkerPlugin), {})
    marker = tmp_path / "killed"
    client.register_plugin(plugin("pair-metrics", str(marker)))
    try:
        pids_before = set(client.run(os.getpid).values())
        table = _run(demo, tmp_path / "cache", scheduler=client)
    finally:
        client.unregister_worker_plugin(KillOnFirstTask.name)
    assert marker.exists(), "no worker was killed"
    killed = int(marker.read_text())
    assert killed in pids_before
    _same(table, reference)
    cache = tmp_path / "cache"
    assert not list((cache / "results").glob("*/.tmp-*")) and not list(cache.glob("frames/.tmp-*"))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    assert killed not in set(client.run(os.getpid).values())


# -- two writers sharing one cache ------------------------------------------------------------

_WRITER = """
import json, sys, time
from pathlib import Path
import dask
dask.config.set({"giflab.cache-dir": sys.argv[2]})
from giflab_dask.inputs import collect_pairs
from giflab_dask.pipeline import validate_batch
from giflab_dask.results import batch_table, write_table
pairs = collect_pairs(sys.argv[1])
barrier = Path(sys.argv[3])
(barrier / f"ready-{sys.argv[4]}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
r = validate_batch(pairs, metrics="psnr,mse,ssim", scheduler="threads", num_workers=2)
write_table(batch_table(r.outcomes), barrier / f"table-{sys.argv[4]}.csv")
"""


def test_two_processes_share_one_cache_root(
    demo: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    shared, barrier = tmp_path / "shared", tmp_path / "barrier"
    barrier.mkdir()
    command = [sys.executable, "-c", _WRITER, str(demo), str(shared), str(barrier)]
    procs = [
        subprocess.Popen(
            [*command, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    (barrier / "go").touch()  # both decode the same GIFs and write the same nodes at once
    outputs = [p.communicate(timeout=120) for p in procs]
    expected = load_results(write_table(reference, tmp_path / "reference.csv"))
    for i, (proc, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, err
        _same(load_results(barrier / f"table-{i}.csv"), expected)
    frames = FrameStore(shared / "frames")
    entries = [e.key for e in frames.entries()]
    assert len(entries) == len(set(entries)) == 4
    assert all(frames.open(key) is not None for key in entries)
    assert not [p for p in frames.root.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    nodes = ResultStore(shared / "results").entries()
    assert len(nodes) == len({p.name for p in nodes}) == 3 + 9
    assert not list((shared / "results").glob("*/.tmp-*"))


def test_planning_hashes_and_scans_new_files_on_the_workers(
    demo: Path,
    reference: pd.DataFrame,
    client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from giflab_dask import decode, keys

    here: list[str] = []  # hashes and scans in this (the client's) process
    real_hash, real_scan = keys._hash_file, decode.scan_gif
    monkeypatch.setattr(keys, "_hash_file", lambda p: here.append("hash") or real_hash(p))
    monkeypatch.setattr(decode, "scan_gif", lambda p, *a: here.append("scan") or real_scan(p, *a))
    monkeypatch.setattr(keys, "_RACY_SECONDS", 0.0)  # the demo's files were just written
    pairs = collect_pairs(demo)
    settings = {"giflab.cache-dir": str(tmp_path / "cache"),
                "giflab.stat-index": str(tmp_path / "stat-index.sqlite")}  # fmt: skip
    with dask.config.set(settings):
        result = validate_batch(pairs, metrics=METRICS, scheduler=client)
    assert here == []
    _same(batch_table(result.outcomes), reference)
    # 4 distinct GIFs, 6 paths: one task of each kind, on the workers, in the run report
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert {"gif-hash", "gif-scan"} <= set(prefixes)
    assert result.report is not None
    assert result.report.prefixes["gif-hash"][0] == 1 and result.report.prefixes["gif-scan"][0] == 1
    assert run_summary(result)["stage_tasks"]["scan"] == 2
    # Again: the stat index knows every file and the frame store every GIF: no task of either
    with dask.config.set(settings):
        again = validate_batch(pairs, metrics=METRICS, scheduler=client, refresh=True)
    assert again.plan.planning_tasks == {} and here == []
    assert again.report is not None and "gif-hash" not in again.report.prefixes
