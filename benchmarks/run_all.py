"""Run every benchmark; ``--quick`` runs short versions (a few minutes in all on 2 cores).

python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

FULL = [
    ["bench_decode.py"],
    ["bench_metrics.py"],
    ["bench_batch.py"],
    ["bench_memory.py"],
    ["bench_sampling.py"],
    ["bench_scaling.py"],  # full runs only: its quick version alone takes about a minute
    ["bench_colour_kernels.py"],
    ["bench_huge.py", "--quick"],  # full runs only: its S3 cold run of 1000 pairs took 400 s
]
QUICK = [
    ["bench_decode.py", "--frames", "300"],
    ["bench_metrics.py", "--frames", "100", "--skip-all"],
    ["bench_batch.py", "--quick"],
    ["bench_memory.py", "--frames", "400", "--small", "40", "--width", "640", "--height", "360"],
    ["bench_sampling.py", "--quick"],
    ["bench_colour_kernels.py", "--sizes", "480x270", "--repeats", "3"],
]

# bench_cluster waits up to a minute for idle CPUs before each of its runs; on a shared machine
# that wait, not the measuring, made a quick run take twice its budget.
QUICK_EXTRA = {
    "bench_kernels.py": ["--quick"],
    "bench_cluster.py": ["--quick", "--quiet-wait", "10"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = QUICK if args.quick else FULL
    for extra in ("bench_kernels.py", "bench_cluster.py"):
        if (HERE / extra).exists():
            runs = [*runs, [extra, *QUICK_EXTRA.get(extra, ())] if args.quick else [extra]]
    failed = 0
    for command in runs:
        print(f"\n=== {' '.join(command)} ===", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], cwd=HERE)
        failed += done.returncode != 0
        print(f"--- {time.perf_counter() - start:.0f} s", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
