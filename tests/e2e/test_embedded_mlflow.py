"""`vllmbench up --mlflow`: the loop closed with nothing touched but MLflow.

A version registered in the stack's MLflow becomes a ModelServer commit in the stack's Git
remote (webhook, the seeded rule); the vLLM service places it (the simulator stands in
for vLLM: no GPU here); the evaluations benchmark it with the rule's profile; the verdict
and key figures come back to the version as tags. A second version is judged against
the first (the rule's baseline: previous) and takes the alias on better or same."""

from __future__ import annotations

import io
import time

import pytest
import requests

from tests.e2e.ports import free_offset
from tests.fixtures.mlflow_rest import MlflowRest
from tests.integration.gitops import gitutil
from vllmbench.embedded.processes import free_port
from vllmbench.embedded.stack import Stack

pytestmark = pytest.mark.slow  # one stack at a time under pytest-xdist: tests/e2e is one unit (tests/fixtures/parallel.py)

# Two repeats: a repeat whose client was starved (a loaded machine, other tests beside it) is left out
# and named, rightly, and the other still gives the verdict the loop writes back.
QUICK = """name: chat-short
model: opt-125m
server: default/opt-125m
repeat: 2
load: {mode: rate, arrival: constant, rate_rps: 4, duration_s: 3, dataset: synthetic,
       input_tokens: {kind: fixed, mean: 32}, output_tokens: {kind: fixed, mean: 16}}
verdict: {threshold_percent: 10, metrics: [ttft_p50, e2e_p50]}
"""


def _evaluation(stack: Stack, evaluation: str, timeout: float = 240) -> dict:
    """The evaluation once it has ended (it starts when the server is ready)."""
    deadline, ev = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        answer = requests.get(stack.url("eval") + f"/evaluations/{evaluation}", timeout=30)
        ev = answer.json() if answer.status_code == 200 else {}
        if ev.get("state") in ("done", "failed", "timed_out", "cancelled"):
            return ev
        time.sleep(1)
    raise AssertionError(f"evaluation {evaluation} did not end: {ev}")


def _tags(mlflow: MlflowRest, model: str, version: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:  # the write-back follows dev.vllmbench.eval.completed
        tags = mlflow.tags(model, version)
        if "vllmbench.verdict" in tags or time.monotonic() > deadline:
            return tags
        time.sleep(0.3)


def test_a_version_registered_in_the_stacks_mlflow_is_deployed_benchmarked_and_judged(tmp_path):
    offset = free_offset()
    stack = Stack(tmp_path / "data", port_offset=offset, broker_port=offset + 8090, mongo_port=free_port(),
                  out=io.StringIO(), mlflow=True).start()
    try:
        assert stack.mlflow_server.url in stack.out.getvalue()
        mlflow = MlflowRest(stack.mlflow_server.url)
        fn = stack.url("mlflow_poll")
        first = requests.post(fn + "/poll", timeout=60)  # registers the webhook (a tick would, within a minute)
        assert first.status_code == 200, first.text
        connections = requests.get(fn + "/connections", timeout=30).json()
        assert connections["mlflow"]["version"] and connections["git"]["reachable"]
        assert connections["webhook"]["registered"] is True, connections["webhook"]
        assert connections["rules"]["paths"] == ["projects/demo/mlflow/demo-models.yaml"]
        # The rule's profile, made short through the Manager (a commit, as a person would): the two
        # evaluations below then take seconds each instead of the demo profile's half minute.
        edited = requests.put(stack.url("sync") + "/projects/demo/files/benchmarks/chat-short.yaml", data=QUICK,
                              timeout=60)
        assert edited.status_code == 200, edited.text
        time.sleep(5.5)  # the stack's MLflow caches its webhook list for 5 s

        mlflow.create_model("demo-chat")
        version = mlflow.create_version("demo-chat", "s3://models/demo-chat/1", hf_model="facebook/opt-125m")
        remote = tmp_path / "data" / "gitops.git"
        path = f"models/default/demo-chat-v{version}.yaml"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and path not in gitutil.git(
                "--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main"):
            time.sleep(0.3)
        content = gitutil.show(remote, path)
        assert "model_name: facebook/opt-125m" in content and "gpu_resource_type: cpu" in content
        assert gitutil.log(remote)[0].split(" ", 1)[1].startswith(f"MLflow: demo-chat version {version} as")
        deadline = time.monotonic() + 10  # Git first, then the store: the record follows the push
        while True:
            versions = requests.get(fn + "/models/demo-chat/versions", timeout=10).json().get("versions") or []
            if (versions and versions[0]["commit"]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert versions[0]["benchmark"]["project"] == "demo" and versions[0]["benchmark"]["profile"] == "chat-short"
        # the commit was announced (dev.vllmbench.gitops.pushed): the vLLM service places the new server now
        status, deadline = {}, time.monotonic() + 60
        while time.monotonic() < deadline and status.get("status") != "ready":
            answer = requests.get(stack.url("vllm_deploy") + f"/deployments/default.demo-chat-v{version}/status",
                                  timeout=30)
            status = answer.json() if answer.status_code == 200 else {}
            time.sleep(0.5)
        assert status.get("status") == "ready", status
        commit = gitutil.log(remote)[0].split()[0]
        assert ("gitops-pushed-to-vllm", f"mlflow-{commit}", 202) in stack.broker.delivered
        # the Manager mirrors the seeded rule as a checked file of its own kind
        files = requests.get(stack.url("sync") + "/projects/demo/files", timeout=10).json()["files"]
        rule = next(f for f in files if f["path"] == "mlflow/demo-models.yaml")
        assert rule["kind"] == "mlflow_rule" and rule["status"] == "ok"

        # the evaluation the rule asks for: requested by the registration, started when the server is ready
        first_ev = _evaluation(stack, f"mlflow-demo-chat-v{version}-chat-short")
        assert first_ev["state"] == "done", first_ev
        assert first_ev["request"]["labels"] == {"vllmbench.dev/mlflow-model": "demo-chat",
                                      "vllmbench.dev/mlflow-version": str(version)}
        tags = _tags(mlflow, "demo-chat", version)
        assert tags["vllmbench.verdict"] == "no_baseline", tags  # the model's first version
        assert float(tags.get("vllmbench.ttft_p50_ms", 0)) > 0 and float(tags.get("vllmbench.output_tokens_per_s", 0)) > 0, (tags, first_ev["verdict"])
        run_id = tags["vllmbench.run_ids"].split(",")[0]
        assert requests.get(stack.url("results") + f"/runs/{run_id}", timeout=30).status_code == 200

        # a second version: judged against the first (baseline: previous), the alias moves on better or same
        second = mlflow.create_version("demo-chat", "s3://models/demo-chat/2", hf_model="facebook/opt-125m")
        second_ev = _evaluation(stack, f"mlflow-demo-chat-v{second}-chat-short", timeout=300)
        assert second_ev["state"] == "done", second_ev
        tags = _tags(mlflow, "demo-chat", second)
        assert tags["vllmbench.verdict"] in ("better", "same", "worse"), tags
        assert tags["vllmbench.baseline"] == first_ev["id"], tags
        assert "vllmbench.ttft_p50_ms.change_pct" in tags
        if tags["vllmbench.verdict"] in ("better", "same"):
            assert mlflow.aliases("demo-chat").get("champion") == second
    finally:
        stack.stop()
