"""The vLLM service under the local runtime (``make run`` with no cluster): real processes, simulated GPUs.

The inventory is the declared one (VLLMBENCH_SIMULATED_GPUS, here one node of 2 x 80 GB);
a server's Deployment becomes a local process: vLLM is not installed here, so the local
runtime runs the simulator with the server's served name and port.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.gitops.gitutil import make_remote
from tests.integration.localrt.conftest import kill_all, processes_under

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def local(serve_function: Any, tmp_path: Path) -> Iterator[Any]:
    from vllmbench.runtimes.local import LocalRuntime

    root = tmp_path / "workloads"
    remote = make_remote(tmp_path / "config.git", {"README.md": "config\n"})
    served = serve_function("vllm_deploy", gitops_repo_url=str(remote), runtime="local", local_runtime_dir=str(root),
                            data_dir=str(tmp_path / "data"), simulated_gpus="box=2x80GB:NVIDIA-H100-80GB-HBM3")
    yield served
    LocalRuntime(root).shutdown(timeout_s=30)
    deadline = time.monotonic() + 5
    while (left := processes_under(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_all(left)
    assert not left, "processes left behind"


def wait_ready(served: Any, server: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = served.get(f"/deployments/{server}/status").json()
        if status["status"] == "ready":
            return status
        time.sleep(0.3)
    raise AssertionError(f"{server} not ready: {status.get('status')}: {status.get('reason')}")


def models(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/v1/models", timeout=5) as answer:
        return [m["id"] for m in json.load(answer)["data"]]


def test_a_model_server_becomes_a_simulator_process_answering_with_its_served_name(local: Any) -> None:
    answer = local.post("/deploy", json={"name": "opt", "namespace": "default", "config": {
        "model_name": "facebook/opt-125m", "served_model_name": "opt-125m", "gpu_resource_type": "cpu",
        "max_model_len": 2048}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["node"] == "box"
    ready = wait_ready(local, "default.opt")
    assert ready["url"].startswith("http://127.0.0.1:")
    assert models(ready["url"]) == ["opt-125m"]

    gpu = local.post("/deploy", json={"name": "llama", "namespace": "default", "config": {
        "model_name": LLAMA_8B, "served_model_name": "llama", "max_model_len": 8192}}).json()
    assert gpu["decision"]["outcome"] == "placed" and gpu["gpus"] == [[0]]
    assert gpu["decision"]["replicas"][0]["bytes_per_gpu"] > 70 * 2**30  # shares the GPU by its budget
    assert models(wait_ready(local, "default.llama")["url"]) == ["llama"]
    inventory = local.get("/inventory").json()
    assert inventory["source"] == "simulated"
    held = [h["holder"] for g in inventory["nodes"][0]["gpus"] for h in g["held_by"]]
    assert held == ["default/llama"]

    plan = local.post("/plan", json={"name": "big", "config": {"model_name": LLAMA_8B, "tensor_parallel_size": 2,
                                                                "max_model_len": 8192}}).json()
    assert plan["outcome"] == "pending" and "has 1 free" in plan["reason"]  # GPU 0 is taken by llama
    assert plan["memory_per_gpu_gib"]["weights"] > 7 and plan["kv_cache_tokens"] > 0

    removed = local.delete("/deployments/default.llama")
    assert removed.status_code == 202, removed.text
    assert local.get("/inventory").json()["claims"] == 0


def test_reuse_pending_preemption_and_return_on_the_simulated_gpus(local: Any) -> None:
    llama = {"model_name": LLAMA_8B, "served_model_name": "llama", "max_model_len": 8192}

    def deploy(name: str, **fields: Any) -> dict[str, Any]:
        answer = local.post("/deploy", json={"name": name, "config": {**llama, **fields}})
        assert answer.status_code == 202, answer.text
        return answer.json()

    assert deploy("a", priority=10)["gpus"] == [[0]]
    wait_ready(local, "default.a")
    twin = deploy("twin", priority=10)
    assert twin["status"] == "ready" and twin["reused"] == "default/a" and models(twin["url"]) == ["llama"]
    assert local.delete("/deployments/default.twin").status_code == 202

    big = deploy("big", tensor_parallel_size=2)
    assert big["status"] == "pending" and "has 1 free" in big["reason"]
    boss = deploy("boss", tensor_parallel_size=2, priority=90)
    assert boss["decision"]["outcome"] == "placed" and boss["gpus"] == [[0, 1]]
    victim = local.get("/deployments/default.a/status").json()
    assert victim["status"] == "pending" and victim["preempted_by"] == "default/boss"
    assert models(wait_ready(local, "default.boss")["url"]) == ["llama"]

    gone = local.delete("/deployments/default.boss").json()
    assert gone["placed_now"] == ["default/a"]  # a (priority 10) first; big (0) waits while a holds GPU 0
    assert models(wait_ready(local, "default.a")["url"]) == ["llama"]
    assert local.get("/deployments/default.big/status").json()["status"] == "pending"
