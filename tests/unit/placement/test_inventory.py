"""The inventory from Kubernetes objects (as the API returns them), nvidia-smi, or a declaration."""

from __future__ import annotations

from typing import Any

import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.placement import cluster, labels as L, local
from vllmbench.placement.inventory import Holding
from vllmbench.placement.profiles import GIB

MIB = 1 << 20


def node(name: str, *, gpus: int = 8, product: str = "NVIDIA-H100-80GB-HBM3", memory_mib: int | None = 81559,
         extra: dict[str, str] | None = None, allocatable: dict[str, str] | None = None,
         ready: bool = True, unschedulable: bool = False, taints: list[dict] | None = None) -> dict[str, Any]:
    labels = {L.HOSTNAME: name, L.GPU_PRODUCT: product, L.GPU_COUNT: str(gpus), **(extra or {})}
    if memory_mib:
        labels[L.GPU_MEMORY] = str(memory_mib)
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": str(gpus), **(allocatable or {})},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "reason": "KubeletReady" if ready else "KubeletNotReady"}]},
    }


def pod(name: str, node_name: str | None, requests: dict[str, str], *, phase: str = "Running",
        server: str | None = None, priority: int = 0, init: dict[str, str] | None = None,
        claim: int | None = None) -> dict[str, Any]:
    labels = {L.SERVER: server, L.SERVER_NAMESPACE: "team", L.PRIORITY: str(priority)} if server else {"app": "x"}
    notes = {L.PLACED_AT: "1700000000", **({L.CLAIM_BYTES: str(claim)} if claim else {})} if server else {}
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"limits": requests}}]}
    if node_name:
        spec["nodeName"] = node_name
    if init:
        spec["initContainers"] = [{"name": "i", "resources": {"limits": init}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "vllm", "labels": labels,
                                                           "annotations": notes},
            "spec": spec, "status": {"phase": phase}}


def test_gpus_minus_what_pods_hold_ours_and_everyone_elses() -> None:
    inventory = cluster.from_kube(
        [node("gpu-a"), node("gpu-b", gpus=4, product="NVIDIA-A100-SXM4-80GB", memory_mib=81920)],
        [pod("ours", "gpu-a", {"nvidia.com/gpu": "2"}, server="llama", priority=50),
         pod("theirs", "gpu-a", {"nvidia.com/gpu": "1", "cpu": "2"}),
         pod("done", "gpu-a", {"nvidia.com/gpu": "4"}, phase="Succeeded"),
         pod("failed", "gpu-b", {"nvidia.com/gpu": "4"}, phase="Failed"),
         pod("unbound", None, {"nvidia.com/gpu": "4"}, phase="Pending"),
         pod("init", "gpu-b", {"nvidia.com/gpu": "1"}, init={"nvidia.com/gpu": "3"})])
    a, b = inventory.nodes["gpu-a"], inventory.nodes["gpu-b"]
    assert (len(a.gpus), len(a.free_gpus()), a.gpu_memory) == (8, 5, 81559 * MIB)
    assert len(b.free_gpus()) == 1  # the init container's 3 GPUs count while it could run
    holders = inventory.holders()
    assert holders["team/llama"] == ["gpu-a"] and holders["pod vllm/theirs"] == ["gpu-a"]
    claims = {c.holder: c for g in a.gpus for c in g.claims}
    assert claims["team/llama"].priority == 50 and claims["team/llama"].placed_at == 1700000000
    assert claims["pod vllm/theirs"].priority is None  # never ours to preempt
    assert len(a.free_gpus(ignoring="team/llama")) == 7


def test_mig_mixed_strategy_profiles_and_their_slices() -> None:
    mixed = node("mig-a", gpus=0, product="NVIDIA-A100-SXM4-80GB", extra={
        L.MIG_STRATEGY: "mixed", "nvidia.com/mig-1g.10gb.count": "7", "nvidia.com/mig-1g.10gb.memory": "9856",
        "nvidia.com/mig-3g.40gb.count": "2", "nvidia.com/mig-3g.40gb.memory": "40192"},
        allocatable={"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"})
    inventory = cluster.from_kube([mixed], [pod("small", "mig-a", {"nvidia.com/mig-1g.10gb": "2"}, server="tiny"),
                                            pod("other", "mig-a", {"nvidia.com/mig-3g.40gb": "1"})])
    pools = inventory.nodes["mig-a"].mig
    assert inventory.nodes["mig-a"].gpus == []
    assert (pools["nvidia.com/mig-1g.10gb"].free, pools["nvidia.com/mig-1g.10gb"].memory) == (5, 9856 * MIB)
    assert pools["nvidia.com/mig-3g.40gb"].free == 1
    unlabelled = cluster.from_kube([node("mig-b", gpus=0, allocatable={"nvidia.com/mig-2g.20gb": "3"})], [])
    assert unlabelled.nodes["mig-b"].mig["nvidia.com/mig-2g.20gb"].memory == 20 * 10**9  # from the name


