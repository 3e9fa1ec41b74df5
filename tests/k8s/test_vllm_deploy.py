"""The vLLM service on the real control plane (kwok nodes with GPUs and MIG slices), as a user sees it.

Each test adds kwok nodes of a GPU product of its own (the servers accept only that
product, so the session's other tests never share their GPUs), and has its own
namespace, Git remote and database. vLLM cannot run here: kwok's pods are Ready without
a process, and one simulator on this machine stands in for every server's /v1/models
(VLLMBENCH_VLLM_PROBE_URL points the service at it, as it would at a kubectl proxy).
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.fixtures.cluster import wait_for
from tests.integration.gitops.gitutil import Person, head, make_remote, show
from vllmbench.simulator import SimConfig, SimulatorThread

pytestmark = pytest.mark.k8s

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
SERVED = ("llama-a", "llama-b", "llama-c", "opt", "batch", "chat", "urgent", "racer-1", "racer-2", "moved")


class Broker:
    """Where the function sends its CloudEvents (K_SINK)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                broker.events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def of(self, server: str) -> list[str]:
        """The model event types announced for ``server`` (an id), in order."""
        return [e["type"].rsplit(".", 1)[-1] for e in self.events
                if e["type"].startswith("dev.vllmbench.model.") and e["data"]["id"] == server]


