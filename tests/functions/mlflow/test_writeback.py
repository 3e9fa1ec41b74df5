"""dev.vllmbench.eval.completed back to MLflow: the verdict and key figures as tags on the
version, an alias moved on better or same. The evaluations that will emit it are being
built; these tests post the event the way the broker delivers it (real CloudEvents over
real HTTP), against the real MLflow server."""

from __future__ import annotations

from typing import Any

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.functions.mlflow.conftest import Setup
from vllmbench.embedded.processes import free_port
from vllmbench.evals.verdict import judge

EVAL_SOURCE = "/vllmbench/benchmark-eval"


def _completed(event_id: str, data: dict[str, Any], *, structured: bool = False):
    event = CloudEvent({"id": event_id, "source": EVAL_SOURCE, "type": "dev.vllmbench.eval.completed"}, data)
    return to_structured(event) if structured else to_binary(event)


def _post(fn, event_id: str, data: dict[str, Any], *, structured: bool = False):
    headers, body = _completed(event_id, data, structured=structured)
    return fn.post("/events", data=body, headers=headers)


def _followed(setup: Setup, versions: int = 2) -> tuple[str, Any]:
    model = setup.mlflow.name("judged")
    setup.rule("judged", {"models": [model],
                          "benchmark": {"project": "demo", "profile": "chat-short", "promote_alias": "champion"}},
               folder="projects/demo/mlflow")
    setup.mlflow.create_model(model)
    for i in range(1, versions + 1):
        setup.mlflow.create_version(model, f"s3://b/{i}")
    fn = setup.function()
    assert len(fn.post("/poll").json()["written"]) == versions
    return model, fn


def _verdict(model: str, version: int, verdict: str, **extra: Any) -> dict[str, Any]:
    """The event as the evaluations emit it (vllmbench/evals/runner.py ``_announce``), with a
    verdict judged by their own ``judge`` from one repeat against one baseline repeat."""
    ttft = {"same": 21.4, "better": 15.0, "worse": 30.0}[verdict]
    current = [{"run_id": f"ev-{version}-r0", "trustworthy": True,
                "metrics": {"s0:ttft_p50": ttft, "s0:ttft_p90": ttft * 1.2, "s0:output_tokens_per_s": 1523.0,
                            "s1:ttft_p50": ttft * 1.5}}]
    baseline = [{"run_id": "ev-base-r0", "trustworthy": True,
                 "metrics": {"s0:ttft_p50": 20.9, "s0:ttft_p90": 25.0, "s0:output_tokens_per_s": 1500.0,
                             "s1:ttft_p50": 31.0}}]
    judged = judge(current, baseline, baseline_id="ev-base")
    assert judged["verdict"] == verdict
    return {"evaluation": f"ev-{version}-{verdict}", "state": "done", "reason": None, "project": "demo",
            "benchmark": "chat-short", "target_url": None,
            "server": {"namespace": "default", "name": f"{model}-v{version}", "commit": "0" * 40,
                       "path": f"models/default/{model}-v{version}.yaml"},
            "model": "org/model", "run_ids": [f"ev-{version}-r0"], "schedule": None,
            "labels": {"vllmbench.dev/mlflow-model": model, "vllmbench.dev/mlflow-version": str(version)},
            "verdict": judged, **extra}


def test_the_registered_event_says_what_to_evaluate_it_with(setup: Setup):
    model, _ = _followed(setup)
    events = setup.broker.of_type("dev.vllmbench.model.version.registered")
    second = events[1]["data"]
    assert second["rule"] == "projects/demo/mlflow/judged.yaml"
    assert second["benchmark"]["project"] == "demo" and second["benchmark"]["profile"] == "chat-short"
    assert second["benchmark"]["baseline_server"] == f"default/{model}-v1"  # 'previous'
    assert second["benchmark"]["labels"] == {"vllmbench.dev/mlflow-model": model,
                                             "vllmbench.dev/mlflow-version": "2"}
    assert events[0]["data"]["benchmark"]["baseline_server"] is None  # nothing before version 1


