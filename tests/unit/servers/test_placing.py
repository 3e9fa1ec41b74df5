"""What a sync plans (pure): new and changed servers, servers that left Git or lost their node, and the
waiting ones coming back, on an inventory of Kubernetes-shaped nodes with the ledger's claims in it."""

from __future__ import annotations

from typing import Any

import pytest

from vllmbench.placement.cluster import from_kube
from vllmbench.placement.inventory import Inventory
from vllmbench.servers import capacity
from vllmbench.servers.folder import ServerFile, load, path_of
from vllmbench.servers.placing import plan_sync, waiting

H100 = "NVIDIA-H100-80GB-HBM3"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def node(name: str, gpus: int = 4) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": H100, "nvidia.com/gpu.memory": "81559",
                                                  "kubernetes.io/hostname": name}},
            "spec": {}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                                   "conditions": [{"type": "Ready", "status": "True"}]}}


def server(name: str, **fields: Any) -> ServerFile:
    return load({"model_name": LLAMA, "served_model_name": name, "max_model_len": 8192, **fields},
                namespace="team", name=name, path=path_of("team", name))


def files(*found: ServerFile) -> dict[str, ServerFile]:
    return {f.key: f for f in found}


def record(found: ServerFile, decision: Any, phase: str, **extra: Any) -> dict[str, Any]:
    return {"_id": found.key, "digest": found.digest, "identity": found.spec.identity(), "phase": phase,
            "priority": found.spec.priority, "decision": decision.model_dump(mode="json"), "placed_at": 1.0, **extra}


