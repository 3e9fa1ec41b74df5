"""The planner, step by step: each resolution step, each conflict, the numbers a user reads."""

from __future__ import annotations

from typing import Any

import pytest

from vllmbench.models.servers import ModelFacts, ModelServerSpec
from vllmbench.placement import catalog, cluster, local
from vllmbench.placement.advice import smallest_mig_profile
from vllmbench.placement.decision import Decision
from vllmbench.placement.inventory import Inventory
from vllmbench.placement.planner import RunningServer, apply, plan
from vllmbench.placement.profiles import GIB
from vllmbench.placement.replan import Wanted, plan_all
from tests.unit.placement.test_inventory import node, pod

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
H100, A100, L4 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L4"


def kube(nodes: dict[str, tuple[str, int]], held: list[tuple[str, str, int, int | None]] = (),
         **node_kwargs: Any) -> Inventory:
    """Nodes name -> (product, GPUs); held: (server or pod name, node, GPUs, priority; None: not ours)."""
    memory = {H100: 81559, A100: 81920, L4: 23034}
    pods = [pod(name.replace("/", "-"), where, {"nvidia.com/gpu": str(count)},
                server=name.split("/")[-1] if priority is not None else None, priority=priority or 0)
            for name, where, count, priority in held]
    return cluster.from_kube([node(n, gpus=g, product=p, memory_mib=memory.get(p, 81559), **node_kwargs)
                              for n, (p, g) in nodes.items()], pods)


def spec(model: str = LLAMA_8B, **fields: Any) -> ModelServerSpec:
    return ModelServerSpec.model_validate({"model_name": model, "max_model_len": 8192, **fields})


def decide(server: ModelServerSpec, inventory: Inventory, *, key: str = "team/new",
           running: list[RunningServer] | None = None, facts: ModelFacts | None = None) -> Decision:
    return plan(server, key=key, facts=facts or catalog.lookup(server.model_name), inventory=inventory,
                running=running or [])


def steps(decision: Decision) -> list[tuple[str, str]]:
    return [(s.step, s.outcome) for s in decision.steps]


def kinds(decision: Decision) -> set[str]:
    return {c.kind for c in decision.conflicts}


def test_packing_fills_the_busiest_node_that_fits_and_keeps_whole_nodes_free() -> None:
    inventory = kube({"gpu-a": (H100, 8), "gpu-b": (H100, 8), "gpu-c": (H100, 8)},
                     [("team/x", "gpu-b", 5, 10), ("team/y", "gpu-c", 7, 10)])
    two = decide(spec(tensor_parallel_size=2), inventory)
    assert two.outcome == "placed" and two.node == "gpu-b"  # 3 free -> 1 left; gpu-c has only 1
    assert steps(two) == [("validate", "chosen"), ("reuse", "skipped"), ("place", "chosen")]
    one = decide(spec(), inventory)
    assert one.node == "gpu-c" and one.replicas[0].gpus == [7]
    assert one.memory and one.memory["fits"] and one.memory["kv_tokens"] > 100_000
    assert one.max_model_len == 8192 and one.strategy == "Recreate"


def test_another_accepted_accelerator_when_the_first_is_full() -> None:
    inventory = kube({"h": (H100, 2), "a": (A100, 2)}, [("team/x", "h", 2, 100)])
    decision = decide(spec(accelerators=["NVIDIA-H100*", "NVIDIA-A100*"]), inventory)
    assert decision.outcome == "placed" and decision.node == "a" and decision.accelerator == A100
    assert steps(decision)[2:] == [("place", "failed"), ("other_accelerator", "chosen")]
    assert "has 0 free of the 1 needed" in decision.steps[2].message
    busy = [c for c in decision.conflicts if c.kind == "no_free_gpus"]
    assert busy and busy[0].resolution == "placed on NVIDIA-A100* instead"


def test_the_wrong_accelerator_is_not_used_and_says_so() -> None:
    inventory = kube({"h": (H100, 2), "a": (A100, 4)}, [("team/x", "h", 2, 100)])
    decision = decide(spec(accelerators=["NVIDIA-H100*"], preemption_policy="Never"), inventory)
    assert decision.outcome == "pending"
    assert "wrong_accelerator" in kinds(decision)
    assert ("other_accelerator", "skipped") in steps(decision)
    assert decision.shortfall and decision.shortfall["best_node"] == "h" and decision.shortfall["best_node_free"] == 0


