"""Deployments of a vLLM image (the simulator plays vLLM here) behind a Service's local port."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from vllmbench.errors import NotFound
from vllmbench.runtimes.base import ObjectRef
from vllmbench.runtimes.local import LocalRuntime

from .conftest import condition, service, sim_deployment, wait_for

DEPLOYMENT = ObjectRef("apps/v1", "Deployment", "t", "sim")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def available(rt: LocalRuntime, replicas: int = 1) -> dict:
    return wait_for(lambda: (lambda d: d if d["status"].get("availableReplicas") == replicas and
                             condition(d, "Progressing") and condition(d, "Progressing")["reason"] ==
                             "NewReplicaSetAvailable" else None)(rt.get(DEPLOYMENT)), what="the Deployment available")


def test_a_vllm_deployment_answers_openai_requests_on_its_service_port(rt: LocalRuntime) -> None:
    rt.apply(service(), field_manager="m")
    created = rt.apply(sim_deployment(extra_args=["--gpu-memory-utilization", "0.9", "--enforce-eager"]),
                       field_manager="m")
    assert condition(created, "Progressing")["reason"] == "NewReplicaSetCreated"
    live = available(rt)
    assert condition(live, "Available")["reason"] == "MinimumReplicasAvailable"
    status = live["status"]
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (1, 1, 1)
    assert status["observedGeneration"] == 1
    url = rt.service_url("t", "sim", 80)
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":80")
    answer = post(f"{url}/v1/completions", {"model": "opt", "prompt": "hello there", "max_tokens": 5})
    assert answer["model"] == "opt" and answer["usage"]["completion_tokens"] == 5
    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as models:
        assert [m["id"] for m in json.loads(models.read())["data"]] == ["opt"]
    [pod] = rt.pods("t", {"app": "sim"})
    name = pod["metadata"]["name"]
    template_hash = pod["metadata"]["labels"]["pod-template-hash"]
    assert name.startswith(f"sim-{template_hash}-") and len(name.rsplit("-", 1)[1]) == 5
    assert pod["status"]["phase"] == "Running" and condition(pod, "Ready") and condition(pod, "ContainersReady")
    ignored = [e for e in rt.events("t", kind="Pod", name=name) if e["reason"] == "FlagsIgnored"]
    assert ignored and "--gpu-memory-utilization 0.9" in ignored[0]["message"] and "--enforce-eager" in \
        ignored[0]["message"]
    assert [e["reason"] for e in rt.events("t", kind="Deployment", name="sim")] == ["ScalingReplicaSet"]
    with pytest.raises(NotFound):
        rt.service_url("t", "sim", 81)


def test_a_template_change_replaces_the_pods(rt: LocalRuntime) -> None:
    rt.apply(service(), field_manager="m")
    rt.apply(sim_deployment(), field_manager="m")
    available(rt)
    [old] = rt.pods("t", {"app": "sim"})
    port = rt.service_url("t", "sim", 80)
    changed = sim_deployment()
    changed["spec"]["template"]["spec"]["containers"][0]["args"][3] = "opt-v2"  # --served-model-name
    assert rt.apply(changed, field_manager="m")["metadata"]["generation"] == 2
    live = wait_for(lambda: (lambda d, ps: d if d["status"].get("availableReplicas") == 1 and len(ps) == 1 and
                             ps[0]["metadata"]["name"] != old["metadata"]["name"] else None)(
        rt.get(DEPLOYMENT), rt.pods("t", {"app": "sim"})), what="the new pod")
    assert live["status"]["observedGeneration"] == 2
    [new] = rt.pods("t", {"app": "sim"})
    assert new["metadata"]["labels"]["pod-template-hash"] != old["metadata"]["labels"]["pod-template-hash"]
    assert rt.service_url("t", "sim", 80) == port
    assert post(f"{port}/v1/completions", {"model": "opt-v2", "prompt": "x", "max_tokens": 1})["model"] == "opt-v2"
    messages = [e["message"] for e in rt.events("t", kind="Deployment", name="sim")]
    assert any("Scaled down" in m and old["metadata"]["labels"]["pod-template-hash"] in m for m in messages)


def test_scaling_and_round_robin_over_ready_pods(rt: LocalRuntime) -> None:
    rt.apply(service(), field_manager="m")
    rt.apply(sim_deployment(replicas=2), field_manager="m")
    available(rt, 2)
    time.sleep(1.0)  # ready pods become endpoints within the forwarder's refresh (0.5 s), as with kube-proxy
    url = rt.service_url("t", "sim", 80)
    for i in range(6):
        post(f"{url}/v1/completions", {"model": "opt", "prompt": f"p{i}", "max_tokens": 1})
    counts = []
    for pod in rt.pods("t", {"app": "sim"}):
        ports = json.loads(pod["metadata"]["annotations"]["vllmbench.dev/local-ports"])["vllm"]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['8000']}/_sim/requests", timeout=10) as answer:
            counts.append(len(json.loads(answer.read())["requests"]))
    assert sorted(counts) == [3, 3]
    rt.apply(sim_deployment(replicas=1), field_manager="m")
    wait_for(lambda: len(rt.pods("t", {"app": "sim"})) == 1, what="scaled down to one pod")
    assert rt.get(DEPLOYMENT)["status"]["replicas"] == 1


def test_a_crashing_container_backs_off_and_progress_stalls(rt: LocalRuntime) -> None:
    crashing = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "crash", "namespace": "t"},
                "spec": {"progressDeadlineSeconds": 3, "selector": {"matchLabels": {"app": "crash"}}, "template": {
                    "metadata": {"labels": {"app": "crash"}},
                    "spec": {"containers": [{"name": "c", "image": "vllmbench",
                                             "command": ["python", "-c", "print('bad config'); raise SystemExit(2)"]}]
                             }}}}
    rt.apply(crashing, field_manager="m")

    def backing_off():
        pods = rt.pods("t", {"app": "crash"})
        state = pods[0]["status"]["containerStatuses"][0] if pods else {}
        return state if (state.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff" else None

    status = wait_for(backing_off, what="CrashLoopBackOff")
    assert status["restartCount"] >= 1 and status["lastState"]["terminated"]["exitCode"] == 2
    assert status["lastState"]["terminated"]["reason"] == "Error"
    stalled = wait_for(lambda: (lambda d: d if (condition(d, "Progressing") is None) and any(
        c["reason"] == "ProgressDeadlineExceeded" for c in d["status"]["conditions"]) else None)(
        rt.get(ObjectRef("apps/v1", "Deployment", "t", "crash"))), timeout_s=20, what="ProgressDeadlineExceeded")
    available_condition = next(c for c in stalled["status"]["conditions"] if c["type"] == "Available")
    assert available_condition["status"] == "False"
    pod_name = rt.pods("t", {"app": "crash"})[0]["metadata"]["name"]
    assert "BackOff" in [e["reason"] for e in rt.events("t", kind="Pod", name=pod_name)]
    assert list(rt.logs("t", pod_name, tail_lines=1)) in (["bad config"], [])