class Cluster:
    """Nodes, the ledger and the records, synced like the service does, one step at a time."""

    def __init__(self, *nodes: dict[str, Any]) -> None:
        self.nodes = list(nodes)
        self.claims: list[dict[str, Any]] = []
        self.docs: dict[str, dict[str, Any]] = {}

    def inventory(self) -> tuple[Inventory, set[str]]:
        inventory = from_kube(self.nodes, [])
        return inventory, capacity.lay_claims(inventory, self.claims)

    def sync(self, wanted: dict[str, ServerFile], held: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
        inventory, lost = self.inventory()
        out = plan_sync(wanted, set(held), self.docs, inventory, ledger_holders={c["holder"] for c in self.claims},
                        lost=lost, now=2.0)
        self.claims = capacity.claim_docs(inventory, set(wanted) | set(held))
        for key in out.gone:
            self.docs.pop(key, None)
        for key, decision in out.decisions.items():
            if decision.outcome == "unchanged":
                self.docs[key]["digest"] = wanted[key].digest
                continue
            phase = {"placed": "ready", "reused": "ready", "pending": "pending"}[decision.outcome]
            self.docs[key] = record(wanted[key], decision, phase, reused=decision.reused)
        for key, victim in out.victims.items():
            self.docs[key] = {**self.docs[key], "phase": "pending", "preempted_by": victim.reason}
        return out

    def held(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for claim in self.claims:
            counts[claim["holder"]] = counts.get(claim["holder"], 0) + 1
        return counts


def test_new_servers_are_placed_and_a_second_sync_plans_nothing() -> None:
    cluster = Cluster(node("a"))
    wanted = files(server("x", tensor_parallel_size=2), server("y"))
    first = cluster.sync(wanted)
    assert {k: d.outcome for k, d in first.decisions.items()} == {"team/x": "placed", "team/y": "placed"}
    assert first.why == {"team/x": "new in Git", "team/y": "new in Git"}
    assert cluster.held() == {"team/x": 2, "team/y": 1}
    assert cluster.sync(wanted).decisions == {}


def test_a_server_that_left_git_frees_its_gpus_and_the_waiting_one_takes_them() -> None:
    cluster = Cluster(node("a", gpus=2))
    big, other = server("big", tensor_parallel_size=2, priority=5), server("other", tensor_parallel_size=2)
    cluster.sync(files(big))
    waiting_out = cluster.sync(files(big, other))
    assert waiting_out.decisions["team/other"].outcome == "pending"
    back = cluster.sync(files(other))
    assert back.gone == {"team/big"}
    assert back.decisions["team/other"].outcome == "placed" and back.why["team/other"] == "waiting for capacity"
    assert cluster.held() == {"team/other": 2}


def test_a_preempted_server_waits_and_comes_back_by_itself_when_capacity_returns() -> None:
    cluster = Cluster(node("a", gpus=2))
    low, high = server("low", tensor_parallel_size=2, priority=1), server("high", tensor_parallel_size=2, priority=9)
    cluster.sync(files(low))
    out = cluster.sync(files(low, high))
    assert out.decisions["team/high"].outcome == "placed" and set(out.victims) == {"team/low"}
    assert "team/low" not in out.decisions and cluster.held() == {"team/high": 2}
    assert waiting("team/low", cluster.docs["team/low"], cluster.docs)
    assert cluster.sync(files(low, high)).decisions["team/low"].outcome == "pending"  # still no room
    cluster.nodes.append(node("b", gpus=2))  # capacity returns
    back = cluster.sync(files(low, high))
    assert back.decisions["team/low"].outcome == "placed" and back.decisions["team/low"].node == "b"
    assert cluster.held() == {"team/high": 2, "team/low": 2}


def test_a_changed_server_replaces_itself_on_its_own_gpus_and_one_that_no_longer_fits_holds_nothing() -> None:
    cluster = Cluster(node("a", gpus=2))
    cluster.sync(files(server("x", tensor_parallel_size=2)))
    changed = cluster.sync(files(server("x", tensor_parallel_size=2, max_num_seqs=64)))
    assert changed.why["team/x"] == "its spec changed in Git"
    assert changed.decisions["team/x"].outcome == "placed" and cluster.held() == {"team/x": 2}
    too_big = cluster.sync(files(server("x", tensor_parallel_size=4)))
    assert too_big.decisions["team/x"].outcome == "pending" and cluster.held() == {}


def test_a_priority_change_alone_keeps_the_placement_and_carries_the_new_priority() -> None:
    cluster = Cluster(node("a", gpus=2))
    cluster.sync(files(server("x", tensor_parallel_size=2, priority=1)))
    out = cluster.sync(files(server("x", tensor_parallel_size=2, priority=70)))
    assert out.decisions["team/x"].outcome == "unchanged" and out.kept == {"team/x"}
    assert {c["priority"] for c in cluster.claims} == {70}
    rival = cluster.sync(files(server("x", tensor_parallel_size=2, priority=70),
                               server("rival", tensor_parallel_size=2, priority=50)))
    assert rival.decisions["team/rival"].outcome == "pending"  # 50 < 70: no preemption


def test_servers_on_a_node_that_left_are_placed_again_elsewhere() -> None:
    cluster = Cluster(node("a", gpus=2), node("b", gpus=2))
    first = cluster.sync(files(server("x", tensor_parallel_size=2)))
    old = first.decisions["team/x"].node
    cluster.nodes = [n for n in cluster.nodes if n["metadata"]["name"] != old]
    moved = cluster.sync(files(server("x", tensor_parallel_size=2)))
    assert moved.why["team/x"] == "its node (or GPU) left the cluster"
    assert moved.decisions["team/x"].node != old and cluster.held() == {"team/x": 2}


def test_an_identical_ready_server_is_reused_and_its_twin_leaving_makes_it_placed_again() -> None:
    cluster = Cluster(node("a", gpus=2))
    a, b = server("a"), server("b").spec.model_dump(mode="json", exclude_unset=True)
    twin = load({**b, "served_model_name": "a"}, namespace="team", name="b", path=path_of("team", "b"))
    cluster.sync(files(a))
    reused = cluster.sync(files(a, twin))
    assert reused.decisions["team/b"].outcome == "reused" and reused.decisions["team/b"].reused == "team/a"
    assert cluster.held() == {"team/a": 1}
    assert cluster.sync(files(a, twin)).decisions == {}
    alone = cluster.sync(files(twin))
    assert alone.why["team/b"] == "the server it reused, team/a, is gone"
    assert alone.decisions["team/b"].outcome == "placed" and cluster.held() == {"team/b": 1}


def test_a_held_file_keeps_its_claims_and_is_not_planned() -> None:
    cluster = Cluster(node("a", gpus=2))
    cluster.sync(files(server("x", tensor_parallel_size=2)))
    out = cluster.sync({}, held={"team/x"})
    assert out.decisions == {} and out.gone == set() and cluster.held() == {"team/x": 2}


@pytest.mark.parametrize("claim, lost", [
    ({"holder": "team/x", "node": "gone", "gpu": 0, "mig": None, "bytes": 1}, True),
    ({"holder": "team/x", "node": "a", "gpu": 9, "mig": None, "bytes": 1}, True),
    ({"holder": "team/x", "node": "a", "gpu": None, "mig": "nvidia.com/mig-1g.10gb", "bytes": 1}, True),
    ({"holder": "team/x", "node": "a", "gpu": 1, "mig": None, "bytes": 1}, False),
])
def test_ledger_claims_without_their_node_gpu_or_profile_are_lost(claim: dict[str, Any], lost: bool) -> None:
    inventory = from_kube([node("a", gpus=2)], [])
    assert capacity.lay_claims(inventory, [claim]) == ({"team/x"} if lost else set())