def test_shrink_max_model_len_within_the_spec() -> None:
    inventory = kube({"l4": (L4, 1)})
    strict = decide(spec(max_model_len=131072), inventory)
    assert strict.outcome == "pending" and "memory_does_not_fit" in kinds(strict)
    assert "the largest max_model_len that fits is" in strict.reason
    allowed = decide(spec(max_model_len=131072, shrink={"max_model_len_min": 2048}), inventory)
    assert allowed.outcome == "placed"
    assert 2048 <= allowed.max_model_len < 131072 and allowed.max_model_len % 16 == 0
    assert ("shrink", "chosen") in steps(allowed)
    assert all(c.resolution for c in allowed.conflicts if c.kind == "memory_does_not_fit")
    too_far = decide(spec(max_model_len=131072, shrink={"max_model_len_min": 65536}), inventory)
    assert too_far.outcome == "pending" and ("shrink", "failed") in steps(too_far)


def test_auto_max_model_len_takes_the_largest_that_fits_without_shrinking() -> None:
    decision = decide(spec(max_model_len="auto"), kube({"l4": (L4, 1)}))
    assert decision.outcome == "placed" and decision.max_model_len == decision.memory["largest_max_model_len"]
    assert ("shrink", "chosen") not in steps(decision)


def test_shrink_gpu_memory_utilization_to_share_a_gpu() -> None:
    inventory = local.simulated("box=1x80GB:" + H100)
    first = decide(spec(gpu_memory_utilization=0.45), inventory, key="team/a")
    apply(inventory, first)
    second = decide(spec(model="Qwen/Qwen2.5-7B-Instruct", gpu_memory_utilization=0.6), inventory, key="team/b")
    assert second.outcome == "pending"
    shrunk = decide(spec(model="Qwen/Qwen2.5-7B-Instruct", gpu_memory_utilization=0.6,
                         shrink={"gpu_memory_utilization_min": 0.3}), inventory, key="team/b")
    assert shrunk.outcome == "placed" and 0.3 <= shrunk.gpu_memory_utilization < 0.6
    apply(inventory, shrunk)
    gpu = inventory.nodes["box"].gpus[0]
    assert sum(c.bytes for c in gpu.claims) <= gpu.memory  # vLLM's start check: free >= each budget
    assert {c.holder for c in gpu.claims} == {"team/a", "team/b"}


def test_preempt_the_smallest_set_of_lower_priority() -> None:
    inventory = kube({"n": (H100, 4)}, [("team/low", "n", 1, 10), ("team/mid", "n", 2, 20), ("team/high", "n", 1, 90)])
    running = [RunningServer("team/low", {}, 10, True), RunningServer("team/mid", {}, 20, True),
               RunningServer("team/high", {}, 90, True)]
    decision = decide(spec(tensor_parallel_size=2, priority=50), inventory, running=running)
    assert decision.outcome == "placed"
    assert [v.server for v in decision.preempted] == ["team/mid"]  # low alone is not enough; mid alone is
    assert ("preempt", "chosen") in steps(decision)
    assert "returns by itself" in decision.preempted[0].reason
    assert [(c.kind, c.resolution) for c in decision.conflicts] == [("no_free_gpus", "preempted team/mid (priority 20)")]
    apply(inventory, decision)
    assert "team/mid" not in inventory.holders() and inventory.holders()["team/new"] == ["n"]


def test_preemption_takes_the_lowest_priority_first_and_never_equal_or_foreign() -> None:
    inventory = kube({"n": (H100, 3)}, [("team/a", "n", 1, 10), ("team/b", "n", 1, 30), ("someone", "n", 1, None)])
    decision = decide(spec(priority=30), inventory)
    assert [v.server for v in decision.preempted] == ["team/a"]
    blocked = decide(spec(priority=10, tensor_parallel_size=2), inventory)
    assert blocked.outcome == "pending" and ("preempt", "failed") in steps(blocked)
    never = decide(spec(priority=99, preemption_policy="Never"), inventory)
    assert never.outcome == "pending" and ("preempt", "skipped") in steps(never)


def test_pending_reports_the_shortfall_in_numbers() -> None:
    inventory = kube({"a": (H100, 4), "b": (H100, 4)},
                     [("team/s1", "a", 3, 50), ("team/s2", "b", 2, 60), ("team/s3", "b", 2, 70)])
    decision = decide(spec(tensor_parallel_size=2, priority=50), inventory)
    assert decision.outcome == "pending"
    assert decision.reason == ("needs 2 x NVIDIA-H100-80GB-HBM3 (79.6 GiB) on one node; the best node a has 1 free; "
                               "3 servers of priority >= 50 hold the rest")
    assert decision.shortfall["holding_servers"] == ["team/s1", "team/s2", "team/s3"]
    assert steps(decision)[-1] == ("pending", "chosen")
    assert [s for s, _ in steps(decision)] == ["validate", "reuse", "place", "other_accelerator", "shrink",
                                               "preempt", "pending"]
    assert decision.memory and decision.memory["fits"]