class Setup:
    def __init__(self, served: Any, remote: Path, namespace: str, cluster: Any, broker: Broker, product: str) -> None:
        self.served, self.remote, self.ns, self.cluster, self.broker = served, remote, namespace, cluster, broker
        self.product = product

    def spec(self, served_name: str, **fields: Any) -> dict[str, Any]:
        return {"model_name": LLAMA_8B, "served_model_name": served_name, "accelerators": [self.product],
                "max_model_len": 8192, **fields}

    def deploy(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.served.post("/deploy", json={"config": self.spec(name, **fields), "name": name,
                                                    "namespace": "team"})
        assert answer.status_code == 202, answer.text
        return answer.json()

    def tick(self) -> dict[str, Any]:
        answer = self.served.post("/", data=json.dumps({"job": "servers"}), headers={
            "ce-specversion": "1.0", "ce-id": uuid.uuid4().hex, "ce-source": "/apis/v1/namespaces/vllmbench/pingsources/t",
            "ce-type": "dev.knative.sources.ping", "Content-Type": "application/json"})
        assert answer.status_code in (200, 202), answer.text
        return answer.json()

    def status(self, name: str) -> dict[str, Any]:
        answer = self.served.get(f"/deployments/team.{name}/status")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait(self, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.status(name))
            return seen["status"] == phase

        wait_for(reached, timeout, f"team.{name} to be {phase}", lambda: (seen.get("status"), seen.get("reason")))
        return seen

    def deployment(self, name: str) -> Any:
        return self.cluster.apps_v1.read_namespaced_deployment(name, self.ns)

    def ledger(self) -> dict[str, int]:
        """GPUs held per server on this test's nodes, as GET /inventory shows them."""
        held: dict[str, int] = {}
        for node in self.served.get("/inventory").json()["nodes"]:
            if node["product"] != self.product:
                continue
            for gpu in node["gpus"]:
                for holder in gpu["held_by"]:
                    held[holder["holder"]] = held.get(holder["holder"], 0) + 1
            for pool in node["mig"]:
                for holder in pool["held_by"]:
                    held[holder] = held.get(holder, 0) + 1
        return held


@pytest.fixture
def nodes(k8s_cluster: Any) -> Iterator[Any]:
    """``nodes(count, gpus, **kwargs)``: kwok nodes of a GPU product of this test's own, removed afterwards."""
    product = f"TEST-{uuid.uuid4().hex[:6]}-H100-80GB-HBM3"
    made: list[str] = []

    def add(count: int = 1, gpus: int = 4, **kwargs: Any) -> list[str]:
        names = []
        for _ in range(count):
            name = f"vllm-{uuid.uuid4().hex[:8]}"
            labels = {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": "81559", **kwargs.pop("labels", {})}
            k8s_cluster.add_node(name, gpus=gpus, labels=labels, **kwargs)
            made.append(name)
            names.append(name)
        return sorted(names)

    add.product = product  # type: ignore[attr-defined]
    yield add
    for name in made:
        try:
            k8s_cluster.remove_node(name)
        except Exception:  # noqa: BLE001 - a test may have removed it already
            pass


@pytest.fixture
def vllm(serve_function: Any, k8s_cluster: Any, k8s_namespace: str, tmp_path: Path, nodes: Any) -> Iterator[Setup]:
    remote = make_remote(tmp_path / "config.git", {"README.md": "config\n"})
    broker = Broker()
    simulator = SimulatorThread(SimConfig(port=0, models=SERVED)).start()
    served = serve_function("vllm_deploy", gitops_repo_url=str(remote), runtime="kube",
                            kubeconfig=str(k8s_cluster.kubeconfig), workload_namespaces=k8s_namespace,
                            data_dir=str(tmp_path / "data"), broker_url=broker.url,
                            vllm_probe_url=f"http://127.0.0.1:{simulator.port}")
    yield Setup(served, remote, k8s_namespace, k8s_cluster, broker, nodes.product)
    simulator.stop()
    broker.server.shutdown()
    broker.server.server_close()


def test_a_server_is_placed_on_the_node_that_fits_applied_and_followed_to_ready(vllm: Setup, nodes: Any) -> None:
    small = nodes(1, gpus=2)[0]
    big = nodes(1, gpus=8)[0]
    before = head(vllm.remote)
    body = vllm.deploy("llama-a", tensor_parallel_size=2)
    assert body["decision"]["outcome"] == "placed" and body["node"] == small  # packing: the full node, not the empty 8
    assert body["created_commit"] and head(vllm.remote) == body["commit"] != before
    assert yaml.safe_load(show(vllm.remote, "models/team/llama-a.yaml"))["tensor_parallel_size"] == 2
    assert body["status"] in ("placed", "starting") and body["url"].startswith("http://127.0.0.1:")

    deployment = vllm.deployment("llama-a")
    template = deployment.spec.template
    assert deployment.spec.strategy.type == "Recreate"
    assert deployment.metadata.labels["vllmbench.dev/owner"] == "vllm"
    assert template.metadata.labels["vllmbench.dev/owner"] == "vllm"  # the engine's marks and ...
    assert template.metadata.labels["vllmbench.dev/server"] == "llama-a"  # ... the placement's labels both survive
    assert template.metadata.labels["vllmbench.dev/server-namespace"] == "team"
    terms = template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    assert terms[0].match_expressions[0].values == [small]
    container = template.spec.containers[0]
    assert container.resources.limits == {"nvidia.com/gpu": "2"}
    assert container.readiness_probe.http_get.path == "/health" and container.startup_probe.http_get.path == "/health"
    assert "--tensor-parallel-size" in container.args and "8192" in container.args

    pods = wait_for(lambda: [p for p in vllm.cluster.core_v1.list_namespaced_pod(vllm.ns).items
                             if p.spec.node_name == small], 30, "the server's pod on its node")
    assert pods[0].metadata.labels["vllmbench.dev/server"] == "llama-a"

    vllm.tick()
    ready = vllm.wait("llama-a", "ready")
    assert "serves llama-a" in ready["reason"]
    assert vllm.broker.of("team.llama-a")[:2] == ["placed", "ready"]
    event = next(e for e in vllm.broker.events if e["type"] == "dev.vllmbench.model.ready")
    expected = {"namespace": "team", "server": "llama-a", "model": LLAMA_8B, "served_model_name": "llama-a",
                "url": ready["url"], "commit": body["commit"]}
    assert {k: event["data"][k] for k in expected} == expected
    assert event["data"]["identity"] and event["source"] == "/vllmbench/benchmark-vllm"
    vllm.tick()
    assert vllm.broker.of("team.llama-a").count("ready") == 1  # once per transition, however often it is observed

    assert vllm.ledger() == {"team/llama-a": 2}
    listing = vllm.served.get("/deployments").json()
    assert listing["team.llama-a"]["status"] == "ready" and listing["team.llama-a"]["config"]["tensor_parallel_size"] == 2
    assert listing["team.llama-a"]["created_at"]
    assert vllm.served.get("/status").json()["phases"] == {"ready": 1}


def test_pending_with_the_shortfall_preemption_and_the_victim_coming_back(vllm: Setup, nodes: Any) -> None:
    nodes(1, gpus=4)
    batch = vllm.deploy("batch", tensor_parallel_size=4, priority=10)
    assert batch["decision"]["outcome"] == "placed"

    chat = vllm.deploy("chat", tensor_parallel_size=4, priority=5)
    assert chat["status"] == "pending" and chat["decision"]["outcome"] == "pending"
    assert "needs 4 x" in chat["reason"] and "has 0 free" in chat["reason"] and "1 servers of priority >= 10 hold the rest" in chat["reason"]
    assert vllm.broker.of("team.chat") == ["pending"]
    assert vllm.deployment("chat").spec.replicas == 0

    urgent = vllm.deploy("urgent", tensor_parallel_size=4, priority=50)
    assert urgent["decision"]["outcome"] == "placed"
    assert [v["server"] for v in urgent["decision"]["preempted"]] == ["team/batch"]
    victim = vllm.status("batch")
    assert victim["status"] == "pending" and victim["preempted_by"] == "team/urgent"
    assert "preempted by team/urgent" in victim["reason"] and "returns by itself" in victim["reason"]
    assert vllm.broker.of("team.batch")[-1] == "preempted"
    assert vllm.deployment("batch").spec.replicas == 0
    assert vllm.ledger() == {"team/urgent": 4}

    gone = vllm.served.delete("/deployments/team.urgent")
    assert gone.status_code == 202, gone.text
    assert gone.json()["placed_now"] == ["team/batch"]  # the higher of the two waiting ones takes the GPUs back
    assert "models/team/urgent.yaml" not in [p for p in _tree(vllm.remote)]
    wait_for(lambda: not [d for d in vllm.cluster.apps_v1.list_namespaced_deployment(vllm.ns).items
                          if d.metadata.name == "urgent"], 30, "urgent's Deployment to be pruned")
    assert vllm.ledger() == {"team/batch": 4}
    assert vllm.deployment("batch").spec.replicas == 1
    vllm.tick()
    assert vllm.wait("batch", "ready")["preempted_by"] is None
    assert vllm.status("chat")["status"] == "pending"
    assert vllm.broker.of("team.batch")[-2:] == ["placed", "ready"]


def test_an_identical_ready_server_is_reused_and_says_so(vllm: Setup, nodes: Any) -> None:
    nodes(1, gpus=2)
    vllm.deploy("llama-a")
    vllm.tick()
    first = vllm.wait("llama-a", "ready")
    spec = vllm.spec("llama-a")
    answer = vllm.served.post("/deploy", json={"config": spec, "name": "llama-twin", "namespace": "team"})
    assert answer.status_code == 202, answer.text
    twin = answer.json()
    assert twin["decision"]["outcome"] == "reused" and twin["reused"] == "team/llama-a"
    assert twin["status"] == "ready" and twin["url"] == first["url"]
    assert "reusing team/llama-a" in twin["reason"]
    names = {d.metadata.name for d in vllm.cluster.apps_v1.list_namespaced_deployment(vllm.ns).items}
    assert "llama-twin" not in names  # nothing of its own runs
    assert vllm.ledger() == {"team/llama-a": 1}
    assert vllm.broker.of("team.llama-twin") == ["ready"]
    event = [e for e in vllm.broker.events if e["data"].get("id") == "team.llama-twin"][0]
    assert event["data"]["reused"] == "team/llama-a" and event["data"]["identity"] == first["identity"]

    again = vllm.deploy("llama-a")  # the same server with the same spec again: nothing changes
    assert not again["created_commit"] and again["status"] == "ready"


def test_two_deploys_racing_for_the_last_free_gpus_never_both_get_them(vllm: Setup, nodes: Any) -> None:
    nodes(1, gpus=4)
    vllm.deploy("llama-a", tensor_parallel_size=2)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda name: vllm.deploy(name, tensor_parallel_size=2), ["racer-1", "racer-2"]))
    outcomes = sorted((a["decision"] or {}).get("outcome", a["status"]) for a in answers)
    assert outcomes == ["pending", "placed"], answers
    held = vllm.ledger()
    assert sum(held.values()) == 4 and held["team/llama-a"] == 2
    winner = next(a for a in answers if a["decision"]["outcome"] == "placed")
    assert held[f"team/{winner['server']}"] == 2
    gpus = [vllm.status(n)["gpus"] for n in ("llama-a", winner["server"])]
    assert not set(gpus[0][0]) & set(gpus[1][0])  # no GPU given twice