def test_time_slicing_makes_a_node_shareable_with_physical_gpus() -> None:
    sliced = node("ts", gpus=8, product="NVIDIA-L4-SHARED", memory_mib=23034, extra={L.GPU_REPLICAS: "4",
                                                                                     L.GPU_COUNT: "2"})
    inventory = cluster.from_kube([sliced], [pod("a", "ts", {"nvidia.com/gpu": "1"}, server="s", claim=10 * GIB),
                                             pod("b", "ts", {"nvidia.com/gpu": "1"})])
    ts = inventory.nodes["ts"]
    assert ts.shareable and len(ts.gpus) == 2
    assert sorted(c.bytes for g in ts.gpus for c in g.claims) == sorted([10 * GIB, 23034 * MIB // 4])
    assert all(len(g.claims) == 1 for g in ts.gpus)  # spread: each on the GPU with the most free


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"ready": False}, "not Ready (KubeletNotReady)"),
    ({"unschedulable": True}, "cordoned (spec.unschedulable)"),
    ({"taints": [{"key": "maintenance", "value": "yes", "effect": "NoSchedule"}]}, "tainted maintenance=yes:NoSchedule"),
    ({"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}, None),
    ({"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}, None),
])
def test_nodes_that_take_no_pods(kwargs: dict, reason: str | None) -> None:
    parsed = cluster.node_from_kube(node("n", **kwargs))
    assert parsed.schedulable == (reason is None)
    assert parsed.unschedulable_reason == reason


def test_memory_from_the_product_name_when_gfd_has_no_memory_label() -> None:
    parsed = cluster.node_from_kube(node("n", memory_mib=None, product="NVIDIA-H100-80GB-HBM3"))
    assert parsed.gpu_memory == 80 * 10**9
    assert cluster.node_from_kube(node("m", memory_mib=None, product="Tesla-T4")).gpu_memory == 0


@pytest.mark.parametrize(("declared", "expected"), [
    (None, [("local", 2, 80.0, "NVIDIA-H100-80GB-HBM3")]),
    ("4x24GB", [("node-0", 4, 24.0, "simulated-24GB")]),
    ("a=8x80GB:NVIDIA-H100-80GB-HBM3, b=2x40GiB:NVIDIA-A100-SXM4-40GB",
     [("a", 8, 80.0, "NVIDIA-H100-80GB-HBM3"), ("b", 2, 40.0, "NVIDIA-A100-SXM4-40GB")]),
    ('[{"name": "x", "gpus": 1, "memory_gib": 16, "product": "NVIDIA-T4"}]', [("x", 1, 16.0, "NVIDIA-T4")]),
])
def test_a_declared_inventory(declared: str | None, expected: list) -> None:
    inventory = local.simulated(declared)
    found = [(n.name, len(n.gpus), n.gpu_memory / GIB, n.product) for n in inventory.nodes.values()]
    assert found == expected
    assert all(n.shareable for n in inventory.nodes.values()) and inventory.source == "simulated"


@pytest.mark.parametrize("declared", ["2 GPUs", "x=2x", "a=1x8GB,a=1x8GB", '[{"gpus": 1}]', "[oops"])
def test_a_bad_declaration_names_the_setting(declared: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        local.simulated(declared)
    assert caught.value.details[0]["loc"] == ["VLLMBENCH_SIMULATED_GPUS"]


NVIDIA_SMI = """\
0, NVIDIA H100 80GB HBM3, 81559, 4, Disabled
1, NVIDIA H100 80GB HBM3, 81559, 40000, Disabled
2, NVIDIA H100 80GB HBM3, 81559, 200, Enabled
3, NVIDIA H100 80GB HBM3, 81559, [N/A], [N/A]
"""


def test_nvidia_smi_gpus_and_what_other_processes_hold() -> None:
    inventory = local.from_nvidia_smi(NVIDIA_SMI, node="box", ours={1: 30000 * MIB})
    box = inventory.nodes["box"]
    assert [g.index for g in box.gpus] == [0, 1, 3]  # MIG-enabled GPU 2 is left to MIG
    assert box.product == "NVIDIA-H100-80GB-HBM3" and box.shareable
    assert [(c.holder, c.bytes) for c in box.gpus[1].claims] == [("process", 10000 * MIB)]
    assert box.gpus[2].claims == []
    inventory.hold(Holding("team/s", "box", (3,), 40 * GIB, priority=1))
    assert box.gpus[2].free == 81559 * MIB - 40 * GIB
    assert local.from_nvidia_smi("").nodes["local"].gpus == []


def test_hold_release_and_copy_are_independent() -> None:
    inventory = local.simulated("n=2x80GB")
    copy = inventory.copy()
    copy.hold(Holding("a/b", "n", (0, 1), 0, priority=5))
    assert [len(g.claims) for g in inventory.nodes["n"].gpus] == [0, 0]
    assert copy.nodes["n"].free_gpus() == []
    assert copy.release("a/b") == 2 and len(copy.nodes["n"].free_gpus()) == 2
    summary = copy.summary()
    assert summary["nodes"][0]["gpus"][0]["free_gib"] == 80.0
