"""The MLflow service: what its MLflow server costs `make run`, and what a poll costs.

- the MLflow server alone (SQLite, one worker, job runner off): seconds to /health and
  memory (RSS of its process tree), over a few starts;
- the embedded stack with and without ``--mlflow``: seconds to up and total memory;
- polls against it: the first poll of N new versions (one commit each), a poll with
  nothing new, and a version registered -> its commit through the webhook.

    .venv/bin/python tests/bench/bench_mlflow.py [--versions N] [--starts N]

Figures from a shared 2-core machine: compare within one run.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.mlflow_rest import MlflowRest  # noqa: E402
from tests.integration.gitops import gitutil  # noqa: E402
from vllmbench.embedded.processes import free_port  # noqa: E402
from vllmbench.embedded.stack import Stack  # noqa: E402
from vllmbench.mlflow.server import MlflowServer  # noqa: E402


def tree_rss_mib(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def stack_rss_mib(stack: Stack) -> float:
    pids = [p.popen.pid for p in stack.processes if p.popen]
    if stack.ferretdb and stack.ferretdb.process and stack.ferretdb.process.popen:
        pids.append(stack.ferretdb.process.popen.pid)
    if stack.mlflow_server is not None and stack.mlflow_server.pid:
        pids.append(stack.mlflow_server.pid)
    return sum(tree_rss_mib(pid) for pid in pids)


def server_alone(starts: int) -> None:
    seconds, memory = [], []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            server = MlflowServer(Path(folder), free_port()).start()
            seconds.append(time.perf_counter() - began)
            client = MlflowRest(server.url)
            client.create_model("warm")
            client.create_version("warm", "s3://bucket/warm")
            memory.append(tree_rss_mib(server.pid or 0))
            server.stop()
    print(f"MLflow server alone ({starts} starts): ready in median {statistics.median(seconds):.1f} s "
          f"(min {min(seconds):.1f}, max {max(seconds):.1f}); RSS median {statistics.median(memory):.0f} MiB")


def stack_cost(versions: int) -> None:
    figures = {}
    for with_mlflow in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            offset = random.randrange(10000, 24000, 10)
            began = time.perf_counter()
            stack = Stack(Path(folder) / "data", port_offset=offset, broker_port=offset + 8090, mongo_port=free_port(),
                          out=io.StringIO(), mlflow=with_mlflow).start()
            try:
                up = time.perf_counter() - began
                time.sleep(2)
                figures[with_mlflow] = (up, stack_rss_mib(stack))
                if with_mlflow:
                    polls(stack, Path(folder) / "data" / "gitops.git", versions)
            finally:
                stack.stop()
    (up0, rss0), (up1, rss1) = figures[False], figures[True]
    print(f"make run without --mlflow: up in {up0:.1f} s, {rss0:.0f} MiB; with --mlflow: up in {up1:.1f} s, "
          f"{rss1:.0f} MiB (+{up1 - up0:.1f} s, +{rss1 - rss0:.0f} MiB)")


def polls(stack: Stack, remote: Path, versions: int) -> None:
    mlflow = MlflowRest(stack.mlflow_server.url)
    fn = stack.url("mlflow_poll")
    mlflow.create_model("demo-bench")
    for i in range(versions):
        mlflow.create_version("demo-bench", f"s3://bucket/demo-bench/{i}")
    began = time.perf_counter()
    written = 0
    for _ in range(100):  # VLLMBENCH_MLFLOW_MAX_WRITES per poll; the rest on the next
        outcome = requests.post(fn + "/poll", timeout=300).json()
        written += len(outcome["written"])
        if not outcome["more"]:
            break
    first = time.perf_counter() - began
    idle = []
    for _ in range(5):
        began = time.perf_counter()
        assert requests.post(fn + "/poll", timeout=60).json()["written"] == []
        idle.append(time.perf_counter() - began)
    print(f"poll: {written} new versions -> {written} commits in {first:.1f} s ({written / first:.1f} commits/s); "
          f"a poll with nothing new: median {statistics.median(idle) * 1000:.0f} ms")
    time.sleep(5.5)  # the stack's MLflow caches its webhook list for 5 s
    latencies = []
    for _ in range(3):
        began = time.perf_counter()
        number = mlflow.create_version("demo-bench", "s3://bucket/demo-bench/hooked")
        path = f"models/default/demo-bench-v{number}.yaml"
        while path not in gitutil.git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main"):
            if time.perf_counter() - began > 30:
                print("webhook: no commit within 30 s")
                return
            time.sleep(0.05)
        latencies.append(time.perf_counter() - began)
    print(f"webhook: version registered -> its commit in Git, median {statistics.median(latencies) * 1000:.0f} ms "
          f"(of {len(latencies)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=40)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    server_alone(args.starts)
    stack_cost(args.versions)


if __name__ == "__main__":
    main()