def test_a_node_removed_mid_life_makes_its_servers_placed_again(vllm: Setup, nodes: Any, k8s_cluster: Any) -> None:
    first, second = nodes(2, gpus=2)
    placed = vllm.deploy("moved", tensor_parallel_size=2)
    old = placed["node"]
    other = second if old == first else first
    k8s_cluster.remove_node(old)
    vllm.tick()
    moved = vllm.status("moved")
    assert moved["node"] == other, moved
    assert moved["status"] in ("placed", "starting", "ready")
    terms = vllm.deployment("moved").spec.template.spec.affinity.node_affinity \
        .required_during_scheduling_ignored_during_execution.node_selector_terms
    assert terms[0].match_expressions[0].values == [other]
    assert vllm.broker.of("team.moved").count("placed") == 2
    assert vllm.ledger() == {"team/moved": 2}


def test_mig_slices_are_placed_by_profile_and_a_slice_too_small_is_named(vllm: Setup, nodes: Any) -> None:
    mig = nodes(1, gpus=0, labels={"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.count": "7",
                                   "nvidia.com/mig-1g.10gb.memory": "9728", "nvidia.com/mig-3g.40gb.count": "2",
                                   "nvidia.com/mig-3g.40gb.memory": "40192"},
                resources={"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"})[0]
    small = vllm.served.post("/deploy", json={"name": "opt", "namespace": "team", "config": {
        "model_name": "facebook/opt-125m", "served_model_name": "opt", "accelerators": [vllm.product],
        "gpu_resource_type": "nvidia.com/mig-1g.10gb"}})
    assert small.status_code == 202, small.text
    assert small.json()["node"] == mig
    container = vllm.deployment("opt").spec.template.spec.containers[0]
    assert container.resources.limits == {"nvidia.com/mig-1g.10gb": "1"}
    wait_for(lambda: [p for p in vllm.cluster.core_v1.list_namespaced_pod(vllm.ns).items if p.spec.node_name == mig],
             30, "the MIG server's pod to be scheduled on the MIG node")

    too_big = vllm.deploy("llama-c", gpu_resource_type="nvidia.com/mig-1g.10gb")
    assert too_big["status"] == "pending"
    conflicts = {c["kind"]: c["message"] for c in too_big["decision"]["conflicts"]}
    assert "nvidia.com/mig-3g.40gb" in conflicts["mig_profile_too_small"]
    assert vllm.ledger() == {"team/opt": 1}


