"""The standardized record round-trips through the llm-d Benchmark Report v0.2."""

from __future__ import annotations

import copy

import pytest

from tests.fixtures.records import record
from vllmbench.errors import ValidationFailed
from vllmbench.models.results import StandardizedRecord
from vllmbench.standardize.llmd import from_llmd, to_llmd


def test_round_trip_is_exact():
    original = StandardizedRecord.model_validate(record("rt", stage=2))
    assert from_llmd(to_llmd(original)) == original


def test_export_has_the_v02_shape_and_units():
    report = to_llmd(StandardizedRecord.model_validate(record("shape")))
    assert report["version"] == "0.2"
    assert report["run"]["uid"] == "shape"
    engine = report["scenario"]["stack"][0]
    assert engine["metadata"]["kind"] == "inference_engine"
    assert engine["standardized"]["accelerator"] == {"model": "NVIDIA-H100-80GB-HBM3", "count": 1,
                                                     "parallelism": {"tp": 1, "pp": 1, "dp": 1, "ep": 1}}
    aggregate = report["results"]["request_performance"]["aggregate"]
    assert aggregate["requests"] == {**aggregate["requests"], "total": 600, "failures": 2, "incomplete": 0}
    ttft = aggregate["latency"]["time_to_first_token"]
    assert ttft["units"] == "ms" and {"p99p9", "p50", "mean"} <= set(ttft)
    assert aggregate["latency"]["time_per_output_token"]["units"] == "ms/token"
    assert aggregate["throughput"]["requests_rate"]["units"] == "queries/s"
    assert report["scenario"]["load"]["standardized"]["rate_qps"] == 10.0


def test_a_foreign_report_imports_with_seconds_converted_to_ms():
    report = to_llmd(StandardizedRecord.model_validate(record("foreign")))
    del report["scenario"]["load"]["native"]
    latency = report["results"]["request_performance"]["aggregate"]["latency"]
    latency["time_to_first_token"] = {"units": "s", "mean": 0.036, "p50": 0.035, "p99": 0.05}
    latency["request_latency"] = {"units": "s", "mean": 0.7}
    imported = from_llmd(report)
    assert imported.results.latency.ttft.mean == pytest.approx(36.0)
    assert imported.results.latency.ttft.p99 == pytest.approx(50.0)
    assert imported.results.latency.e2e.mean == pytest.approx(700.0)
    assert imported.results.requests.total == 600
    assert imported.scenario.harness.name == "vllmbench"
    assert imported.scenario.load.rate_rps == 10.0


@pytest.mark.parametrize("mutate", [
    lambda r: r.update(version="0.1"),
    lambda r: r.pop("results"),
    lambda r: r["results"]["request_performance"]["aggregate"]["requests"].update(total=-1),
])
def test_malformed_reports_are_validation_errors(mutate):
    report = to_llmd(StandardizedRecord.model_validate(record("bad")))
    del report["scenario"]["load"]["native"]
    broken = copy.deepcopy(report)
    mutate(broken)
    with pytest.raises(ValidationFailed):
        from_llmd(broken)
