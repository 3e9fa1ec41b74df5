"""The MLflow service's pure logic: names, rules, rendering, signatures, verdict tags."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from gitops import kinds
from vllmbench.errors import Unauthorized, ValidationFailed
from vllmbench.evals.verdict import judge
from vllmbench.mlflow import names, render, signature, verdicts
from vllmbench.mlflow.records import run_summary, version_record
from vllmbench.mlflow.rules import LoadedRule, like_prefix, load_rules, selects
from vllmbench.models.mlflow import EvalCompleted, MlflowRule, ModelVersionRecord


# -- Kubernetes names -------------------------------------------------------------------

@pytest.mark.parametrize("given", ["llama", "llama-3-8b", "a1"])
def test_a_name_that_is_a_kubernetes_name_is_kept(given):
    assert names.model_part(given) == given


@pytest.mark.parametrize("given, start", [
    ("My Model", "my-model-"), ("llama_3.1-8B", "llama-3-1-8b-"), ("Ünïcödé model", "unicode-model-"),
    ("-lead-", "lead-"), ("x" * 80, "x" * 41 + "-"),
])
def test_other_names_are_mapped_with_a_hash_deterministically(given, start):
    mapped = names.model_part(given)
    assert mapped.startswith(start) and names.LABEL.match(mapped) and len(mapped) <= names.MODEL_PART_MAX
    assert mapped == names.model_part(given)


def test_the_mapping_in_the_docs():
    assert names.version_server("My Model_v2.1", 3) == "my-model-v2-1-b2af40-v3"
    assert names.model_part("llama\n") != "llama\n"  # '$' would match before a newline: fullmatch


def test_names_that_map_alike_stay_apart():
    assert len({names.model_part(n) for n in ("my model", "my_model", "My-Model", "MY MODEL")}) == 4


@pytest.mark.parametrize("given", ["模型", "___", "..."])
def test_a_name_with_nothing_to_keep_is_refused_with_the_reason(given):
    with pytest.raises(names.NameRefused, match="no letter or digit"):
        names.model_part(given)


def test_server_names_fit_a_label_and_aliases_never_meet_versions():
    assert names.version_server("llama", 12) == "llama-v12"
    assert names.alias_server("llama", "champion") == "llama-champion"
    long = names.version_server("m" * 200, 123456)
    assert len(long) <= 63 and long.endswith("-v123456")
    assert names.alias_server("llama", "_v2") != "llama-v2"  # '_v2' is an alias MLflow allows
    assert names.LABEL.match(names.alias_server("m" * 60, "a-very-long-alias-name-indeed"))


# -- rules --------------------------------------------------------------------------------

def _rule(**fields) -> LoadedRule:
    return LoadedRule("mlflow/r.yaml", MlflowRule.model_validate({"models": ["m*"], **fields}))


def _record(**fields) -> ModelVersionRecord:
    return ModelVersionRecord.model_validate({"model": "m1", "version": 3, "source": "s3://b/m", **fields})


@pytest.mark.parametrize("versions, record, why", [
    ({}, {}, None),
    ({}, {"status": "FAILED_REGISTRATION"}, "FAILED_REGISTRATION"),
    ({"min_version": 4}, {}, "starts at version 4"),
    ({}, {"stage": "Archived"}, "archived"),
    ({"include_archived": True}, {"stage": "Archived"}, None),
    ({"stages": ["Production"]}, {"stage": "Staging"}, "stage is Staging"),
    ({"tags": {"deploy": "true"}}, {"tags": {"deploy": "yes"}}, "is 'yes', not 'true'"),
    ({"tags": {"deploy": "*"}}, {"tags": {"deploy": "yes"}}, None),
    ({"tags": {"deploy": "*"}}, {}, "no tag 'deploy'"),
    ({"aliases": ["prod"]}, {"aliases": ["dev"]}, "none of the aliases prod"),
    ({"aliases": ["prod"], "tags": {"a": "1"}}, {"aliases": ["prod"], "tags": {"a": "1"}}, None),
])
def test_which_versions_a_rule_takes(versions, record, why):
    found = selects(_rule(versions=versions), _record(**record))
    assert (found is None) if why is None else (why in found)


@pytest.mark.parametrize("rule, problem", [
    ({"models": []}, "at least 1"),
    ({"models": ["a/b"]}, "no '/' or ':'"),
    ({"models": ["m"], "server": {"name": "x"}}, "server.name is set by the rule"),
    ({"models": ["m"], "server": {"model_name": "{{ x"}}, "template line 1"),
    ({"models": ["m"], "follow_aliases": ["latest"]}, "not an MLflow alias"),
    ({"models": ["m"], "follow_aliases": ["v3"]}, "not an MLflow alias"),
    ({"models": ["m"], "benchmark": {"profile": "p", "baseline": "last"}}, "baseline"),
    ({"models": ["m"], "versions": {"aliases": ["c"]}, "benchmark": {"profile": "p", "promote_alias": "c"}},
     "also in versions.aliases"),
    ({"models": ["m"], "modles": []}, "modles"),
    ({"models": ["m"], "server": {"gpus": 1}}, "server.gpus is not a field of a ModelServer"),
])
def test_a_rule_file_is_checked_strictly_naming_the_field(rule, problem):
    found = kinds.problems("mlflow_rule", [rule], path="mlflow/r.yaml")
    assert found and problem in " ".join(f"{d['loc']} {d['msg']}" for d in found)


def test_rule_files_are_a_kind_of_their_own():
    assert kinds.classify("mlflow/llama.yaml") == "mlflow_rule"
    assert kinds.classify("projects/demo/mlflow/llama.yaml") == "mlflow_rule"
    assert kinds.classify("mlflow/llama.yaml", root="projects/demo") == "mlflow_rule"
    assert kinds.classify("helm-values/default/m-v1.yaml") == "yaml"
    with pytest.raises(ValidationFailed, match="exactly one document"):
        kinds.validate("mlflow_rule", [{"models": ["a"]}, {"models": ["b"]}], path="mlflow/two.yaml")


def test_the_first_rule_in_path_order_wins_and_bad_files_are_problems():
    found = load_rules({"mlflow/b.yaml": "models: ['llama-*']\n", "mlflow/a.yaml": "models: [llama-ft]\n",
                        "projects/demo/mlflow/c.yaml": "models: [other]\nbenchmark: {profile: p}\n",
                        "mlflow/bad.yaml": "models: [\n", "mlflow/notes.txt": "ignored"})
    assert [r.path for r in found.rules] == ["mlflow/a.yaml", "mlflow/b.yaml", "projects/demo/mlflow/c.yaml"]
    assert found.for_model("llama-ft").path == "mlflow/a.yaml"
    assert found.shadowed("llama-ft") == ["mlflow/b.yaml"]
    assert found.for_model("other").benchmark_project == "demo"
    assert found.for_model("nobody") is None
    assert "mlflow/bad.yaml" in found.problems[0]["msg"]
    assert found.exact_names() == ["llama-ft", "other"] and found.patterns() == ["llama-*"]
    assert like_prefix("llama-*") == "llama-%" and like_prefix("*x") == "%"


# -- rendering ---------------------------------------------------------------------------

def test_a_template_renders_values_into_the_mapping_never_into_yaml_text():
    loaded = _rule(server={"model_name": "{{ version.tags.hf }}", "max_model_len": "{{ run.params.len }}",
                           "trust_remote_code": "{{ version.tags.trust }}", "served_model_name": "{{ model.name }}-x",
                           "additional_args": ["--seed", "{{ version.number }}", "--x={{ version.number }}"]})
    record = _record(tags={"hf": "org/m\nmalicious: true", "trust": "false"},
                     run={"run_id": "r1", "params": {"len": "4096"}})
    path, content, document = render.server_file(loaded, record)
    assert path == "models/default/m1-v3.yaml"
    assert document == {"name": "m1-v3", "namespace": "default", "model_name": "org/m\nmalicious: true",
                        "max_model_len": 4096, "trust_remote_code": False, "served_model_name": "m1-x",
                        "additional_args": ["--seed", "3", "--x=3"]}  # as the ModelServer schema reads them
    parsed = yaml.safe_load(content)
    assert parsed == document and "malicious" not in parsed
    header = [line for line in content.decode().splitlines() if line.startswith("#")]
    assert any("tags: hf=org/m malicious: true, trust=false" in line for line in header)


def test_what_is_written_is_what_the_modelserver_schema_read():
    loaded = _rule(server={"model_name": "org/m", "additional_args": "--seed {{ version.number }}",
                           "gpu_memory_utilization": "{{ version.tags.util }}"})
    document = render.server_file(loaded, _record(tags={"util": "0.5"}))[2]
    assert document["additional_args"] == ["--seed", "3"] and document["gpu_memory_utilization"] == 0.5
    with pytest.raises(ValidationFailed, match=r"models/default/m1-v3.yaml.*gpu_memory_utilization"):
        render.server_file(loaded, _record(tags={"util": "1.5"}))


def test_a_missing_name_in_a_template_names_the_field():
    with pytest.raises(ValidationFailed, match=r"server\.model_name does not render.*'nope'"):
        render.render_server(_rule(server={"model_name": "{{ version.tags.nope }}"}), _record(), server_name="x")


def test_the_sandbox_refuses_reaching_python_internals():
    with pytest.raises(ValidationFailed, match="unsafe|access"):
        render.render_server(_rule(server={"model_name": "{{ model.__class__.__mro__ }}"}), _record(), server_name="x")


def test_our_own_tags_and_aliases_are_not_in_a_version_file():
    loaded = _rule()
    plain = render.server_file(loaded, _record(tags={"a": "1"}))[1]
    judged = render.server_file(loaded, _record(tags={"a": "1", "vllmbench.verdict": "worse"}, aliases=["prod"]))[1]
    assert plain == judged


def test_records_from_mlflow_json():
    record = version_record({"name": "m", "version": "7", "source": "runs:/r/model", "run_id": "r",
                             "current_stage": "Production", "creation_timestamp": 1796151580046,
                             "tags": [{"key": "a", "value": "1"}], "aliases": ["b", "a"]},
                            {"info": {"run_id": "r", "experiment_id": "3"},
                             "data": {"params": [{"key": "lr", "value": "0.1"}],
                                      "metrics": [{"key": "loss", "value": 0.5}, {"key": "nan", "value": "NaN"}]}})
    assert record.version == 7 and record.stage == "Production" and record.aliases == ["a", "b"]
    assert record.created_at == dt.datetime(2026, 12, 1, 18, 59, 40, 46000, tzinfo=dt.timezone.utc)
    assert record.run.params == {"lr": "0.1"} and record.run.metrics == {"loss": 0.5}
    assert run_summary(None) is None


# -- webhook signatures ----------------------------------------------------------------------

def test_a_signed_fresh_delivery_is_taken_and_anything_else_is_401():
    body = b'{"entity": "model_version"}'
    good = signature.sign("s3cret", "d1", "1000", body)
    signature.verify("s3cret", signature=good, timestamp="1000", delivery_id="d1", body=body, now=1100)
    signature.verify("s3cret", signature=f"v1,AAAA {good}", timestamp="1000", delivery_id="d1", body=body, now=1100)
    bad = [
        dict(signature=good, timestamp="1000", delivery_id="d2", body=body, now=1100),  # another delivery's
        dict(signature=good, timestamp="1000", delivery_id="d1", body=body + b" ", now=1100),
        dict(signature=good, timestamp="1000", delivery_id="d1", body=body, now=1400),  # too old
        dict(signature=good, timestamp="1000", delivery_id="d1", body=body, now=600),  # from the future
        dict(signature=None, timestamp="1000", delivery_id="d1", body=body, now=1100),
        dict(signature=good, timestamp="soon", delivery_id="d1", body=body, now=1100),
    ]
    for case in bad:
        with pytest.raises(Unauthorized):
            signature.verify("s3cret", **case)
    with pytest.raises(Unauthorized, match="not set"):
        signature.verify(None, signature=good, timestamp="1000", delivery_id="d1", body=body, now=1100)


def test_the_signature_is_mlflows_own():
    # computed with MLflow 3.17.2 itself: mlflow.webhooks.delivery._generate_hmac_signature("k", "id", "1", "{}")
    assert signature.sign("k", "id", "1", b"{}") == "v1,g7RitEqJvu8yMbDC6clEYxfin7F9RZIMzpsXDw051Xc="


# -- verdicts -----------------------------------------------------------------------------

def test_verdict_tags_and_when_the_alias_moves():
    judged = judge([{"metrics": {"s0:ttft_p50": 12.345678, "s0:e2e_p90": 99.0, "s0:accuracy:gsm8k:exact_match": 0.5},
                     "trustworthy": True}],
                   [{"metrics": {"s0:ttft_p50": 14.0, "s0:accuracy:gsm8k:exact_match": 0.5}, "trustworthy": True}],
                   baseline_id="base")
    event = EvalCompleted.model_validate({"evaluation": "e1", "run_ids": ["e1-r0", "e1-r1"], "verdict": judged,
                                          "future_field": {"kept": True}})
    tags = verdicts.verdict_tags(event, eval_url="http://eval:8004/", results_url="http://results")
    assert tags == {"vllmbench.verdict": "better", "vllmbench.evaluation": "e1", "vllmbench.baseline": "base",
                    "vllmbench.summary": judged["summary"],
                    "vllmbench.evaluation_url": "http://eval:8004/evaluations/e1",
                    "vllmbench.results_url": "http://results/runs/e1-r0", "vllmbench.run_ids": "e1-r0,e1-r1",
                    "vllmbench.ttft_p50_ms": "12.3457", "vllmbench.ttft_p50_ms.change_pct": "-11.817",
                    "vllmbench.ttft_p50_ms.verdict": "better",
                    "vllmbench.accuracy.gsm8k.exact_match": "0.5", "vllmbench.accuracy.gsm8k.exact_match.change_pct": "0",
                    "vllmbench.accuracy.gsm8k.exact_match.verdict": "same"}
    assert verdicts.promotion(event, alias="prod", version=4, holder=3) is None
    assert verdicts.promotion(event, alias="prod", version=4, holder=None) is None
    assert "newer version 5" in verdicts.promotion(event, alias="prod", version=4, holder=5)
    assert "already" in verdicts.promotion(event, alias="prod", version=4, holder=4)
    worse = event.model_copy(update={"verdict": event.verdict.model_copy(update={"verdict": "worse"})})
    assert "worse" in verdicts.promotion(worse, alias="prod", version=4, holder=3)
    timed_out = EvalCompleted.model_validate({"evaluation_id": "e2", "state": "timed_out"})
    assert verdicts.verdict_word(timed_out) == "timed_out" and timed_out.evaluation == "e2"
    assert "timed_out" in verdicts.promotion(timed_out, alias="prod", version=4, holder=3)


@pytest.mark.parametrize("key, tag", [
    ("s0:ttft_p50", "ttft_p50_ms"), ("s3:itl_p99", "s3.itl_p99_ms"), ("s0:output_tokens_per_s", "output_tokens_per_s"),
    ("s1:goodput_rps", "s1.goodput_rps"), ("s0:ttft_p90", None), ("s0:accuracy:mmlu:acc", "accuracy.mmlu.acc"),
])
def test_which_figures_become_tags_and_their_names(key, tag):
    assert verdicts.figure_tag(key) == tag
