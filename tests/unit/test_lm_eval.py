"""lm-evaluation-harness's results JSON into an accuracy record, and the record's accuracy section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.fixtures.records import record
from vllmbench.errors import ValidationFailed
from vllmbench.models.results import Harness, RawInput, StandardizedRecord
from vllmbench.standardize import to_standardized
from vllmbench.standardize.llmd import to_llmd

# Written by lm-eval 0.4.13 against `vllmbench simulate` (tests/integration/test_lm_eval_live.py):
# the simulator answers " hi" to every prompt, so exact_match is the share of "hi" answers.
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lm_eval_results.json"


def _convert(data=None, **kw):
    raw = RawInput(run_id="acc-1", project="demo", harness=Harness(name="lm-eval"), tags=["nightly"],
                   data=data if data is not None else json.loads(FIXTURE.read_text()), **kw)
    return to_standardized(raw)


def test_every_task_metric_with_its_stderr_and_samples():
    [rec] = _convert()
    acc = rec.results.accuracy
    assert set(acc) == {"vb_hi", "vb_bye"}
    hi = acc["vb_hi"]["exact_match,first-word"]  # lm-eval's "<metric>,<filter>"
    assert (hi.value, hi.samples, hi.higher_is_better) == (0.6, 5, True)
    assert hi.stderr == pytest.approx(0.5477226 / 5 ** 0.5)   # sample sd of 3 ones and 2 zeros / sqrt(n)
    bye = acc["vb_bye"]["exact_match"]                          # the "none" filter is dropped
    assert (bye.value, bye.stderr, bye.samples) == (0.25, 0.25, 4)


def test_the_record_says_what_ran_and_what_was_not_measured():
    [rec] = _convert()
    assert (rec.run.run_id, rec.run.stage, rec.run.project, rec.tags) == ("acc-1", 0, "demo", ["nightly"])
    assert rec.scenario.harness == Harness(name="lm-eval", version="0.4.13")
    assert rec.scenario.model == "sim-model"
    load = rec.scenario.load
    assert (load.mode, load.concurrency, load.streaming, load.dataset) == ("concurrency", 2, False, "lm-eval:vb_bye,vb_hi")
    assert rec.results.requests.model_dump() == {"total": 9, "succeeded": 9, "failed": 0, "failures_by_cause": {}}
    assert rec.results.throughput is None and rec.results.latency.ttft is None
    assert rec.run.duration_s and rec.run.ended_at > rec.run.started_at
    assert rec.labels["n_shot"] == "vb_bye=0,vb_hi=0" and rec.labels["task_versions"] == "vb_bye=2.0,vb_hi=1.0"


def test_an_accuracy_record_reads_back_as_it_was_stored_and_exports_to_llmd():
    [rec] = _convert()
    text = json.dumps(rec.model_dump(mode="json"), sort_keys=True)
    assert StandardizedRecord.model_validate_json(text) == rec
    aggregate = to_llmd(rec)["results"]["request_performance"]["aggregate"]
    assert "throughput" not in aggregate and aggregate["requests"]["total"] == 9


def test_older_string_model_args_groups_and_not_applicable_stderr():
    data = {"results": {"mmlu": {"alias": "mmlu", "acc,none": 0.41, "acc_stderr,none": "N/A"},
                        "mmlu_math": {"alias": " - math", "acc,none": 0.3, "acc_stderr,none": 0.02,
                                      "acc_norm,none": 0.35, "acc_norm_stderr,none": 0.021, "sample_len": 100}},
            "n-samples": {"mmlu_math": {"original": 100, "effective": 100}},
            "higher_is_better": {"mmlu_math": {"acc": True, "acc_norm": True}},
            "config": {"model": "local-chat-completions", "model_args": "model=m1,base_url=http://x/v1,num_concurrent=4",
                       "limit": 100.0},
            "lm_eval_version": "0.4.9"}
    [rec] = _convert(data)
    assert rec.results.accuracy["mmlu"]["acc"].stderr is None
    assert rec.results.accuracy["mmlu_math"]["acc_norm"].value == 0.35
    assert rec.scenario.load.concurrency == 4 and rec.scenario.load.endpoint == "chat"
    assert rec.scenario.model == "m1" and rec.scenario.harness.version == "0.4.9"
    assert rec.results.requests.total == 100
    assert "not a full evaluation" in rec.labels["limit"]


@pytest.mark.parametrize("data,message", [
    ({"something": 1}, "'results' object"),
    ({"results": {"t": 3}}, "not an object"),
    ({"results": {"t": {"alias": "t", "acc,none": "x"}}}, "no numeric metric"),
])
def test_not_lm_eval_output_is_refused_with_what_was_expected(data, message):
    with pytest.raises(ValidationFailed, match=message):
        _convert(data)


def _with_results(**results):
    body = record("r1")
    body["results"] = {**body["results"], **results}
    return body


def test_a_latency_record_still_needs_throughput():
    body = _with_results()
    del body["results"]["throughput"]
    with pytest.raises(ValidationError, match="throughput is required"):
        StandardizedRecord.model_validate(body)


@pytest.mark.parametrize("accuracy,message", [
    ({"t": {"acc": {"value": 0.5, "stderr": -0.1}}}, "greater than or equal"),
    ({"t": {"acc": {"value": float("nan")}}}, "finite"),
    ({"t": {"acc": {"value": 0.5, "n": 3}}}, "Extra inputs"),
    ({"t": {}}, "has no metrics"),
    ({"": {"acc": {"value": 0.5}}}, "1 to 200"),
])
def test_the_accuracy_section_is_strict(accuracy, message):
    with pytest.raises(ValidationError, match=message):
        StandardizedRecord.model_validate(_with_results(accuracy=accuracy))


def test_a_latency_record_may_carry_accuracy_too():
    rec = StandardizedRecord.model_validate(_with_results(accuracy={"gsm8k": {"exact_match,strict-match": {
        "value": 0.71, "stderr": 0.012, "samples": 1319, "higher_is_better": True}}}))
    assert rec.results.throughput is not None and rec.results.accuracy["gsm8k"]["exact_match,strict-match"].samples == 1319


def test_the_html_report_of_an_accuracy_run_shows_its_accuracy():
    from vllmbench.report import compare_report, run_data, run_report

    [rec] = _convert()
    html = run_report(run_data("acc-1", [rec]), generated_at="now")
    assert '<section id="accuracy">' in html
    assert "<td>vb_hi</td><td>exact_match,first-word</td><td>0.6 ± 0.245</td><td>5</td>" in html
    both = compare_report([run_data("acc-1", [rec]), run_data("acc-1", [rec])], labels=["a", "b"], generated_at="now")
    assert both.count("<td>vb_bye</td><td>exact_match</td><td>0.25 ± 0.25</td>") == 2
    latency = StandardizedRecord.model_validate(record("lat-1"))
    assert '<section id="accuracy">' not in run_report(run_data("lat-1", [latency]), generated_at="now")
