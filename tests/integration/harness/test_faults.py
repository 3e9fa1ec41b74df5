"""Faults are counted by class; they never crash a run or poison its statistics."""

import pytest

from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig
from vllmbench.simulator import SimConfig, SimulatorProcess


def test_errors_disconnects_and_malformed_events_are_counted_by_class():
    faulty = SimConfig(port=0, ttft_ms=10, itl_ms=2, error_rate=0.2, disconnect_rate=0.15, malformed_rate=0.15, seed=4)
    with SimulatorProcess(faulty) as sim:
        report = run_benchmark(RunConfig(url=sim.url, rates=(50.0,), request_count=100, duration_s=None,
                                         input_len="8", output_len="10", run_id="faults"))
        truth = sim.truth()
    res = report.records[0].results
    causes = res.requests.failures_by_cause
    outcomes = [t["outcome"] for t in truth]
    assert causes.get("http_500") == outcomes.count("injected_500")
    assert causes.get("disconnected") == outcomes.count("injected_disconnect")
    assert causes.get("malformed_sse") and causes["malformed_sse"] >= 1
    assert res.requests.succeeded + res.requests.failed == 100
    assert res.latency.ttft.count == res.requests.succeeded
    # No failed request leaks into the latency statistics: they are exactly the succeeded requests' figures.
    succeeded = [r for r in report.stages[0].records if r.ok]
    ttfts = sorted((r.first_ns - r.sent_ns) / 1e6 for r in succeeded)
    assert res.latency.ttft.max == pytest.approx(ttfts[-1], rel=1e-6)
    assert res.latency.ttft.min == pytest.approx(ttfts[0], rel=1e-6)
    assert res.output_tokens.min == 10


def test_timeouts_are_a_class_and_the_run_still_reports():
    with SimulatorProcess(SimConfig(port=0, ttft_ms=3000, itl_ms=1)) as sim:
        report = run_benchmark(RunConfig(url=sim.url, rates=(10.0,), request_count=3, duration_s=None, timeout_s=0.3,
                                         input_len="4", output_len="2", run_id="slow"))
    res = report.records[0].results
    assert res.requests.failures_by_cause == {"timeout": 3}
    assert res.latency.ttft is None
