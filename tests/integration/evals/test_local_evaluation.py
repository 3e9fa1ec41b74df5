"""An evaluation under the local runtime, for real: the Job runs `vllmbench run` as a process against a
simulated vLLM server (no GPU here: the simulator plays vLLM, with known latencies), posts its results to
the real Results service, the local broker carries `result.ingested` to the eval function, and the
evaluation is judged. A regression planted in the simulator (TTFT +30%) is judged worse."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.gitops.gitutil import make_remote
from tests.integration.localrt.conftest import processes_under, wait_for
from vllmbench.simulator import SimConfig, SimulatorProcess

pytestmark = pytest.mark.slow

# Short and light, so that a loaded CI machine keeps the client on schedule; a 10% threshold, so
# that a 30% TTFT regression is far beyond it and run-to-run noise on two shared cores is not.
PROFILE = {"model": "sim-model", "load": {"mode": "rate", "arrival": "constant", "rate_rps": 4, "duration_s": 3,
                                          "input_tokens": {"kind": "fixed", "mean": 32},
                                          "output_tokens": {"kind": "fixed", "mean": 16}},
           "slo": {"ttft_ms": 500},
           # medians decide here: a p99 of a 3 s run on two shared cores moves by a third from run to run
           "verdict": {"threshold_percent": 10, "metrics": ["ttft_p50", "tpot_p50", "e2e_p50", "output_tokens_per_s"]}}
# Load beyond one client: a project template that says one client pod holds 6 req/s, and a profile at 15/s
# (3 s, 45 requests, constant arrivals) that therefore runs as an Indexed Job of three client pods.
SHARDED = {"model": "sim-model", "load": {"mode": "rate", "arrival": "constant", "rate_rps": 15, "duration_s": 3,
                                          "input_tokens": {"kind": "fixed", "mean": 32},
                                          "output_tokens": {"kind": "fixed", "mean": 16}},
           "slo": {"ttft_ms": 500}}
SHARD_LEAD_S = 10  # three processes start, import and check the server in it on two shared cores
ATTEMPTS = 3
SERVER = {"model_name": "facebook/opt-125m", "served_model_name": "sim-v2", "gpu_resource_type": "cpu",
          "max_model_len": 2048}


@pytest.fixture
def stack(serve_function: Any, tmp_path: Path) -> Any:
    from eventing.local import LocalBroker, load_config
    from vllmbench.embedded.processes import free_port

    remote = make_remote(tmp_path / "config.git", {"projects/demo/project.yaml": "name: demo\n",
                                                   "projects/demo/benchmarks/chat.yaml": yaml.safe_dump(PROFILE),
                                                   "projects/demo/benchmarks/sharded.yaml": yaml.safe_dump(SHARDED),
                                                   "projects/demo/templates/six-per-pod.yaml": six_per_pod(),
                                                   "models/default/sim-v2.yaml": yaml.safe_dump(SERVER)})
    port = free_port()
    broker_url = f"http://127.0.0.1:{port}/"
    root = tmp_path / "workloads"
    manager = serve_function("sync", gitops_repo_url=str(remote), data_dir=str(tmp_path / "m"))
    results = serve_function("results", broker_url=broker_url)
    evals = serve_function("eval", gitops_repo_url=str(remote), runtime="local", local_runtime_dir=str(root),
                           workload_namespaces="default", manager_url=manager.url, results_url=results.url,
                           broker_url=broker_url, data_dir=str(tmp_path / "e"), eval_shard_lead_s=SHARD_LEAD_S)
    broker = LocalBroker(load_config(), {"benchmark-results": results.url, "benchmark-eval": evals.url,
                                         "benchmark-manager": manager.url},
                         dead_letter_log=tmp_path / "dead.jsonl").start(port)
    assert manager.post("/projects", json={"name": "demo", "repository": str(remote), "root": "projects/demo",
                                           "credentials": "none"}).status_code == 201
    assert manager.post("/projects/demo/sync").status_code == 200
    yield evals, results
    broker.stop()
    runtime = evals.app.runtime.resource("workloads", lambda: None)
    if runtime is not None:
        runtime.shutdown(timeout_s=30)
    deadline = time.monotonic() + 10
    while processes_under(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_under(root)


def six_per_pod() -> str:
    """The built-in vllmbench template, copied into the project as a person would, saying that one
    client pod holds 6 req/s."""
    import vllmbench.evals

    text = (Path(vllmbench.evals.__file__).parent / "builtin" / "vllmbench.yaml").read_text()
    assert "\nmax_rate_per_pod: 400\n" in text and "\nname: vllmbench\n" in text
    return text.replace("\nmax_rate_per_pod: 400\n", "\nmax_rate_per_pod: 6\n").replace(
        "\nname: vllmbench\n", "\nname: six-per-pod\n")


def run(evals: Any, url: str, **body: Any) -> dict[str, Any]:
    """An evaluation to its end. A run the harness itself marks untrustworthy (a client starved on a
    loaded machine) gets no verdict, rightly; it is run again, up to ATTEMPTS times."""
    for _ in range(ATTEMPTS):
        answer = evals.post("/evaluate", json={"project": "demo", "benchmark": "chat", "target_url": url, **body})
        assert answer.status_code == 202, answer.text
        evaluation = answer.json()["id"]
        done = wait_for(lambda: (d := evals.get(f"/evaluations/{evaluation}").json())["state"] in
                        ("done", "failed", "timed_out") and d, timeout_s=120, what=f"evaluation {evaluation} to end")
        if (done.get("verdict") or {}).get("verdict") != "untrustworthy":
            return done
    return done


# Judges two runs of one simulator "same": the other workers' load changing between them would move the
# simulator's own latency (seen at 4 workers: +23% TTFT), so under pytest-xdist it has the machine alone.
@pytest.mark.exclusive
def test_a_real_run_is_stored_and_judged_and_a_planted_regression_is_worse(stack: Any) -> None:
    evals, results = stack
    with SimulatorProcess(SimConfig(port=0, ttft_ms=40, itl_ms=10, models=("sim-model",))) as sim:
        first = run(evals, sim.url, repeat=3)
        assert first["state"] == "done", first["timeline"]
        run_ids = [r["run_id"] for r in first["repeats"]]
        stored = results.get(f"/runs/{run_ids[0]}").json()
        assert stored["standardized"] and stored["raw"][0]["harness"]["name"] == "vllmbench"
        ttft = first["verdict"]["metrics"]["s0:ttft_p50"]
        assert ttft["n"] == sum(1 for r in first["repeats"] if r["trustworthy"]) and 35 < ttft["mean"] < 80
        assert first["verdict"]["verdict"] == "no_baseline"
        same = run(evals, sim.url, repeat=3)
        worse_now = [(c["metric"], c["change_percent"], c["reason"]) for c in same["verdict"]["comparisons"]
                     if c["verdict"] != "same"]
        assert same["verdict"]["baseline"] == first["id"] and same["verdict"]["verdict"] == "same", worse_now
    with SimulatorProcess(SimConfig(port=0, ttft_ms=52, itl_ms=10, models=("sim-model",))) as slower:
        worse = run(evals, slower.url, repeat=3, baseline=first["id"])
    verdicts = {c["metric"]: (c["verdict"], c["change_percent"]) for c in worse["verdict"].get("comparisons", [])}
    assert worse["verdict"]["verdict"] == "worse" and verdicts["s0:ttft_p50"][0] == "worse", verdicts


def test_the_original_deployers_run_becomes_an_evaluation(stack: Any, serve_function: Any, tmp_path: Path) -> None:
    evals, _ = stack
    deployer = serve_function("deploy", eval_url=evals.url, runtime="local", local_runtime_dir=str(tmp_path / "d"),
                              data_dir=str(tmp_path / "dd"))
    answer = deployer.post("/run", json={"project_id": "demo", "benchmark_type": "vllmbench", "name": "Night Run",
                                         "config_file_id": "benchmarks/chat.yaml",
                                         "vllm_model_endpoint": "http://127.0.0.1:9/"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == "night-run"
    evaluation = evals.get("/evaluations/night-run").json()
    assert evaluation["request"]["benchmark"] == "chat" and evaluation["server_url"] == "http://127.0.0.1:9"
    evals.delete("/evaluations/night-run")
    refused = deployer.post("/run", json={"project_id": "demo", "config_file_id": "benchmarks/absent.yaml",
                                          "vllm_model_endpoint": "http://127.0.0.1:9/"})
    assert refused.status_code == 422 and "absent" in refused.json()["message"]


def _registered(evals: Any, event_id: str, data: dict[str, Any]) -> Any:
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    event = CloudEvent({"id": event_id, "source": "/vllmbench/benchmark-mlflow",
                        "type": "dev.vllmbench.model.version.registered"}, data)
    headers, body = to_binary(event)
    return evals.post("/events", data=body, headers=headers)


def test_a_version_the_mlflow_service_registered_is_evaluated_once_with_its_labels(stack: Any) -> None:
    """The MLflow service's dev.vllmbench.model.version.registered (docs/mlflow.md, "Events") is an
    evaluation request: the rule's profile, the new server, the labels that lead the verdict back."""
    evals, _ = stack
    labels = {"vllmbench.dev/mlflow-model": "sim", "vllmbench.dev/mlflow-version": "2"}  # dotted keys
    data = {"model": "sim", "version": 2, "server": "default/sim-v2", "path": "models/default/sim-v2.yaml",
            "benchmark": {"project": "demo", "profile": "chat", "baseline": "previous",
                          "baseline_server": "default/sim-v1", "labels": labels}}
    first = _registered(evals, "sim:v2", data)
    assert first.status_code == 202, first.text
    ev = evals.get("/evaluations/mlflow-sim-v2-chat").json()
    assert ev["request"]["labels"] == labels and ev["request"]["baseline"] == "server:default/sim-v1"
    assert ev["server"]["name"] == "sim-v2" and ev["state"] in ("waiting", "running")
    # delivered again (acknowledged by the event ledger), or announced under another id: the same evaluation
    assert _registered(evals, "sim:v2", data).status_code == 200
    again = _registered(evals, "sim:v2-again", data)
    assert again.status_code == 202 and '"created": false' in again.text.replace('":false', '": false'), again.text
    listed = evals.get("/evaluations", params={"project": "demo"}).json()["items"]
    assert [e["id"] for e in listed].count("mlflow-sim-v2-chat") == 1
    assert evals.delete("/evaluations/mlflow-sim-v2-chat").status_code == 200
    # a rule with no benchmark asks for nothing; a profile the project lacks is refused, not retried
    assert _registered(evals, "sim:v3", {**data, "benchmark": None}).status_code == 202
    refused = _registered(evals, "sim:v4", {**data, "benchmark": {**data["benchmark"], "profile": "absent"}})
    assert refused.status_code == 422 and "absent" in refused.text


