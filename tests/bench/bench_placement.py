"""Placement: plan time for one decision and for a full re-plan, 1,000 servers over 200 nodes.

The cluster: 120 nodes of 8 x H100 80GB, 60 of 8 x A100 80GB, 20 of 4 x L4 (1,520 GPUs),
built from Kubernetes-shaped node and pod objects as the API returns them. The servers:
a seeded mix of the catalog's models at TP 1-8, priorities 0-100, some pinned to an
accelerator, some allowed to shrink, about 2,200 GPUs asked for in all (so about a
quarter wait). Prints:
- the inventory built from the objects (200 nodes, the pods of the placed servers);
- a full re-plan of all 1,000 servers (by priority, each decision applied to the next);
- one decision on the loaded cluster: a server that fits (after every tenth placed server was
  deleted), one that must preempt, one that stays Pending (every step runs); median and max.
A full re-plan goes by priority, so it never preempts: higher priorities are placed first.
Target: one decision well under 100 ms. Figures are noisy on a shared machine: compare
the ratios within one run, and run it twice.

    .venv/bin/python tests/bench/bench_placement.py [--servers 1000] [--nodes 200] [--repeat 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vllmbench.models.servers import ModelServerSpec  # noqa: E402
from vllmbench.placement import catalog, cluster  # noqa: E402
from vllmbench.placement import labels as L  # noqa: E402
from vllmbench.placement.planner import apply, plan  # noqa: E402
from vllmbench.placement.replan import Wanted, plan_all  # noqa: E402

KINDS = [  # (model, TP choices, accelerators)
    ("meta-llama/Llama-3.1-8B-Instruct", [1, 1, 2], []),
    ("Qwen/Qwen2.5-7B-Instruct", [1, 2], ["NVIDIA-H100*", "NVIDIA-A100*"]),
    ("mistralai/Mistral-7B-Instruct-v0.3", [1], []),
    ("meta-llama/Llama-3.1-70B-Instruct", [4, 8], ["NVIDIA-H100*"]),
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", [2, 4], []),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", [1], ["NVIDIA-L4", "NVIDIA-A100*"]),
    ("deepseek-ai/DeepSeek-V2-Lite-Chat", [1, 2], []),
]


def nodes(count: int) -> list[dict]:
    shapes = [("NVIDIA-H100-80GB-HBM3", 8, 81559)] * 6 + [("NVIDIA-A100-SXM4-80GB", 8, 81920)] * 3 + \
             [("NVIDIA-L4", 4, 23034)]
    out = []
    for i in range(count):
        product, gpus, mib = shapes[i % len(shapes)]
        out.append({"metadata": {"name": f"node-{i:03d}", "labels": {
            L.HOSTNAME: f"node-{i:03d}", L.GPU_PRODUCT: product, L.GPU_MEMORY: str(mib), L.GPU_COUNT: str(gpus)}},
            "spec": {}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                                   "conditions": [{"type": "Ready", "status": "True"}]}})
    return out


def servers(count: int, rng: random.Random) -> list[Wanted]:
    wanted = []
    for i in range(count):
        model, tps, accelerators = rng.choice(KINDS)
        fields = {"model_name": model, "tensor_parallel_size": rng.choice(tps), "priority": rng.randrange(0, 101),
                  "max_model_len": rng.choice([4096, 8192, 16384, 32768]), "accelerators": accelerators}
        if rng.random() < 0.3:
            fields["shrink"] = {"max_model_len_min": 2048}
        spec = ModelServerSpec.model_validate(fields)
        wanted.append(Wanted(f"team-{i % 20}/server-{i:04d}", spec, catalog.lookup(model)))
    return wanted


def pods_for(decisions: list) -> list[dict]:
    """The pods the placed servers would run, as the API lists them."""
    pods = []
    for decision in decisions:
        if decision.outcome != "placed":
            continue
        namespace, name = decision.server.split("/")
        for replica in decision.replicas:
            pods.append({"metadata": {"name": f"{name}-{replica.replica}", "namespace": "vllm",
                                      "labels": {L.SERVER: name, L.SERVER_NAMESPACE: namespace,
                                                 L.PRIORITY: str(decision.priority)}},
                         "spec": {"nodeName": replica.node, "containers": [{"name": "vllm", "resources": {
                             "limits": {"nvidia.com/gpu": str(replica.count)}}}]},
                         "status": {"phase": "Running"}})
    return pods


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(7)
    node_objects = nodes(args.nodes)
    wanted = servers(args.servers, rng)
    empty = cluster.from_kube(node_objects, [])
    gpus = sum(len(n.gpus) for n in empty.nodes.values())
    asked = sum(w.spec.gpus_per_replica * w.spec.replicas for w in wanted)
    print(f"cluster: {args.nodes} nodes, {gpus} GPUs; {args.servers} servers asking for {asked} GPUs")

    replan_ms, replan_max, decisions = timed(lambda: plan_all(wanted, empty), 3)
    outcomes: dict[str, int] = {}
    for d in decisions:  # type: ignore[union-attr]
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
        if d.preempted:
            outcomes["with preemption"] = outcomes.get("with preemption", 0) + 1
    print(f"full re-plan of {args.servers} servers: median {replan_ms:.0f} ms, max {replan_max:.0f} ms "
          f"({replan_ms / args.servers:.2f} ms a decision); outcomes {outcomes}")

    pods = pods_for(decisions)  # type: ignore[arg-type]
    build_ms, build_max, loaded = timed(lambda: cluster.from_kube(node_objects, pods), 5)
    print(f"inventory from {len(node_objects)} nodes and {len(pods)} pods: median {build_ms:.1f} ms, "
          f"max {build_max:.1f} ms")
    # The same cluster after every tenth placed server was deleted: holes for a new server to fit in.
    placed = [d for d in decisions if d.outcome == "placed"]  # type: ignore[union-attr]
    holes = cluster.from_kube(node_objects, pods_for([d for i, d in enumerate(placed) if i % 10]))

    big = {"model_name": "meta-llama/Llama-3.1-70B-Instruct", "tensor_parallel_size": 8,
           "accelerators": ["NVIDIA-H100*"], "max_model_len": 32768}
    cases = {
        "fits (1 GPU, after deletions)": (holes, ModelServerSpec(
            model_name="meta-llama/Llama-3.1-8B-Instruct", max_model_len=8192)),
        "preempts (8 x H100, priority 1000, full cluster)": (loaded, ModelServerSpec(**big, priority=1000)),
        "pending (8 x H100, priority 0, full cluster: every step runs)": (loaded, ModelServerSpec(**big)),
    }
    decision = None
    for label, (inventory, spec) in cases.items():
        case_facts = catalog.lookup(spec.model_name)
        median, worst, decision = timed(
            lambda spec=spec, case_facts=case_facts, inventory=inventory: plan(
                spec, key="bench/new", facts=case_facts, inventory=inventory), args.repeat)
        print(f"one decision, {label}: median {median:.1f} ms, max {worst:.1f} ms -> {decision.outcome}"  # type: ignore[union-attr]
              f" ({len(decision.preempted)} preempted)")  # type: ignore[union-attr]
    copy_ms, _, work = timed(loaded.copy, 5)
    apply_ms, _, _ = timed(lambda: apply(work, decision), 1)  # type: ignore[arg-type]
    print(f"inventory copy: {copy_ms:.1f} ms; apply a decision: {apply_ms:.2f} ms")


if __name__ == "__main__":
    main()
