"""A registered model version as an evaluation request (vllmbench/evals/registered.py)."""

from __future__ import annotations

import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.evals.registered import evaluation_id, request
from vllmbench.models.evaluations import EvaluateRequest

DATA = {"model": "llama-ft", "version": 3, "server": "default/llama-ft-v3",
        "benchmark": {"project": "demo", "profile": "chat-short", "baseline": "previous",
                      "baseline_server": "default/llama-ft-v2", "template": None,
                      "labels": {"vllmbench.dev/mlflow-model": "llama-ft", "vllmbench.dev/mlflow-version": "3"}}}


def test_the_rule_becomes_the_request_a_person_would_send():
    body = request(DATA)
    assert body == {"project": "demo", "benchmark": "chat-short", "server": "default/llama-ft-v3",
                    "baseline": "server:default/llama-ft-v2", "name": "mlflow-llama-ft-v3-chat-short",
                    "labels": {"vllmbench.dev/mlflow-model": "llama-ft", "vllmbench.dev/mlflow-version": "3"}}
    assert EvaluateRequest.model_validate(body).baseline == "server:default/llama-ft-v2"


@pytest.mark.parametrize("benchmark, baseline", [
    ({"baseline_server": None}, "none"),  # the model's first version
    ({"baseline": "none", "baseline_server": "default/x-v1"}, "none"),
    ({"template": "builtin:guidellm"}, "server:default/llama-ft-v2"),
])
def test_baselines_and_templates(benchmark, baseline):
    body = request({**DATA, "benchmark": {**DATA["benchmark"], **benchmark}})
    assert body["baseline"] == baseline
    assert body.get("template") == benchmark.get("template")
    EvaluateRequest.model_validate(body)


def test_no_benchmark_asks_for_nothing_and_a_broken_event_names_its_field():
    assert request({**DATA, "benchmark": None}) is None
    with pytest.raises(ValidationFailed) as refused:
        request({**DATA, "server": "no-namespace"})
    assert refused.value.details[0]["loc"] == "data.server"
    with pytest.raises(ValidationFailed):
        request({**DATA, "benchmark": {"project": "demo"}})
    with pytest.raises(ValidationFailed):
        request(["not", "an", "object"])


def test_ids_are_dns_labels_and_long_names_stay_apart():
    long_a, long_b = "default/" + "a" * 50 + "-v1", "default/" + "a" * 50 + "-v2"
    a, b = evaluation_id(long_a, "chat-short"), evaluation_id(long_b, "chat-short")
    assert a != b and len(a) <= 63 and len(b) <= 63
    assert evaluation_id(long_a, "chat-short") == a  # deterministic: a redelivery finds the evaluation
    for ev in (a, b, evaluation_id("default/m-v1", "Chat_Short")):
        EvaluateRequest.model_validate({**request(DATA), "name": ev})
