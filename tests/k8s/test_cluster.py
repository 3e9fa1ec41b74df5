"""The local cluster behaves like Kubernetes where vllmbench depends on it: GPU
scheduling, Jobs that complete or fail, pod logs and exec through the API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.cluster import wait_for

pytestmark = pytest.mark.k8s

H100 = "NVIDIA-H100-80GB-HBM3"
FAIL_LABEL = "pod-container-running-failed.stage.kwok.x-k8s.io"


def gpu_pod(name: str, gpus: int, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": selector,
            "containers": [{
                "name": "vllm",
                "image": "vllm/vllm-openai:latest",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }],
        },
    }


def job(name: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels or {}, "annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "bench", "image": "vllmbench/harness:latest"}],
                },
            },
        },
    }


def running(pod: Any) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
    )


def job_condition(k8s_cluster: Any, namespace: str, name: str) -> str | None:
    status = k8s_cluster.batch_v1.read_namespaced_job_status(name, namespace).status
    for cond in status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


def job_pod(k8s_cluster: Any, namespace: str, name: str) -> Any:
    pods = k8s_cluster.core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def test_default_nodes_offer_h100_and_a100_gpus(k8s_cluster: Any) -> None:
    nodes = k8s_cluster.core_v1.list_node().items
    gpus = {
        n.metadata.name: (n.metadata.labels.get("nvidia.com/gpu.product"), n.status.allocatable.get("nvidia.com/gpu"))
        for n in nodes
    }
    assert sorted(v for v in gpus.values() if v[0] == H100) == [(H100, "8"), (H100, "8")]
    assert sum(1 for product, _ in gpus.values() if product and "A100" in product) == 2
    assert any(product is None and count is None for product, count in gpus.values()), "a CPU-only node"


def test_gpu_pods_land_where_enough_gpus_are_free_and_the_rest_stay_pending(
    k8s_cluster: Any, k8s_namespace: str
) -> None:
    pool = {"vllmbench.dev/test-pool": uuid.uuid4().hex[:8]}
    small, large = f"small-{pool['vllmbench.dev/test-pool']}", f"large-{pool['vllmbench.dev/test-pool']}"
    k8s_cluster.add_node(small, gpus=2, gpu_product=H100, labels=pool)
    k8s_cluster.add_node(large, gpus=4, gpu_product=H100, labels=pool)
    core = k8s_cluster.core_v1
    try:
        # 3 GPUs fit only on the 4-GPU node; then 2 GPUs fit only on the 2-GPU node (1 left on the other).
        core.create_namespaced_pod(k8s_namespace, gpu_pod("three", 3, pool))
        placed = k8s_cluster.wait_for_pod(k8s_namespace, "three", running, what="Running")
        assert placed.spec.node_name == large
        core.create_namespaced_pod(k8s_namespace, gpu_pod("two", 2, pool))
        placed = k8s_cluster.wait_for_pod(k8s_namespace, "two", running, what="Running")
        assert placed.spec.node_name == small

        core.create_namespaced_pod(k8s_namespace, gpu_pod("too-big", 8, pool))

        def unschedulable(pod: Any) -> bool:
            return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in pod.status.conditions or [])

        pod = k8s_cluster.wait_for_pod(k8s_namespace, "too-big", unschedulable, what="Unschedulable")
        assert pod.status.phase == "Pending" and pod.spec.node_name is None
        (cond,) = [c for c in pod.status.conditions if c.type == "PodScheduled"]
        assert "Insufficient nvidia.com/gpu" in cond.message

        def failed_scheduling_event() -> Any:
            events = core.list_namespaced_event(
                k8s_namespace, field_selector="involvedObject.name=too-big,reason=FailedScheduling"
            ).items
            return events and events[0]

        event = wait_for(failed_scheduling_event, 15, "a FailedScheduling event")
        assert "Insufficient nvidia.com/gpu" in event.message

        # Removing the pods frees the GPUs: the big pod still cannot fit (4 < 8), but a new
        # 8-GPU node makes room for it.
        k8s_cluster.add_node(f"big-{pool['vllmbench.dev/test-pool']}", gpus=8, gpu_product=H100, labels=pool)
        placed = k8s_cluster.wait_for_pod(k8s_namespace, "too-big", running, what="Running", timeout=60)
        assert placed.spec.node_name == f"big-{pool['vllmbench.dev/test-pool']}"
    finally:
        for pod in ("three", "two", "too-big"):
            core.delete_namespaced_pod(pod, k8s_namespace, grace_period_seconds=0)
        for node in (small, large, f"big-{pool['vllmbench.dev/test-pool']}"):
            try:
                k8s_cluster.remove_node(node)
            except Exception:  # noqa: BLE001 - the node may not have been created
                pass


def test_an_8_gpu_pod_lands_on_an_h100_node(k8s_cluster: Any, k8s_namespace: str) -> None:
    k8s_cluster.core_v1.create_namespaced_pod(
        k8s_namespace, gpu_pod("h100", 8, {"nvidia.com/gpu.product": H100})
    )
    pod = k8s_cluster.wait_for_pod(k8s_namespace, "h100", running, what="Running")
    node = k8s_cluster.core_v1.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == H100
    k8s_cluster.core_v1.delete_namespaced_pod("h100", k8s_namespace, grace_period_seconds=0)


def test_a_job_completes_and_its_logs_are_readable(k8s_cluster: Any, k8s_namespace: str) -> None:
    k8s_cluster.batch_v1.create_namespaced_job(k8s_namespace, job("bench"))
    wait_for(lambda: job_condition(k8s_cluster, k8s_namespace, "bench"), 30, "job bench to finish")
    assert job_condition(k8s_cluster, k8s_namespace, "bench") == "Complete"
    pod = job_pod(k8s_cluster, k8s_namespace, "bench")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    log = k8s_cluster.core_v1.read_namespaced_pod_log(pod.metadata.name, k8s_namespace, container="bench")
    assert "simulated node" in log


def test_a_pod_can_be_given_its_own_log_file(k8s_cluster: Any, k8s_namespace: str, tmp_path: Any) -> None:
    """A kwok Logs object named after a pod serves that pod's log from a file (CRI format)."""
    log_file = tmp_path / "bench.log"
    log_file.write_text(
        "2026-01-01T00:00:00.000000000Z stdout F request 1: ttft_ms=21\n"
        "2026-01-01T00:00:01.000000000Z stdout F benchmark finished: 1 request\n"
    )
    k8s_cluster.core_v1.create_namespaced_pod(
        k8s_namespace, {"metadata": {"name": "harness"}, "spec": {"containers": [{"name": "h", "image": "x"}]}}
    )
    k8s_cluster.wait_for_pod(k8s_namespace, "harness", running, what="Running")
    k8s_cluster.dynamic.resources.get(api_version="kwok.x-k8s.io/v1alpha1", kind="Logs").create(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": "harness", "namespace": k8s_namespace},
            "spec": {"logs": [{"containers": ["h"], "logsFile": str(log_file), "follow": False}]},
        },
        namespace=k8s_namespace,
    )

    def log_text() -> str:
        text = k8s_cluster.core_v1.read_namespaced_pod_log("harness", k8s_namespace)
        return text if "benchmark finished" in text else ""

    text = wait_for(log_text, 15, "the pod's own log file to be served")
    assert text.splitlines() == ["request 1: ttft_ms=21", "benchmark finished: 1 request"]


