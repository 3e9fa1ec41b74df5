"""Evaluations on the real control plane (kwok nodes simulate the job pods): request -> Jobs ->
results -> verdict, through the real Manager, Results and eval functions and the local broker
(which reads the same Trigger YAML as Knative). The harness's pods are simulated here, so the test
posts what the harness would post; the local-runtime tests run the harness for real."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import wait_for
from tests.fixtures.records import record
from tests.integration.gitops.gitutil import Person, make_remote

pytestmark = pytest.mark.k8s

PROFILE = {"description": "short chat", "model": "sim-model",
           "load": {"mode": "rate", "arrival": "poisson", "rate_rps": 4, "duration_s": 20,
                    "input_tokens": {"kind": "fixed", "mean": 128}, "output_tokens": {"kind": "fixed", "mean": 64}},
           "slo": {"ttft_ms": 200}}
# beyond what one client pod holds (the vllmbench template's max_rate_per_pod is 400): three pods
FAST = {"model": "sim-model", "load": {"mode": "rate", "arrival": "poisson", "rate_rps": 900, "duration_s": 1,
                                       "input_tokens": {"kind": "fixed", "mean": 32},
                                       "output_tokens": {"kind": "fixed", "mean": 8}}}


class Stack:
    def __init__(self, manager: Any, results: Any, evals: Any, cluster: Any, ns: str, person: Person) -> None:
        self.manager, self.results, self.evals, self.cluster, self.ns, self.person = (
            manager, results, evals, cluster, ns, person)

    def evaluate(self, **body: Any) -> dict[str, Any]:
        answer = self.evals.post("/evaluate", json={"project": "demo", "benchmark": "chat",
                                                    "target_url": "http://sim.example:8000",
                                                    "model_name": "sim-model", **body})
        assert answer.status_code == 202, answer.text
        return answer.json()

    def get(self, evaluation: str) -> dict[str, Any]:
        return self.evals.get(f"/evaluations/{evaluation}").json()

    def post_results(self, run_id: str, ttft: float, *, trustworthy: bool = True) -> None:
        rec = record(run_id, project="demo", model="sim-model", ttft=ttft,
                     started=dt.datetime.now(dt.timezone.utc))
        rec["results"]["trust"]["trustworthy"] = trustworthy
        if not trustworthy:
            rec["results"]["trust"]["reasons"] = ["schedule delay p99 42 ms > 10 ms"]
        answer = self.results.post("/standardized_output", json=rec)
        assert answer.status_code == 201, answer.text

    def wait_state(self, evaluation: str, state: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(lambda: (doc := self.get(evaluation))["state"] == state and doc, timeout,
                        f"evaluation {evaluation} to be {state}", lambda: self.get(evaluation)["timeline"][-3:])


@pytest.fixture
def stack(serve_function: Any, k8s_cluster: Any, k8s_namespace: str, tmp_path: Path) -> Any:
    from eventing.local import LocalBroker, load_config
    from vllmbench.embedded.processes import free_port

    remote = make_remote(tmp_path / "config.git", {
        "projects/demo/project.yaml": "name: demo\n",
        "projects/demo/benchmarks/chat.yaml": yaml.safe_dump(PROFILE),
        "projects/demo/benchmarks/fast.yaml": yaml.safe_dump(FAST),
    })
    port = free_port()
    broker_url = f"http://127.0.0.1:{port}/"
    manager = serve_function("sync", gitops_repo_url=str(remote), data_dir=str(tmp_path / "m"))
    results = serve_function("results", broker_url=broker_url)
    evals = serve_function("eval", gitops_repo_url=str(remote), runtime="kube", kubeconfig=str(k8s_cluster.kubeconfig),
                           workload_namespaces=k8s_namespace, manager_url=manager.url, results_url=results.url,
                           broker_url=broker_url, data_dir=str(tmp_path / "e"))
    broker = LocalBroker(load_config(), {"benchmark-results": results.url, "benchmark-eval": evals.url,
                                         "benchmark-manager": manager.url},
                         dead_letter_log=tmp_path / "dead.jsonl").start(port)
    created = manager.post("/projects", json={"name": "demo", "repository": str(remote), "root": "projects/demo",
                                               "credentials": "none"})
    assert created.status_code == 201, created.text
    assert manager.post("/projects/demo/sync").status_code == 200
    yield Stack(manager, results, evals, k8s_cluster, k8s_namespace, Person(remote, tmp_path / "person"))
    broker.stop()


def test_an_evaluation_goes_from_request_to_verdict(stack: Stack) -> None:
    first = stack.evaluate(repeat=2, labels={"team": "platform"})
    assert first["state"] == "running" and first["created"]
    jobs = {j.metadata.name: j for j in stack.cluster.batch_v1.list_namespaced_job(stack.ns).items}
    assert sorted(jobs) == [r["job"] for r in first["repeats"]]
    job = jobs[first["repeats"][0]["job"]]
    assert job.metadata.labels["vllmbench.dev/owner"] == "eval"
    args = job.spec.template.spec.containers[0].args
    assert "--url=http://sim.example:8000" in args and f"--run-id={first['repeats'][0]['run_id']}" in args
    assert f"--results-url={stack.results.url}" in args and "--rate=4" in args and "--slo-ttft-ms=200" in args

    for repeat, ttft in zip(first["repeats"], (20.0, 20.4)):
        stack.post_results(repeat["run_id"], ttft)
    done = stack.wait_state(first["id"], "done")
    assert done["verdict"]["verdict"] == "no_baseline"
    assert done["verdict"]["metrics"]["s0:ttft_p50"]["n"] == 2
    assert [t["state"] for t in done["timeline"]] == ["scheduled", "running", "done"]
    assert all(r["results"] for r in done["repeats"])

    # the same settings again: judged the same against the first as its baseline
    same = stack.evaluate(repeat=2)
    for repeat, ttft in zip(same["repeats"], (20.2, 20.3)):
        stack.post_results(repeat["run_id"], ttft)
    judged = stack.wait_state(same["id"], "done")
    assert judged["verdict"]["baseline"] == first["id"] and judged["verdict"]["verdict"] == "same"

    # a regression of TTFT +30%: worse
    worse = stack.evaluate(repeat=2, baseline=first["id"])
    for repeat, ttft in zip(worse["repeats"], (26.0, 26.5)):
        stack.post_results(repeat["run_id"], ttft)
    judged = stack.wait_state(worse["id"], "done")
    assert judged["verdict"]["verdict"] == "worse" and "ttft_p50" in judged["verdict"]["summary"]


def test_untrustworthy_runs_get_no_verdict(stack: Stack) -> None:
    ev = stack.evaluate(repeat=1)
    stack.post_results(ev["repeats"][0]["run_id"], 20.0, trustworthy=False)
    done = stack.wait_state(ev["id"], "done")
    assert done["verdict"]["verdict"] == "untrustworthy"
    assert done["verdict"]["untrustworthy_repeats"][0]["reasons"] == ["stage 0: schedule delay p99 42 ms > 10 ms"]


def test_a_failing_job_fails_the_evaluation_with_the_pods_reason(stack: Stack) -> None:
    fail = "pod-container-running-failed.stage.kwok.x-k8s.io"
    stack.person.commit({"projects/demo/templates/failing.yaml": yaml.safe_dump({
        "name": "failing", "harness": "vllmbench",
        "job": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: '{{ job_name }}'}\nspec:\n  backoffLimit: 0\n"
               "  template:\n    metadata:\n      labels: {" + fail + ": 'true'}\n      annotations: {" + fail +
               "/exit-code: '3', " + fail + "/reason: Error}\n    spec:\n      restartPolicy: Never\n"
               "      containers: [{name: harness, image: x}]\n"})}, "a failing template")
    assert stack.manager.post("/projects/demo/sync").status_code == 200
    ev = stack.evaluate(template="failing")
    wait_for(lambda: stack.evals.post("/", headers={"ce-id": f"tick-{dt.datetime.now().timestamp()}",
                                                    "ce-source": "/test", "ce-type": "dev.knative.sources.ping",
                                                    "ce-specversion": "1.0", "Content-Type": "application/json"},
                                      data='{"job": "tick"}').ok and stack.get(ev["id"])["state"] == "failed",
             60, "the evaluation to fail")
    failed = stack.get(ev["id"])
    assert "failed" in failed["reason"] and "exited with 3" in failed["reason"]
    assert failed["repeats"][0]["logs"].endswith(f"/jobs/{ev['repeats'][0]['job']}/logs?namespace={stack.ns}")


def test_cancel_stops_the_jobs_and_keeps_what_was_stored(stack: Stack) -> None:
    ev = stack.evaluate(repeat=2)
    stack.post_results(ev["repeats"][0]["run_id"], 20.0)
    cancelled = stack.evals.delete(f"/evaluations/{ev['id']}").json()
    assert cancelled["state"] == "cancelled"
    wait_for(lambda: not stack.cluster.batch_v1.list_namespaced_job(stack.ns).items, 30, "the jobs to be deleted")
    assert stack.results.get(f"/runs/{ev['repeats'][0]['run_id']}").status_code == 200


@pytest.mark.parametrize("body, field, words", [
    ({"project": "nope"}, "project", "no project 'nope'"),
    ({"benchmark": "nope"}, "benchmark", "no benchmark profile 'nope'"),
    ({"template": "nope"}, "template", "no template 'nope'"),
    ({"template": "builtin:nope"}, "template", "no built-in template"),
    ({"target_url": None, "server": "default/absent"}, "server", "no ModelServer 'default/absent'"),
    ({"repeat": 0}, "repeat", "greater than or equal to 1"),
])
def test_bad_requests_are_422_and_schedule_nothing(stack: Stack, body: dict, field: str, words: str) -> None:
    payload = {"project": "demo", "benchmark": "chat", "target_url": "http://sim.example:8000", **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    answer = stack.evals.post("/evaluate", json=payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.text and field in answer.json()["details"][0]["loc"]
    assert stack.evals.get("/evaluations").json()["count"] == 0
    assert not stack.cluster.batch_v1.list_namespaced_job(stack.ns).items


def test_a_rate_beyond_one_client_pod_runs_as_an_indexed_job_whose_merged_parts_are_judged(stack: Stack) -> None:
    from dataclasses import replace

    from tests.fixtures import shards
    from vllmbench.harness.output import post_results
    from vllmbench.harness.parts import merge_parts

    ev = stack.evaluate(benchmark="fast")
    assert ev["state"] == "running" and ev["request"]["pods"] == 3
    [job] = stack.cluster.batch_v1.list_namespaced_job(stack.ns).items
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 3, 3)
    args = job.spec.template.spec.containers[0].args
    assert "--shard=$(JOB_COMPLETION_INDEX)/3" in args and "--rate=900" in args
    start = float(next(a for a in args if a.startswith("--start-at=")).split("=", 1)[1])
    created = dt.datetime.fromisoformat(stack.get(ev["id"])["timeline"][-1]["at"]).timestamp()
    assert start == pytest.approx(created + 60, abs=1)  # VLLMBENCH_EVAL_SHARD_LEAD_S
    # kwok runs no process: post the three parts as the pods would, then merge them as pod 0 does
    run_id = ev["repeats"][0]["run_id"]
    cfg = shards.config(run_id, rate=900, duration_s=1, arrival="poisson", input_len="32", output_len="8")
    offsets, requests = shards.requests(cfg)
    for k in range(3):
        post_results(shards.part(cfg, offsets, requests, k, 3, start_at=start), stack.results.url, api_token=None)
    assert stack.get(ev["id"])["repeats"][0]["results"] == []  # a part is not the repeat's result
    merged = merge_parts(replace(cfg, run_id=f"{run_id}-p0", shard_index=0, shards=3, start_at=start),
                         stack.results.url, api_token=None, wait_s=30)
    post_results(merged, stack.results.url, api_token=None)
    done = stack.wait_state(ev["id"], "done")
    assert done["verdict"]["verdict"] == "no_baseline" and done["repeats"][0]["results"] == [f"{run_id}#0"]
    assert done["repeats"][0]["trustworthy"] is True
    stored = stack.results.get(f"/runs/{run_id}").json()["standardized"][0]
    assert stored["labels"] == {"client_pods": "3"} and stored["results"]["requests"]["total"] == len(offsets)