def test_a_model_too_big_for_any_gpu_says_what_would_fit() -> None:
    decision = decide(spec(model="meta-llama/Llama-3.1-70B-Instruct"), kube({"n": (H100, 8)}))
    assert decision.outcome == "pending" and "memory_does_not_fit" in kinds(decision)
    assert "no memory for the KV cache" in decision.reason
    assert decision.shortfall["needed_gib_per_gpu"] > 130
    assert decision.hints[0] == "tensor_parallel_size: 2 fits (2 GPUs per replica)"


def test_reuse_an_identical_healthy_server_and_report_it() -> None:
    inventory = kube({"n": (H100, 1)}, [("team/old", "n", 1, 10)])
    twin = spec()
    running = [RunningServer("team/old", twin.identity(), 10, ready=True, phase="ready")]
    decision = decide(twin, inventory, running=running)
    assert decision.outcome == "reused" and decision.reused == "team/old"
    assert decision.steps[-1].step == "reuse" and "identical" in decision.steps[-1].message
    starting = [RunningServer("team/old", twin.identity(), 10, ready=False, phase="starting")]
    not_yet = decide(twin, kube({"n": (H100, 2)}, [("team/old", "n", 1, 10)]), running=starting)
    assert not_yet.outcome == "placed" and "identical_server_not_ready" in kinds(not_yet)
    other = decide(spec(kv_cache_dtype="fp8"), inventory, running=running)
    assert other.outcome != "reused"


def test_the_same_server_twice_changes_nothing() -> None:
    inventory = kube({"n": (H100, 1)}, [("team/new", "n", 1, 0)])
    again = decide(spec(), inventory, running=[RunningServer("team/new", spec().identity(), 0, True, "ready")])
    assert again.outcome == "unchanged" and "duplicate_server" in kinds(again)


def test_an_update_on_a_full_node_is_a_recreate_on_its_own_gpus() -> None:
    inventory = kube({"n": (H100, 2)}, [("team/new", "n", 2, 0)])
    old = RunningServer("team/new", spec(tensor_parallel_size=2).identity(), 0, True, "ready")
    decision = decide(spec(tensor_parallel_size=2, max_num_seqs=64), inventory, running=[old])
    assert decision.outcome == "placed" and decision.replicas[0].gpus == [0, 1]
    deadlock = [c for c in decision.conflicts if c.kind == "rolling_update_deadlock"]
    assert deadlock and "Recreate" in (deadlock[0].resolution or "")


def test_tp_not_dividing_the_heads_is_refused_before_placement() -> None:
    decision = decide(spec(model="Qwen/Qwen2.5-7B-Instruct", tensor_parallel_size=8), kube({"n": (H100, 8)}))
    assert decision.outcome == "invalid" and "tp_not_dividing_heads" in kinds(decision)
    assert "try one of [1, 2, 4, 7, 14, 28]" in decision.reason
    assert decision.replicas == []


def test_more_gpus_than_any_node_has() -> None:
    decision = decide(spec(model="meta-llama/Llama-3.1-70B-Instruct", tensor_parallel_size=16),
                      kube({"a": (H100, 8), "b": (H100, 8)}))
    assert decision.outcome == "pending" and "too_many_gpus_for_one_node" in kinds(decision)


MIG_NODE = node("mig", gpus=0, product="NVIDIA-A100-SXM4-80GB", extra={
    "nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.memory": "9856",
    "nvidia.com/mig-2g.20gb.memory": "19968", "nvidia.com/mig-3g.40gb.memory": "40192"},
    allocatable={"nvidia.com/mig-1g.10gb": "2", "nvidia.com/mig-2g.20gb": "1", "nvidia.com/mig-3g.40gb": "1"})


def test_a_mig_profile_too_small_names_the_one_that_fits() -> None:
    inventory = cluster.from_kube([MIG_NODE], [])
    decision = decide(spec(gpu_resource_type="nvidia.com/mig-1g.10gb"), inventory)
    assert decision.outcome == "pending"
    small = [c for c in decision.conflicts if c.kind == "mig_profile_too_small"]
    assert small and small[0].message.endswith("the smallest profile here that fits is nvidia.com/mig-3g.40gb")
    fits = decide(spec(gpu_resource_type="nvidia.com/mig-3g.40gb"), inventory)
    assert fits.outcome == "placed" and fits.replicas[0].resource == "nvidia.com/mig-3g.40gb"
    apply(inventory, fits)
    assert inventory.nodes["mig"].mig["nvidia.com/mig-3g.40gb"].free == 0