def test_a_job_can_be_made_to_fail(k8s_cluster: Any, k8s_namespace: str) -> None:
    k8s_cluster.batch_v1.create_namespaced_job(
        k8s_namespace,
        job("broken", labels={FAIL_LABEL: "true"},
            annotations={f"{FAIL_LABEL}/exit-code": "3", f"{FAIL_LABEL}/reason": "Error"}),
    )
    wait_for(lambda: job_condition(k8s_cluster, k8s_namespace, "broken"), 30, "job broken to finish")
    assert job_condition(k8s_cluster, k8s_namespace, "broken") == "Failed"
    pod = job_pod(k8s_cluster, k8s_namespace, "broken")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_exec_runs_through_the_api(k8s_cluster: Any, k8s_namespace: str) -> None:
    k8s_cluster.core_v1.create_namespaced_pod(
        k8s_namespace, {"metadata": {"name": "shell"}, "spec": {"containers": [{"name": "sh", "image": "x"}]}}
    )
    k8s_cluster.wait_for_pod(k8s_namespace, "shell", running, what="Running")
    out = k8s_cluster.exec_in_pod(k8s_namespace, "shell", ["echo", "hello from exec"])
    assert out.strip() == "hello from exec"


def test_a_deployment_of_gpu_servers_becomes_available(k8s_cluster: Any, k8s_namespace: str) -> None:
    pod = gpu_pod("unused", 1, {"nvidia.com/gpu.product": H100})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "vllm"}},
            "template": {"metadata": {"labels": {"app": "vllm"}}, "spec": pod["spec"]},
        },
    }
    k8s_cluster.apps_v1.create_namespaced_deployment(k8s_namespace, deployment)

    def available() -> bool:
        status = k8s_cluster.apps_v1.read_namespaced_deployment_status("vllm", k8s_namespace).status
        return status.available_replicas == 2

    wait_for(available, 30, "deployment vllm to have 2 available replicas")
    k8s_cluster.apps_v1.delete_namespaced_deployment("vllm", k8s_namespace)


def test_make_cluster_starts_a_usable_cluster_and_stops_it(tmp_path: Any) -> None:
    """The command-line path of `make cluster` / `make cluster-down`, in a temporary folder."""
    import json
    import subprocess
    import sys

    from tests.fixtures.cluster import LOCALCLUSTER, load_localcluster

    workdir = tmp_path / "cluster"
    cli = [sys.executable, str(LOCALCLUSTER)]
    up = subprocess.run([*cli, "up", "--dir", str(workdir)], capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={workdir / 'kubeconfig'}" in up.stdout
        config = json.loads((workdir / "kubeconfig").read_text())
        server = config["clusters"][0]["cluster"]["server"]
        api = load_localcluster().Api(server, workdir / "pki")
        nodes = api.request("GET", "/api/v1/nodes")["items"]
        assert len(nodes) == 5
        assert subprocess.run([*cli, "status", "--dir", str(workdir)], capture_output=True).returncode == 0
    finally:
        down = subprocess.run([*cli, "down", "--dir", str(workdir)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert subprocess.run([*cli, "status", "--dir", str(workdir)], capture_output=True).returncode == 1
