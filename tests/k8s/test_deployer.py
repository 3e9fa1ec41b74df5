"""The deployer on the real control plane (kwok nodes): Git -> cluster, as a user sees it.

Each test has its own namespace, Git remote and database; the deployer is the real
functions-framework app with the kube runtime pointed at the test cluster.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import wait_for
from tests.integration.gitops.gitutil import Person, git, head, make_remote

pytestmark = pytest.mark.k8s

H100 = "NVIDIA-H100-80GB-HBM3"
MANY = 200  # objects of the fault test: enough that the relay is cut half way through


def configmap(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}}


def job(name: str, image: str = "vllmbench/harness:1", *, hold_s: int | None = None) -> dict[str, Any]:
    annotations = {"pod-complete.stage.kwok.x-k8s.io/delay": f"{hold_s}s"} if hold_s else {}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "bench", "image": image}]}}}}


def gpu_deployment(name: str, gpus: int = 1, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {"nvidia.com/gpu.product": H100},
                         "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                         "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}}}}


def text(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False)


class Setup:
    def __init__(self, served: Any, person: Person, remote: Path, namespace: str, cluster: Any) -> None:
        self.served, self.person, self.remote, self.ns, self.cluster = served, person, remote, namespace, cluster

    def commit(self, files: dict[str, Any], message: str = "change") -> str:
        content = {f"deployments/{self.ns}/{name}": (None if objs is None else text(*objs))
                   for name, objs in files.items()}
        return self.person.commit(content, message)

    def reconcile(self, **body: Any) -> dict[str, Any]:
        answer = self.served.post("/reconcile", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def ops(self, outcome: dict[str, Any]) -> dict[str, str]:
        return {a["name"]: a["op"] for a in outcome["actions"]}

    def versions(self) -> dict[str, str]:
        out = {}
        for kind, items in (("cm", self.cluster.core_v1.list_namespaced_config_map(self.ns).items),
                            ("job", self.cluster.batch_v1.list_namespaced_job(self.ns).items),
                            ("deploy", self.cluster.apps_v1.list_namespaced_deployment(self.ns).items)):
            for item in items:
                if item.metadata.name != "kube-root-ca.crt":
                    out[f"{kind}/{item.metadata.name}"] = item.metadata.resource_version
        return out


@pytest.fixture
def deployer(serve_function: Any, k8s_cluster: Any, k8s_namespace: str, tmp_path: Path) -> Setup:
    remote = make_remote(tmp_path / "config.git", {"README.md": "config\n"})
    person = Person(remote, tmp_path / "person")
    served = serve_function("deploy", gitops_repo_url=str(remote), runtime="kube",
                            kubeconfig=str(k8s_cluster.kubeconfig), workload_namespaces=k8s_namespace,
                            data_dir=str(tmp_path / "data"))
    return Setup(served, person, remote, k8s_namespace, k8s_cluster)


def test_git_is_applied_a_second_reconcile_writes_nothing_and_drift_is_repaired(deployer: Setup) -> None:
    deployer.commit({"settings.yaml": [configmap("settings")], "vllm.yaml": [gpu_deployment("vllm")],
                     "bench.yaml": [job("bench", hold_s=60)]}, "three objects")
    first = deployer.reconcile()
    assert deployer.ops(first) == {"settings": "create", "vllm": "create", "bench": "create"}
    assert first["errors"] == []
    cm = deployer.cluster.core_v1.read_namespaced_config_map("settings", deployer.ns)
    assert cm.metadata.labels["vllmbench.dev/owner"] == "deploy"
    assert cm.metadata.annotations["vllmbench.dev/source"] == f"deployments/{deployer.ns}/settings.yaml"
    assert cm.metadata.annotations["vllmbench.dev/commit"] == head(deployer.remote)
    wait_for(lambda: (deployer.cluster.apps_v1.read_namespaced_deployment("vllm", deployer.ns).status
                      .available_replicas or 0) == 1, 60, "the GPU deployment to be available")

    def settled() -> bool:  # the controllers done with their status writes (on a loaded machine they lag)
        vllm = deployer.cluster.apps_v1.read_namespaced_deployment("vllm", deployer.ns).status
        bench = deployer.cluster.batch_v1.read_namespaced_job_status("bench", deployer.ns).status
        rolled_out = any(c.type == "Progressing" and c.reason == "NewReplicaSetAvailable" for c in vllm.conditions or [])
        return rolled_out and bench.active == 1 and bench.ready == 1

    wait_for(settled, 60, "the deployment rolled out and the job's pod counted ready")
    before = deployer.versions()
    second = deployer.reconcile()
    assert second["writes"] == 0 and set(deployer.ops(second).values()) == {"unchanged"}
    assert deployer.versions() == before  # not one object was written

    # a person's `kubectl edit` of a field we own
    deployer.cluster.apps_v1.patch_namespaced_deployment("vllm", deployer.ns, {"spec": {"replicas": 3}})
    deployer.cluster.core_v1.patch_namespaced_config_map("settings", deployer.ns, {"data": {"value": "edited"}})
    repaired = deployer.reconcile()
    assert deployer.ops(repaired) == {"settings": "drift", "vllm": "drift", "bench": "unchanged"}
    reasons = {a["name"]: a["reason"] for a in repaired["actions"]}
    assert "spec.replicas" in reasons["vllm"] and "data.value" in reasons["settings"]
    assert deployer.cluster.apps_v1.read_namespaced_deployment("vllm", deployer.ns).spec.replicas == 1
    assert deployer.cluster.core_v1.read_namespaced_config_map("settings", deployer.ns).data == {"value": "1"}

    def states() -> dict[str, str]:
        return {o["name"]: o["state"] for o in deployer.served.get("/objects").json()["objects"]}

    wait_for(lambda: states()["vllm"] == "ready", 30, "the repaired deployment to be ready", states)
    assert states()["settings"] == "ready" and states()["bench"] in ("running", "complete")


def test_what_leaves_git_is_pruned_and_what_is_not_ours_is_left_alone(deployer: Setup) -> None:
    deployer.cluster.core_v1.create_namespaced_config_map(deployer.ns, configmap("by-hand", "mine"))
    deployer.commit({"a.yaml": [configmap("keep"), configmap("drop")], "hand.yaml": [configmap("by-hand", "git")]})
    first = deployer.reconcile()
    assert deployer.ops(first) == {"keep": "create", "drop": "create", "by-hand": "conflict"}
    assert "not ours" in {a["name"]: a["reason"] for a in first["actions"]}["by-hand"]
    assert deployer.cluster.core_v1.read_namespaced_config_map("by-hand", deployer.ns).data == {"value": "mine"}

    deployer.commit({"a.yaml": [configmap("keep")], "hand.yaml": None}, "drop one, forget the other")
    second = deployer.reconcile()
    assert deployer.ops(second) == {"keep": "unchanged", "drop": "prune"}
    names = {c.metadata.name for c in deployer.cluster.core_v1.list_namespaced_config_map(deployer.ns).items}
    assert "drop" not in names and {"keep", "by-hand"} <= names  # by-hand never had our label: never pruned


def test_a_job_whose_template_changes_is_recreated(deployer: Setup) -> None:
    deployer.commit({"bench.yaml": [job("bench", "vllmbench/harness:1")]})
    deployer.reconcile()
    uid = deployer.cluster.batch_v1.read_namespaced_job("bench", deployer.ns).metadata.uid
    deployer.commit({"bench.yaml": [job("bench", "vllmbench/harness:2")]})
    outcome = deployer.reconcile()
    assert deployer.ops(outcome) == {"bench": "recreate"}
    assert "cannot change in place" in outcome["actions"][0]["reason"]
    fresh = deployer.cluster.batch_v1.read_namespaced_job("bench", deployer.ns)
    assert fresh.metadata.uid != uid
    assert fresh.spec.template.spec.containers[0].image == "vllmbench/harness:2"


def test_deploy_commits_applies_and_delete_removes(deployer: Setup) -> None:
    before = head(deployer.remote)
    answer = deployer.served.post("/deploy", json={"yaml_content": text(configmap("cfg"), job("run-1", hold_s=60)),
                                                  "namespace": deployer.ns})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["reconcile"]["state"] == "done" and "dry-run" in body["validated_by"]
    assert sorted(body["files"]) == [f"deployments/{deployer.ns}/configmap-cfg.yaml",
                                     f"deployments/{deployer.ns}/job-run-1.yaml"]
    assert head(deployer.remote) == body["commit"] != before
    assert git("log", "-1", "--format=%an", cwd=deployer.remote) == "vllmbench-deployer"
    assert deployer.cluster.batch_v1.read_namespaced_job("run-1", deployer.ns).metadata.labels[
        "vllmbench.dev/owner"] == "deploy"

    again = deployer.served.post("/deploy", json={"yaml_content": text(configmap("cfg"), job("run-1", hold_s=60)),
                                                 "namespace": deployer.ns})
    assert again.status_code == 202 and again.json()["id"] == body["id"] and not again.json()["created_commit"]
    assert head(deployer.remote) == body["commit"]  # the same request twice is one commit

    view = deployer.served.get(f"/deployments/{body['id']}").json()
    assert view["desired_commit"] == body["commit"] and view["applied_commit"] == body["commit"]
    assert {o["name"]: o["state"] for o in view["objects"]}["cfg"] == "ready"
    assert any(d["id"] == body["id"] for d in deployer.served.get("/deployments").json()["deployments"])

    status = deployer.served.get("/jobs/run-1/status").json()
    assert status["managed_by"] == "deploy" and status["state"] in ("running", "progressing")

    removed = deployer.served.post("/delete", json={"yaml_content": text(job("run-1")), "namespace": deployer.ns})
    assert removed.status_code == 202, removed.text
    assert removed.json()["files"] == [f"deployments/{deployer.ns}/job-run-1.yaml"]
    wait_for(lambda: not deployer.cluster.batch_v1.list_namespaced_job(deployer.ns).items, 30, "the job to be deleted")
    assert deployer.cluster.core_v1.read_namespaced_config_map("cfg", deployer.ns)  # the rest stays


@pytest.mark.parametrize("obj, words", [
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
      "stringData": {"token": "tok-NEVER-IN-GIT-123"}}, "Secret data never goes into Git"),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}}, "cluster-scoped"),
    ({**job("host"), "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}],
                                                    "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}},
     "hostPath"),
    ({**configmap("cm"), "metadata": {"name": "cm", "namespace": "kube-system"}}, "not a benchmark namespace"),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "typo"},
      "spec": {"templat": {}}}, "spec.templat: field not declared in schema"),
], ids=["secret", "cluster-scoped", "hostpath", "namespace", "api-refuses-a-typo"])
def test_refusals_are_422_and_commit_nothing(deployer: Setup, obj: dict[str, Any], words: str) -> None:
    before = head(deployer.remote)
    answer = deployer.served.post("/deploy", json={"yaml_content": text(obj), "namespace": deployer.ns})
    assert answer.status_code == 422, answer.text
    assert words in answer.text and "nothing was committed" in answer.text
    assert "tok-NEVER-IN-GIT-123" not in answer.text
    assert head(deployer.remote) == before


def test_a_secret_value_reaches_no_commit_log_or_response(deployer: Setup, capfd: Any) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"token": "tok-NEVER-IN-GIT-456"}}
    answer = deployer.served.post("/deploy", json={"yaml_content": text(configmap("ok"), secret),
                                                  "namespace": deployer.ns})
    assert answer.status_code == 422
    history = git("log", "--all", "-p", cwd=deployer.remote)
    out, err = capfd.readouterr()
    assert "tok-NEVER-IN-GIT-456" not in history + answer.text + out + err


def test_job_logs_follow_the_pod_as_it_writes(deployer: Setup, tmp_path: Path) -> None:
    import threading

    import requests

    deployer.commit({"bench.yaml": [job("follow", hold_s=30)]})
    deployer.reconcile()
    pods = wait_for(lambda: deployer.cluster.core_v1.list_namespaced_pod(
        deployer.ns, label_selector="job-name=follow").items, 30, "the job's pod")
    pod = pods[0].metadata.name
    log_file = tmp_path / "pod.log"
    log_file.write_text("")
    deployer.cluster.dynamic.resources.get(api_version="kwok.x-k8s.io/v1alpha1", kind="Logs").create(
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs", "metadata": {"name": pod, "namespace": deployer.ns},
         "spec": {"logs": [{"containers": ["bench"], "logsFile": str(log_file), "follow": True}]}},
        namespace=deployer.ns)
    wait_for(lambda: deployer.cluster.core_v1.read_namespaced_pod(pod, deployer.ns).status.phase == "Running", 30,
             "the pod to run")

    received: list[tuple[float, str]] = []

    def read() -> None:
        with requests.get(deployer.served.url + "/jobs/follow/logs", params={"follow": "true"}, stream=True,
                          timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines(decode_unicode=True):
                received.append((time.monotonic(), line))
                if line.endswith("line 3"):
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    written = {}
    for n in (1, 2, 3):
        time.sleep(1.0)
        with log_file.open("a") as out:
            out.write(f"2026-01-01T00:00:0{n}.000000000Z stdout F line {n}\n")
        written[n] = time.monotonic()
    reader.join(30)
    assert [line for _, line in received] == ["line 1", "line 2", "line 3"]
    # each line arrived while the pod was still writing, not at the end
    assert received[0][0] < written[3]


def test_the_deployers_service_account_cannot_write_outside_its_namespace(
        serve_function: Any, k8s_cluster: Any, render: Any, tmp_path: Path) -> None:
    """With the manifests' RBAC and the deployer's own token, the cluster itself refuses another namespace."""
    from tests.k8s.test_manifests import _apply_for_real

    docs = render("base")
    _apply_for_real(k8s_cluster, docs, {"Namespace"})
    _apply_for_real(k8s_cluster, docs, {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"})
    token = k8s_cluster.core_v1.create_namespaced_service_account_token(
        "benchmark-deployer", "vllmbench", {"spec": {"expirationSeconds": 600}}).status.token
    kubeconfig = tmp_path / "deployer.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": k8s_cluster.server,
                                               "certificate-authority": str(k8s_cluster.local.pki / "ca.crt")}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
    remote = make_remote(tmp_path / "config.git", {
        "deployments/vllmbench-workloads/ok.yaml": text(configmap("allowed")),
        "deployments/default/no.yaml": text(configmap("refused"))})
    served = serve_function("deploy", gitops_repo_url=str(remote), runtime="kube", kubeconfig=str(kubeconfig),
                            workload_namespaces="vllmbench-workloads,default", data_dir=str(tmp_path / "data"))
    answer = served.post("/reconcile", json={})
    assert answer.status_code == 200, answer.text
    results = {a["name"]: a for a in answer.json()["actions"]}
    assert "error" not in results["allowed"]
    assert "forbidden" in results["refused"]["error"].lower()
    assert k8s_cluster.core_v1.read_namespaced_config_map("allowed", "vllmbench-workloads")
    assert not [c for c in k8s_cluster.core_v1.list_namespaced_config_map("default").items
                if c.metadata.name == "refused"]
    assert token not in answer.text


def test_an_api_server_lost_mid_reconcile_is_503_and_the_next_run_finishes(
        serve_function: Any, k8s_cluster: Any, k8s_namespace: str, tmp_path: Path) -> None:
    """A TCP relay in front of the real API server is cut once the first objects exist."""
    import threading

    from tests.fixtures.relay import Relay

    with Relay(k8s_cluster.server) as relay:
        kubeconfig = tmp_path / "relay.kubeconfig"
        kubeconfig.write_text(k8s_cluster.kubeconfig.read_text().replace(k8s_cluster.server, relay.url))
        remote = make_remote(tmp_path / "config.git", {
            f"deployments/{k8s_namespace}/many.yaml": text(*[configmap(f"cm-{i:03d}") for i in range(MANY)])})
        served = serve_function("deploy", gitops_repo_url=str(remote), runtime="kube", kubeconfig=str(kubeconfig),
                                workload_namespaces=k8s_namespace, data_dir=str(tmp_path / "data"))

        def cut_when_started() -> None:
            wait_for(lambda: len(k8s_cluster.core_v1.list_namespaced_config_map(k8s_namespace).items) > 5, 60,
                     "the first objects")
            relay.cut()

        cutter = threading.Thread(target=cut_when_started, daemon=True)
        cutter.start()
        answer = served.post("/reconcile", json={})
        cutter.join(60)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] and answer.json()["dependency"] == "kubernetes"
        made = len(k8s_cluster.core_v1.list_namespaced_config_map(k8s_namespace).items) - 1  # kube-root-ca.crt
        assert 0 < made < MANY
        relay.restore()
        again = served.post("/reconcile", json={})
        assert again.status_code == 200, again.text
        ops = {a["name"]: a["op"] for a in again.json()["actions"]}
        assert sum(1 for op in ops.values() if op == "create") == MANY - made
        assert len(k8s_cluster.core_v1.list_namespaced_config_map(k8s_namespace).items) - 1 == MANY
        runs = served.get("/reconcile").json()["runs"]
        assert runs[0]["state"] == "done" and runs[1]["state"] == "failed"


def test_an_unreachable_git_remote_is_503_with_retry_after(serve_function: Any, k8s_cluster: Any,
                                                           k8s_namespace: str, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "config.git", {f"deployments/{k8s_namespace}/a.yaml": text(configmap("a"))})
    served = serve_function("deploy", gitops_repo_url=str(remote), runtime="kube",
                            kubeconfig=str(k8s_cluster.kubeconfig), workload_namespaces=k8s_namespace,
                            data_dir=str(tmp_path / "data"))
    assert served.post("/reconcile", json={}).status_code == 200
    remote.rename(tmp_path / "moved.git")
    answer = served.post("/reconcile", json={})
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert answer.json()["dependency"] == "git"


def _terminal(url: str, session: dict[str, Any], first: dict[str, Any] | None = None) -> Any:
    import json

    import websocket

    ws = websocket.create_connection(url.replace("http://", "ws://") + session["websocket"], timeout=15)
    ws.send(json.dumps(first or {"type": "auth", "ticket": session["ticket"]}))
    return ws


def _until(ws: Any, predicate: Any, timeout: float = 20) -> list[dict[str, Any]]:
    import json

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        seen.append(message)
        if predicate(message, seen):
            return seen
    raise AssertionError(f"timed out; saw {seen}")


def test_a_terminal_runs_a_shell_in_the_jobs_pod_over_a_websocket(deployer: Setup, caplog: Any) -> None:
    import json
    import logging

    deployer.commit({"shell.yaml": [job("shell", hold_s=60)]})
    deployer.reconcile()
    wait_for(lambda: [p for p in deployer.cluster.core_v1.list_namespaced_pod(
        deployer.ns, label_selector="job-name=shell").items if p.status.phase == "Running"], 30, "a running pod")
    created = deployer.served.post("/jobs/shell/terminal", json={"shell": "/bin/sh"})
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["ticket"] not in session["websocket"]
    caplog.set_level(logging.INFO, logger="vllmbench.audit")
    ws = _terminal(deployer.served.url, session)
    try:
        _until(ws, lambda m, _: m["type"] == "ready")
        ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        ws.send(json.dumps({"type": "input", "data": "echo hello-$((6*7))\n"}))
        _until(ws, lambda _, seen: "hello-42" in "".join(m.get("data", "") for m in seen if m["type"] == "output"))
        listed = deployer.served.get("/terminal/sessions").json()["sessions"]
        assert [s["state"] for s in listed if s["session_id"] == session["session_id"]] == ["open"]
        ws.send(json.dumps({"type": "input", "data": "exit 3\n"}))
        ended = _until(ws, lambda m, _: m["type"] == "exit")
        assert ended[-1]["code"] == 3
    finally:
        ws.close()
    wait_for(lambda: not [s for s in deployer.served.get("/terminal/sessions").json()["sessions"]
                          if s["session_id"] == session["session_id"]], 10, "the session to close")
    opened = [r for r in caplog.records if r.name == "vllmbench.audit"]
    assert [r.getMessage() for r in opened] == ["terminal opened", "terminal closed"]
    assert "hello" not in " ".join(str(getattr(r, "fields", "")) for r in opened)  # never what was typed

    again = _terminal(deployer.served.url, session)  # a ticket opens one session, once
    try:
        message = json.loads(again.recv())
        assert message["type"] == "error" and "ticket" in message["message"]
    finally:
        again.close()


def test_terminals_open_only_into_vllmbench_jobs_and_only_so_many(deployer: Setup) -> None:
    deployer.cluster.batch_v1.create_namespaced_job(deployer.ns, job("by-hand", hold_s=60))
    refused = deployer.served.post("/terminal/create", json={"job_name": "by-hand", "namespace": deployer.ns})
    assert refused.status_code == 403 and "not managed by vllmbench" in refused.json()["message"]
    assert deployer.served.post("/terminal/create", json={"job_name": "nope"}).status_code == 404
    assert deployer.served.post("/terminal/create", json={"job_name": "by-hand", "shell": "/usr/bin/python3"}
                                ).status_code == 422