PROFILES = [("nvidia.com/mig-1g.10gb", 9856 << 20), ("nvidia.com/mig-2g.20gb", 19968 << 20),
            ("nvidia.com/mig-3g.40gb", 40192 << 20), ("nvidia.com/mig-7g.80gb", 81920 << 20)]


@pytest.mark.parametrize(("model", "fields", "chosen"), [
    ("facebook/opt-125m", {"max_model_len": 2048}, "nvidia.com/mig-1g.10gb"),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", {"max_num_seqs": 64}, "nvidia.com/mig-1g.10gb"),
    (LLAMA_8B, {"max_num_seqs": 64, "max_model_len": 4096}, "nvidia.com/mig-2g.20gb"),
    (LLAMA_8B, {"max_model_len": 32768}, "nvidia.com/mig-3g.40gb"),
    ("Qwen/Qwen2.5-7B-Instruct", {"max_model_len": 32768, "max_num_seqs": 512}, "nvidia.com/mig-3g.40gb"),
    ("meta-llama/Llama-3.1-70B-Instruct", {}, None),
])
def test_mig_profile_choice(model: str, fields: dict, chosen: str | None) -> None:
    found = smallest_mig_profile(spec(model=model, **fields), catalog.lookup(model), PROFILES)
    assert (found[0] if found else None) == chosen


def test_replicas_are_placed_all_or_none() -> None:
    inventory = kube({"a": (H100, 8), "b": (H100, 4)})
    three = decide(spec(tensor_parallel_size=4, replicas=3), inventory)
    assert three.outcome == "placed" and sorted(r.node for r in three.replicas) == ["a", "a", "b"]
    assert len({tuple(r.gpus) for r in three.replicas if r.node == "a"}) == 2
    four = decide(spec(tensor_parallel_size=4, replicas=4, preemption_policy="Never"), inventory)
    assert four.outcome == "pending" and four.replicas == []
    assert "4 times" in four.reason


def test_cordoned_and_unselected_nodes_are_not_used() -> None:
    inventory = kube({"a": (H100, 8)}, unschedulable=True)
    assert decide(spec(), inventory).outcome == "pending"
    labelled = kube({"a": (H100, 8), "b": (H100, 8)})
    labelled.nodes["b"].labels["pool"] = "bench"
    assert decide(spec(node_selector={"pool": "bench"}), labelled).node == "b"


def test_a_cpu_server_needs_no_gpu() -> None:
    decision = decide(spec(model="facebook/opt-125m", gpu_resource_type="cpu", max_model_len=2048),
                      local.simulated())
    assert decision.outcome == "placed" and decision.replicas[0].resource == "cpu"
    assert decision.replicas[0].gpus == [] and decision.max_model_len == 2048


def test_plan_all_by_priority_never_gives_two_servers_the_same_gpus() -> None:
    inventory = kube({"n": (H100, 2)}, [("someone", "n", 1, None)])
    facts = catalog.lookup(LLAMA_8B)
    wanted = [Wanted("team/low", spec(priority=1), facts), Wanted("team/high", spec(priority=9), facts),
              Wanted("team/high", spec(priority=9), facts)]
    decisions = plan_all(wanted, inventory)
    assert [(d.server, d.outcome) for d in decisions] == [("team/high", "placed"), ("team/low", "pending")]
    assert inventory.nodes["n"].free_gpus() != []  # the caller's inventory is untouched


def test_preempted_servers_come_back_when_capacity_returns() -> None:
    inventory = kube({"n": (H100, 1)}, [("team/low", "n", 1, 10)])
    facts = catalog.lookup(LLAMA_8B)
    urgent = decide(spec(priority=90), inventory, key="team/urgent")
    assert [v.server for v in urgent.preempted] == ["team/low"]
    apply(inventory, urgent)
    waiting = plan_all([Wanted("team/low", spec(priority=10), facts)], inventory, fresh=False)
    assert waiting[0].outcome == "pending"
    inventory.release("team/urgent")  # the urgent server is deleted
    back = plan_all([Wanted("team/low", spec(priority=10), facts)], inventory, fresh=False)
    assert back[0].outcome == "placed" and back[0].node == "n"


def test_decisions_serialize_for_the_api() -> None:
    decision = decide(spec(), kube({"n": (H100, 1)}))
    body = decision.model_dump(mode="json")
    assert body["memory"]["gib"]["gpu_memory"] == pytest.approx(79.65, abs=0.01)
    assert body["steps"][0]["step"] == "validate"
    assert Decision.model_validate(body) == decision
    assert decision.memory["kv_available"] > 40 * GIB
