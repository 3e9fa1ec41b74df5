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


def _verdict(model: str, version: int, verdict: str | None, **extra: Any) -> dict[str, Any]:
    return {"evaluation_id": f"ev-{version}-{verdict}", "state": "done", "verdict": verdict,
            "server": f"default/{model}-v{version}", "benchmark": "chat-short", "project": "demo",
            "url": f"http://127.0.0.1:8004/evaluations/ev-{version}",
            "metrics": {"ttft_p50_ms": {"value": 21.4, "baseline": 20.9, "change_pct": 2.39, "verdict": "same"},
                        "output_tokens_per_s": {"value": 1523.0}},
            "labels": {"vllmbench.dev/mlflow-model": model, "vllmbench.dev/mlflow-version": str(version)}, **extra}


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
    assert tags["vllmbench.ttft_p50_ms.change_pct"] == "2.39"
    assert tags["vllmbench.output_tokens_per_s"] == "1523"
    assert tags["vllmbench.evaluation_url"] == "http://127.0.0.1:8004/evaluations/ev-2"
    assert tags["vllmbench.evaluation"] == "ev-2-same"
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
    _post(fn, "n-1", {**_verdict(model, 1, None), "trustworthy": False,
                      "reason": "the client could not hold the rate: no verdict"})
    tags = setup.mlflow.tags(model, 1)
    assert tags["vllmbench.verdict"] == "no_verdict" and tags["vllmbench.trustworthy"] == "false"
    _post(fn, "n-2", {"evaluation_id": "ev-f", "state": "failed", "server": f"default/{model}-v1",
                      "reason": "pod OOMKilled: exit 137"})  # found by its server, without labels
    tags = setup.mlflow.tags(model, 1)
    assert tags["vllmbench.verdict"] == "failed" and tags["vllmbench.reason"] == "pod OOMKilled: exit 137"
    assert setup.mlflow.aliases(model) == {}


def test_an_evaluation_of_something_else_is_acknowledged_and_changes_nothing(setup: Setup):
    model, fn = _followed(setup, versions=1)
    answer = _post(fn, "x-1", {"evaluation_id": "ev-x", "state": "done", "verdict": "better",
                               "server": "default/some-other-server"})
    assert answer.status_code == 202 and "not of a model version this service wrote" in answer.json()["outcome"]["ignored"]
    assert not any(k.startswith("vllmbench.") for k in setup.mlflow.tags(model, 1))


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
    assert answer.status_code == 422 and "evaluation_id" in answer.text
