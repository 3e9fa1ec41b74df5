"""The deployer with the local runtime (the embedded default, no cluster): a committed Job runs as a
process and completes, its logs stream, a Deployment of a vLLM image (the simulator plays vLLM here:
no GPU) answers on its Service port, a restart finds it again, the terminal works."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integration.gitops.gitutil import Person, make_remote
from tests.integration.localrt.conftest import processes_under, wait_for

NS = "default"


def vllmbench_job(name: str, args: list[str]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "run", "image": "ghcr.io/vllmbench/vllmbench-functions:0.1.0", "command": ["vllmbench"],
                 "args": args}]}}}}


def simulator(name: str = "sim") -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                          {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                           "args": ["--model", "facebook/opt-125m", "--served-model-name", "opt", "--port", "8000"],
                           "ports": [{"containerPort": 8000}],
                           "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 1}}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": {"app": name}, "ports": [{"port": 8000, "targetPort": 8000}]}}]


@pytest.fixture
def local(serve_function: Any, tmp_path: Path) -> Any:
    remote = make_remote(tmp_path / "config.git", {"README.md": "x\n"})
    root = tmp_path / "workloads"

    def serve(**extra: Any) -> Any:
        return serve_function("deploy", gitops_repo_url=str(remote), runtime="local", local_runtime_dir=str(root),
                              workload_namespaces=NS, data_dir=str(tmp_path / "data"), **extra)

    served = serve(local_exec=True)
    yield served, Person(remote, tmp_path / "person"), root, serve
    runtime = served.app.runtime.resource("workloads", lambda: None)
    if runtime is not None:
        runtime.shutdown(timeout_s=30)
    deadline = time.monotonic() + 10
    while processes_under(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_under(root), "processes left behind"


def test_a_committed_job_runs_completes_and_its_logs_stream(local: Any) -> None:
    served, person, _, _ = local
    body = yaml.safe_dump(vllmbench_job("hello", ["simulate", "--help"]))
    answer = served.post("/deploy", json={"yaml_content": body, "namespace": NS})
    assert answer.status_code == 202, answer.text
    status = wait_for(lambda: (s := served.get("/jobs/hello/status").json())["state"] == "complete" and s,
                      timeout_s=60, what="the job to complete")
    assert status["succeeded"] == 1
    logs = served.get("/jobs/hello/logs").text
    assert "Serve an OpenAI-compatible vLLM simulator" in logs


def test_a_simulator_deployment_answers_on_its_service_port_and_survives_a_restart(local: Any) -> None:
    served, person, root, serve = local
    person.commit({f"deployments/{NS}/sim.yaml": yaml.safe_dump_all(simulator())}, "a simulated vLLM server")
    outcome = served.post("/reconcile", json={}).json()
    assert {a["name"]: a["op"] for a in outcome["actions"]} == {"sim": "create"} or outcome["errors"] == []
    runtime = served.app.runtime.resource("workloads", lambda: None)
    url = runtime.service_url(NS, "sim", 8000)

    def models() -> Any:
        try:
            return requests.get(url + "/v1/models", timeout=2).json()
        except (requests.RequestException, ValueError):
            return None

    listed = wait_for(models, timeout_s=60, what="the simulator behind its Service")
    assert [m["id"] for m in listed["data"]] == ["opt"]
    wait_for(lambda: {o["name"]: o["state"] for o in served.get("/objects").json()["objects"]}.get("sim") == "ready",
             timeout_s=30, what="the Deployment to be ready")

    runtime.shutdown(timeout_s=30)  # as Ctrl-C on make run does
    assert not processes_under(root)
    runtime.boot()  # as the next make run does
    again = wait_for(models, timeout_s=60, what="the simulator after a restart")
    assert [m["id"] for m in again["data"]] == ["opt"]
    assert served.post("/reconcile", json={}).json()["writes"] == 0  # found again, nothing re-applied


def test_a_terminal_opens_a_shell_in_the_jobs_folder(local: Any) -> None:
    import websocket

    served, _, _, _ = local
    job = vllmbench_job("shell", ["simulate", "--port", "0"])  # runs until stopped
    served.post("/deploy", json={"yaml_content": yaml.safe_dump(job), "namespace": NS})
    wait_for(lambda: served.get("/jobs/shell/status").json()["state"] == "running", timeout_s=60, what="running")
    session = served.post("/terminal/create", json={"job_name": "shell"}).json()
    ws = websocket.create_connection(served.url.replace("http://", "ws://") + session["websocket"], timeout=15)
    try:
        ws.send(json.dumps({"type": "auth", "ticket": session["ticket"]}))
        assert json.loads(ws.recv())["type"] == "ready"
        ws.send(json.dumps({"type": "input", "data": "echo local-$((40+2)) && pwd\n"}))
        seen = ""
        deadline = time.monotonic() + 15
        while "local-42" not in seen and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            seen += message.get("data", "")
        assert "local-42" in seen
    finally:
        ws.close()
    served.post("/delete", json={"yaml_content": yaml.safe_dump(job), "namespace": NS})


def test_the_local_terminal_is_refused_unless_enabled(local: Any) -> None:
    import websocket

    _, _, _, serve = local
    served = serve()  # VLLMBENCH_LOCAL_EXEC unset: a shell on this machine is not offered
    job = vllmbench_job("quiet", ["simulate", "--port", "0"])
    served.post("/deploy", json={"yaml_content": yaml.safe_dump(job), "namespace": NS})
    wait_for(lambda: served.get("/jobs/quiet/status").json()["state"] == "running", timeout_s=60, what="running")
    session = served.post("/terminal/create", json={"job_name": "quiet"}).json()
    ws = websocket.create_connection(served.url.replace("http://", "ws://") + session["websocket"], timeout=15)
    try:
        ws.send(json.dumps({"type": "auth", "ticket": session["ticket"]}))
        message = json.loads(ws.recv())
        assert message["type"] == "error" and "VLLMBENCH_LOCAL_EXEC" in message["message"]
    finally:
        ws.close()
    served.post("/delete", json={"yaml_content": yaml.safe_dump(job), "namespace": NS})
    served.app.runtime.resource("workloads", lambda: None).shutdown(timeout_s=30)


def test_an_image_the_machine_cannot_run_says_so(local: Any) -> None:
    served, _, _, _ = local
    job = {**vllmbench_job("busy", ["x"]), "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", "echo hi"]}]}}}}
    served.post("/deploy", json={"yaml_content": yaml.safe_dump(job), "namespace": NS})
    status = wait_for(lambda: (s := served.get("/jobs/busy/status").json())["state"] == "unsupported" and s,
                      timeout_s=30, what="the unrunnable job's state")
    assert "cluster" in status["message"] and status["state"] != "running"
