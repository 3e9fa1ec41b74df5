import json
from pathlib import Path

import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import Harness, RawInput
from vllmbench.standardize import to_standardized

DATA = Path(__file__).resolve().parents[2] / "data"


def raw(harness, data, **kw):
    return RawInput(run_id="run-1", harness=Harness(name=harness), data=data, **kw)


def load(name):
    return json.loads((DATA / name).read_text())


def test_guidellm_report_gives_one_record_per_benchmark():
    records = to_standardized(raw("guidellm", load("guidellm_benchmarks.json"), project="p1"))
    assert [r.run.stage for r in records] == [0, 1, 2]
    first = records[0]
    assert first.scenario.model == "sim-model"
    assert first.scenario.harness.version == "0.8.1"
    assert (first.scenario.load.mode, first.scenario.load.arrival, first.scenario.load.rate_rps) == ("rate", "constant", 10.0)
    assert records[1].scenario.load.arrival == "poisson"
    assert (records[2].scenario.load.mode, records[2].scenario.load.concurrency) == ("concurrency", 4)
    res = first.results
    assert res.latency.ttft.p50 == 20.5 and res.latency.ttft.p99 == 22.0
    assert res.latency.e2e.p50 == pytest.approx(660.0)          # seconds -> ms
    assert res.latency.tpot.mean == 5.02 and res.latency.itl is None  # per-request average, not every gap
    assert res.requests.failures_by_cause == {"errored": 2, "incomplete": 1}
    assert res.throughput.output_tokens_per_s == 1254.0
    assert first.run.duration_s == pytest.approx(10.0)


def test_vllm_bench_serve_summary_result():
    [record] = to_standardized(raw("vllm-bench-serve", load("vllm_bench_serve.json")))
    res = record.results
    assert (record.scenario.load.mode, record.scenario.load.arrival, record.scenario.load.rate_rps) == ("rate", "poisson", 20.0)
    assert res.requests.total == 200 and res.requests.failed == 2
    assert res.latency.ttft.p50 == 20.5 and res.latency.ttft.p99 == 22.4 and res.latency.ttft.mean == 20.7
    assert res.latency.e2e.p99 == 670.2
    assert "ttft" in record.labels["filled_percentiles"]
    assert res.goodput.requests_per_s == 18.0
    assert record.run.started_at.year == 2026


def test_vllm_bench_serve_detailed_result_computes_from_every_sample():
    [record] = to_standardized(raw("vllm-bench-serve", load("vllm_bench_serve_detailed.json")))
    lat = record.results.latency
    assert lat.ttft.count == 4 and lat.ttft.min == pytest.approx(20.1)
    assert lat.itl.count == 8 and lat.itl.max == pytest.approx(6.0)
    assert (record.scenario.load.mode, record.scenario.load.concurrency) == ("concurrency", 2)
    assert "ttft" not in record.labels.get("filled_percentiles", "")


@pytest.mark.parametrize("harness,data,message", [
    ("guidellm", {"results": []}, "benchmarks"),
    ("guidellm", {"benchmarks": ["x"]}, "not an object"),
    ("guidellm", {"benchmarks": [{"config": {"strategy": {"type_": "weird"}}, "metrics": {}}]}, "strategy type"),
    ("vllm-bench-serve", {"completed": 1}, "lacks"),
    ("vllm-bench-serve", {**{k: 1 for k in ("duration", "request_throughput", "output_throughput")}, "completed": "x"}, "number"),
    ("vllmbench", {"something": 1}, "records"),
    ("vllmbench", {"stages": [{"index": 0}], "format": "vllmbench-raw/1", "config": {}}, "malformed"),
])
def test_wrong_formats_fail_with_a_clear_message(harness, data, message):
    with pytest.raises(ValidationFailed, match=message):
        to_standardized(raw(harness, data))