def test_a_verdict_becomes_tags_on_the_version_and_same_moves_the_alias(setup: Setup):
    model, fn = _followed(setup)
    answer = _post(fn, "e-1", _verdict(model, 2, "same"))
    assert answer.status_code == 202, answer.text
    tags = setup.mlflow.tags(model, 2)
    assert tags["vllmbench.verdict"] == "same"
    assert tags["vllmbench.ttft_p50_ms"] == "21.4"
    assert tags["vllmbench.ttft_p50_ms.change_pct"] == "2.392" and tags["vllmbench.ttft_p50_ms.verdict"] == "same"
    assert tags["vllmbench.output_tokens_per_s"] == "1523"
    assert tags["vllmbench.s1.ttft_p50_ms"] == "32.1"  # the sweep's second stage
    assert "vllmbench.ttft_p90_ms" not in tags  # key figures only
    assert tags["vllmbench.evaluation_url"] == "http://127.0.0.1:8004/evaluations/ev-2-same"
    assert tags["vllmbench.results_url"] == "http://127.0.0.1:8000/runs/ev-2-r0"
    assert tags["vllmbench.evaluation"] == "ev-2-same" and tags["vllmbench.baseline"] == "ev-base"
    assert setup.mlflow.aliases(model) == {"champion": 2}
    assert "vllmbench.verdict" not in setup.mlflow.tags(model, 1)
    assert fn.get(f"/models/{model}/versions/2").json()["writeback"]["verdict"] == "same"

    duplicate = _post(fn, "e-1", _verdict(model, 2, "same"))
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"


def test_worse_tags_but_moves_no_alias_and_an_older_version_never_takes_it_back(setup: Setup):
    model, fn = _followed(setup, versions=3)
    assert _post(fn, "w-3", _verdict(model, 3, "better"), structured=True).status_code == 202
    assert setup.mlflow.aliases(model) == {"champion": 3}
    worse = _post(fn, "w-2", _verdict(model, 2, "worse")).json()["outcome"]
    assert "the verdict is worse" in worse["alias_not_moved"]
    late = _post(fn, "w-1", _verdict(model, 1, "better")).json()["outcome"]  # out of order: an older version
    assert "newer version 3" in late["alias_not_moved"]
    assert setup.mlflow.aliases(model) == {"champion": 3}
    assert setup.mlflow.tags(model, 2)["vllmbench.verdict"] == "worse"


def test_no_verdict_and_failed_runs_say_so(setup: Setup):
    model, fn = _followed(setup, versions=1)
    untrusted = [{"run_id": "ev-u-r0", "trustworthy": False, "trust_reasons": ["client fell behind"],
                  "metrics": {"s0:ttft_p50": 20.0}}]
    _post(fn, "n-1", {**_verdict(model, 1, "same"), "evaluation": "ev-u",
                      "verdict": judge(untrusted, None, baseline_id=None)})
    tags = setup.mlflow.tags(model, 1)
    assert tags["vllmbench.verdict"] == "untrustworthy" and tags["vllmbench.untrustworthy_repeats"] == "1"
    _post(fn, "n-2", {"evaluation": "ev-f", "state": "failed", "server": f"default/{model}-v1", "labels": {},
                      "run_ids": ["ev-f-r0"], "reason": "repeat 0 (job ev-f-r0) failed: OOMKilled"})  # by its server
    tags = setup.mlflow.tags(model, 1)
    assert tags["vllmbench.verdict"] == "failed" and tags["vllmbench.reason"].endswith("OOMKilled")
    assert setup.mlflow.aliases(model) == {}


def test_an_evaluation_of_something_else_is_acknowledged_and_changes_nothing(setup: Setup):
    model, fn = _followed(setup, versions=1)
    answer = _post(fn, "x-1", {"evaluation": "ev-x", "state": "done", "server": "default/some-other-server",
                               "verdict": {"verdict": "better"}})
    assert answer.status_code == 202 and "not of a model version this service wrote" in answer.json()["outcome"]["ignored"]
    assert not any(k.startswith("vllmbench.") for k in setup.mlflow.tags(model, 1))


def test_without_mlflow_configured_an_evaluation_of_something_else_is_still_acknowledged(setup: Setup):
    """`make run` without --mlflow: every evaluation's eval.completed reaches this service, and it
    must not be a 503 that the broker retries and dead-letters."""
    unset = setup.function(mlflow_tracking_uri="")
    answer = _post(unset, "u-1", {"evaluation": "ev-u", "state": "done", "server": "default/opt-125m",
                                  "verdict": {"verdict": "no_baseline"}})
    assert answer.status_code == 202, answer.text
    assert "not of a model version this service wrote" in answer.json()["outcome"]["ignored"]


def test_mlflow_down_during_the_write_back_is_503_so_the_broker_delivers_again(setup: Setup):
    model, fn = _followed(setup, versions=1)
    down = setup.function(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    answer = _post(down, "d-1", _verdict(model, 1, "same"))
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "vllmbench.verdict" not in setup.mlflow.tags(model, 1)
    again = _post(fn, "d-1", _verdict(model, 1, "same"))  # the redelivery, MLflow back
    assert again.status_code == 202 and setup.mlflow.tags(model, 1)["vllmbench.verdict"] == "same"


def test_a_malformed_event_is_400_or_422_naming_the_field(setup: Setup):
    _, fn = _followed(setup, versions=1)
    answer = _post(fn, "bad-1", {"state": "done"})
    assert answer.status_code == 422 and "evaluation" in answer.text
