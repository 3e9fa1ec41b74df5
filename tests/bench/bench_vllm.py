"""The vLLM service end to end on the local Kubernetes control plane (kwok nodes with GPUs).

What bench_placement measures is one decision of the pure planner (about 1-30 ms); a
user waits for more: the commit, the inventory read from the API server (every node,
every pod), the ledger's compare-and-set, the apply, the first look at the pods. Prints,
on N kwok nodes of 8 GPUs with S servers committed at once (defaults 10 and 50):

- the first sync of the S servers (plan, ledger, 2 x S objects applied, statuses);
- a tick with nothing new (what every minute costs: the inventory, the plan of the
  waiting servers, a no-op reconcile, S /v1/models probes against the simulator that
  stands in for vLLM);
- one POST /deploy of a new server (validate, commit and push, sync) and one POST /plan;
- 8 deploys racing for the GPUs of one free node (4 x TP2 fit): wall time, outcomes.
Medians of repeats; figures are noisy on a shared machine: compare ratios within a run.

    .venv/bin/python tests/bench/bench_vllm.py [--nodes 10] [--servers 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from tests.fixtures.cluster import KubeCluster, load_localcluster, wait_for  # noqa: E402
from tests.fixtures.functions import start_function  # noqa: E402
from tests.integration.gitops.gitutil import Person, make_remote  # noqa: E402
from vllmbench.embedded.ferretdb import FerretDB  # noqa: E402
from vllmbench.embedded.processes import free_port  # noqa: E402
from vllmbench.simulator import SimConfig, SimulatorThread  # noqa: E402

PRODUCT = "BENCH-H100-80GB-HBM3"
MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"]


def spec(name: str, rng: random.Random, **fields: object) -> dict:
    return {"model_name": rng.choice(MODELS), "served_model_name": name, "max_model_len": 8192,
            "tensor_parallel_size": rng.choice([1, 1, 2, 4]), "priority": rng.randrange(100),
            "accelerators": [PRODUCT], **fields}


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    lc = load_localcluster()
    names = [f"s{i:04d}" for i in range(args.servers)]
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as work:
        root = Path(work)
        db = FerretDB(root / "ferretdb", free_port()).start()
        local = lc.LocalCluster(root / "cluster", tools=lc.Toolset.from_cache(), name="bench", die_with_parent=True)
        local.start()
        cluster = KubeCluster(local)
        simulator = SimulatorThread(SimConfig(port=0, models=tuple(names) + ("new", "r0", "r1", "r2", "r3", "r4",
                                                                              "r5", "r6", "r7"))).start()
        try:
            ns = "bench"
            cluster.core_v1.create_namespace({"metadata": {"name": ns}})
            wait_for(lambda: cluster.core_v1.list_namespaced_service_account(ns).items, 30, "the default SA")
            for i in range(args.nodes):
                cluster.add_node(f"bench-{i:03d}", gpus=8, labels={"nvidia.com/gpu.product": PRODUCT,
                                                                   "nvidia.com/gpu.memory": "81559"})
            remote = make_remote(root / "config.git", {"README.md": "bench\n"})
            person = Person(remote, root / "person")
            person.commit({f"models/bench/{n}.yaml": yaml.safe_dump(spec(n, rng)) for n in names}, "servers")
            served, stop = start_function("vllm_deploy", mongo_url=db.url, database="bench_vllm",
                                          gitops_repo_url=str(remote), runtime="kube",
                                          kubeconfig=str(cluster.kubeconfig), workload_namespaces=ns,
                                          data_dir=str(root / "data"),
                                          vllm_probe_url=f"http://127.0.0.1:{simulator.port}")
            try:
                run(served, cluster, args, rng)
            finally:
                stop()
        finally:
            simulator.stop()
            cluster.close()
            local.stop()
            db.stop()
    return 0


def run(function, cluster: KubeCluster, args: argparse.Namespace, rng: random.Random) -> None:  # noqa: ANN001
    import requests

    class Served:  # the function over HTTP, without the test client's 30 s bound (FerretDB is slow)
        def post(self, path: str, json: dict) -> requests.Response:
            return requests.post(function.url + path, json=json, timeout=900)

        def get(self, path: str) -> requests.Response:
            return requests.get(function.url + path, timeout=900)

    served = Served()
    gpus = args.nodes * 8
    started = time.perf_counter()
    first = served.post("/reconcile", json={}).json()
    first_s = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    for planned in first["planned"].values():
        outcomes[planned["outcome"]] = outcomes.get(planned["outcome"], 0) + 1
    print(f"first sync of {args.servers} servers on {args.nodes} nodes ({gpus} GPUs): {first_s:.2f} s "
          f"({outcomes}; {first['counts']} objects)")
    time.sleep(3)  # kwok's pods Ready, the Deployments' status written
    ticks = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        served.post("/reconcile", json={})
        ticks.append(time.perf_counter() - started)
    phases = served.get("/status").json()["phases"]
    print(f"tick with nothing new ({args.servers} servers, their /v1/models asked): {ms(ticks)}; phases {phases}")

    plans = []
    for _ in range(args.repeat * 2):
        started = time.perf_counter()
        answer = served.post("/plan", json={"name": "new", "namespace": "bench", "config": spec("new", rng)})
        plans.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    print(f"POST /plan (inventory from the API server, one decision, nothing written): {ms(plans)}")
    deploys = []
    for i in range(args.repeat):
        name = f"new{i}"
        started = time.perf_counter()
        answer = served.post("/deploy", json={"name": name, "namespace": "bench",
                                              "config": spec("new", rng, priority=0, tensor_parallel_size=1)})
        deploys.append(time.perf_counter() - started)
        assert answer.status_code == 202, answer.text
    print(f"POST /deploy of a new server (validate, commit + push, sync: plan, ledger, apply, statuses): "
          f"{ms(deploys)}")

    cluster.add_node("bench-race", gpus=8, labels={"nvidia.com/gpu.product": "BENCH-RACE-80GB",
                                                   "nvidia.com/gpu.memory": "81559"})
    racers = [{"name": f"r{i}", "namespace": "bench", "config": {
        "model_name": MODELS[0], "served_model_name": f"r{i}", "tensor_parallel_size": 2, "max_model_len": 8192,
        "accelerators": ["BENCH-RACE-80GB"]}} for i in range(8)]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: served.post("/deploy", json=body).json(), racers))
    race_s = time.perf_counter() - started
    won = sorted(a["status"] for a in answers)
    held = sum(len(g["held_by"]) > 0 for node in served.get("/inventory").json()["nodes"]
               if node["node"] == "bench-race" for g in node["gpus"])
    print(f"8 deploys racing for one free node of 8 GPUs (TP 2 each): {race_s:.2f} s for all; statuses {won}; "
          f"GPUs held there: {held} of 8 (never more)")


if __name__ == "__main__":
    sys.exit(main())