def _tree(remote: Path) -> list[str]:
    from tests.integration.gitops.gitutil import git

    return git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main").splitlines()


def test_a_persons_commit_is_a_deploy_request_and_a_broken_edit_is_held(vllm: Setup, nodes: Any, tmp_path: Path) -> None:
    nodes(1, gpus=2)
    person = Person(vllm.remote, tmp_path / "person")
    commit = person.commit({"models/team/llama-b.yaml": yaml.safe_dump(vllm.spec("llama-b"))}, "a server by hand")
    pushed = {"repository": str(vllm.remote), "branch": "main", "after": commit, "aliases": []}
    answer = vllm.served.post("/", json=pushed, headers={
        "ce-specversion": "1.0", "ce-id": uuid.uuid4().hex, "ce-source": "/vllmbench/benchmark-manager",
        "ce-type": "dev.vllmbench.gitops.pushed"})
    assert answer.status_code in (200, 202), answer.text
    assert vllm.status("llama-b")["status"] in ("placed", "starting")
    assert vllm.deployment("llama-b").spec.replicas == 1

    person.commit({"models/team/llama-b.yaml": yaml.safe_dump({**vllm.spec("llama-b"), "tensor_parallel_size": 3})},
                  "a typo of a TP")
    vllm.tick()
    status = vllm.served.get("/status").json()
    problem = status["problems"]["models/team/llama-b.yaml"][0]
    assert problem["loc"].endswith("tensor_parallel_size") and "must divide" in problem["msg"]
    assert vllm.deployment("llama-b").spec.replicas == 1  # what it applied before stays
    assert vllm.ledger() == {"team/llama-b": 1}


FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"
VLLM_SAYS = ("ValueError: To serve at least one request with the models's max seq len (131072), (16.0 GiB KV cache is "
             "needed, which is larger than the available KV cache memory (9.18 GiB). Based on the available memory, "
             "the estimated maximum model length is 75168. Try increasing `gpu_memory_utilization` or decreasing "
             "`max_model_len` when initializing the engine.")


def test_a_server_that_fails_says_why_with_vllms_own_start_up_error_as_a_hint(vllm: Setup, nodes: Any,
                                                                              tmp_path: Path) -> None:
    nodes(1, gpus=2)
    vllm.deploy("llama-c", max_model_len=131072)
    # kwok makes the pods fail (as a vLLM that exits at start would) and serves vLLM's words as their log.
    vllm.cluster.apps_v1.patch_namespaced_deployment("llama-c", vllm.ns, {"spec": {"template": {"metadata": {
        "labels": {FAIL: "true"}, "annotations": {f"{FAIL}/exit-code": "1", f"{FAIL}/reason": "Error"}}}}})
    log_file = tmp_path / "vllm.log"
    log_file.write_text("".join(f"2026-01-01T00:00:0{i}.000000000Z stderr F {line}\n" for i, line in enumerate(
        ["INFO Loading weights took 14.99 GiB", "Traceback (most recent call last):", VLLM_SAYS])))
    logs = vllm.cluster.dynamic.resources.get(api_version="kwok.x-k8s.io/v1alpha1", kind="Logs")
    given: set[str] = set()

    def failed_with_hint() -> dict[str, Any] | None:
        for pod in vllm.cluster.core_v1.list_namespaced_pod(vllm.ns).items:
            if pod.metadata.labels.get(FAIL) and pod.metadata.name not in given:
                logs.create({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                             "metadata": {"name": pod.metadata.name, "namespace": vllm.ns},
                             "spec": {"logs": [{"containers": ["vllm"], "logsFile": str(log_file), "follow": False}]}},
                            namespace=vllm.ns)
                given.add(pod.metadata.name)
        status = vllm.status("llama-c")
        return status if status["status"] == "failed" and "vLLM:" in status["reason"] else None

    status = wait_for(failed_with_hint, 60, "llama-c to fail with vLLM's reason")
    assert "exited with 1" in status["reason"]
    assert "estimates 75168 fits" in status["reason"] and "max_model_len: 75168" in status["reason"]
    assert any("75168" in hint for hint in status["hints"])
    assert vllm.broker.of("team.llama-c")[-1] == "failed"
    failed = [e for e in vllm.broker.events if e["type"] == "dev.vllmbench.model.failed"][-1]
    assert "75168" in failed["data"]["reason"]


def test_plan_is_a_dry_run_with_the_numbers_and_changes_nothing(vllm: Setup, nodes: Any) -> None:
    node = nodes(1, gpus=4)[0]
    vllm.deploy("batch", tensor_parallel_size=4, priority=10)
    before, events = head(vllm.remote), len(vllm.broker.events)
    answer = vllm.served.post("/plan", json={"name": "urgent", "namespace": "team",
                                             "config": vllm.spec("urgent", tensor_parallel_size=4, priority=50)})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["dry_run"] and plan["outcome"] == "placed" and plan["node"] == node
    assert [v["server"] for v in plan["preempts"]] == ["team/batch"]
    memory = plan["memory_per_gpu_gib"]
    assert 3.5 < memory["weights"] < 4.5 and memory["kv_available"] > 50  # 8B at TP 4 on 80 GB
    assert plan["kv_cache_tokens"] > 1_000_000 and plan["max_concurrency"] > 100
    conflicts = {c["kind"]: c for c in plan["conflicts"]}
    assert conflicts["no_free_gpus"]["resolution"] == "preempted team/batch (priority 10)"
    assert [(s["step"], s["outcome"]) for s in plan["resolution"]][-1] == ("preempt", "chosen")
    assert head(vllm.remote) == before and len(vllm.broker.events) == events
    assert vllm.ledger() == {"team/batch": 4} and vllm.status("batch")["preempted_by"] is None
    assert "urgent" not in {d.metadata.name for d in vllm.cluster.apps_v1.list_namespaced_deployment(vllm.ns).items}