def test_a_rate_beyond_one_client_pod_runs_as_client_processes_whose_merged_run_is_judged(stack: Any) -> None:
    """Load beyond one client, for real: 15/s over a template's 6 per pod is an Indexed Job of three pods,
    three `vllmbench run --shard=I/3` processes sending one schedule from the same start; pod 0 merges
    the parts in the Results service into the run one client would have made, and that run is judged."""
    evals, results = stack
    with SimulatorProcess(SimConfig(port=0, ttft_ms=40, itl_ms=10, models=("sim-model",))) as sim:
        done = run(evals, sim.url, benchmark="sharded", template="six-per-pod")
    assert done["request"]["pods"] == 3 and done["state"] == "done", done["timeline"]
    assert any("of 3 client pods each, sending together from" in t["reason"] for t in done["timeline"]), done["timeline"]
    assert done["verdict"]["verdict"] == "no_baseline", done["verdict"]
    run_id = done["repeats"][0]["run_id"]
    assert done["repeats"][0]["results"] == [f"{run_id}#0"]  # the merged run, not a part
    [merged] = results.get(f"/runs/{run_id}").json()["standardized"]
    m = merged["results"]
    assert m["requests"]["total"] == 45 and m["requests"]["failed"] == 0
    assert merged["labels"] == {"client_pods": "3"} and merged["scenario"]["load"]["rate_rps"] == 15
    assert m["latency"]["itl"]["count"] == 45 * 15 and 35 < m["latency"]["ttft"]["p50"] < 80
    # every pod's part is a run of its own with its own trust figures, asked of its third of the rate
    parts = [results.get(f"/runs/{run_id}-p{k}").json()["standardized"][0] for k in range(3)]
    assert [p["labels"]["shard"] for p in parts] == ["0/3", "1/3", "2/3"]
    assert [p["results"]["requests"]["total"] for p in parts] == [15, 15, 15]
    assert all(p["results"]["trust"]["requested_rate_rps"] == pytest.approx(5.0) for p in parts)
    raw = results.get(f"/runs/{run_id}").json()["raw"][-1]["data"]
    pods = raw["stages"][0]["pods"]
    assert [(p["run_id"], p["requests"]) for p in pods] == [(f"{run_id}-p{k}", 15) for k in range(3)]
    assert all(p["trust"]["trustworthy"] for p in pods) and m["trust"]["trustworthy"]
    page = results.get(f"/runs/{run_id}/requests", params={"limit": 100}).json()
    assert page["total"] == 45 and sorted(r["index"] for r in page["items"]) == list(range(45))
