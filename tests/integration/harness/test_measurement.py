"""The load generator against the simulator over real HTTP: does it measure the truth?"""

import numpy as np
import pytest

from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig, SloSpec
from vllmbench.simulator import SimConfig, SimulatorProcess


def config(url, **kw):
    values = dict(url=url, rates=(20.0,), duration_s=2.0, input_len="32", output_len="16", run_id="t1")
    values.update(kw)
    return RunConfig(**values)


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_ttft_and_itl_match_the_simulator_and_its_record(sim, endpoint):
    report = run_benchmark(config(sim.url, endpoint=endpoint, run_id=f"m-{endpoint}"))
    [record] = report.records
    res = record.results
    assert res.requests.failed == 0 and res.requests.succeeded == 40
    assert res.latency.ttft.p50 == pytest.approx(20.0, abs=2.5)
    assert res.latency.itl.p50 == pytest.approx(5.0, abs=1.5)
    assert res.latency.tpot.p50 == pytest.approx(5.0, abs=0.5)
    assert res.token_counts_from == "server"
    # Whether this client can be trusted on a shared machine is test_starved_client.py's subject, under
    # controlled priorities; here the figures are checked against the truth directly.
    assert res.trust.loop_lateness_ms.count > 0 and res.trust.ttft_p50_inflation_ms is not None
    truth = {r["client_request_id"]: r for r in sim.truth() if r["client_request_id"]}
    errors = []
    t0 = report.stages[0].t0_ns
    for rec in report.stages[0].records:
        t = truth[rec.request_id]
        # One clock for both: the simulator stamps a request when it reads it, after the client wrote it,
        # and its first token after that by at least the TTFT it was told (timers may fire 1 ms early).
        assert t0 + rec.sent_ns <= t["arrival_ns"] <= t["first_token_ns"] - 19_000_000
        assert rec.output_tokens == t["output_tokens"] == 16
        assert rec.input_tokens == t["prompt_tokens"] == 32
        assert len(rec.token_ns) == 16
        client_ttft = (rec.token_ns[0] - rec.sent_ns) / 1e6
        errors.append(client_ttft - t["ttft_ms"])
    assert abs(float(np.median(errors))) < 2.0
    assert record.scenario.model == "sim-model"


def test_percentiles_and_goodput_match_numpy_on_the_same_samples(sim):
    report = run_benchmark(config(sim.url, slo=SloSpec(ttft_ms=21.0), run_id="np"))
    res = report.records[0].results
    recs = [r for r in report.stages[0].records if r.ok]
    ttft = np.array([(r.token_ns[0] - r.sent_ns) / 1e6 for r in recs])
    itl = np.array([(b - a) / 1e6 for r in recs for a, b in zip(r.token_ns, r.token_ns[1:])])
    e2e = np.array([(r.end_ns - r.sent_ns) / 1e6 for r in recs])
    for q, name in ((50, "p50"), (90, "p90"), (99, "p99")):
        assert getattr(res.latency.ttft, name) == pytest.approx(np.percentile(ttft, q), rel=1e-9)
        assert getattr(res.latency.itl, name) == pytest.approx(np.percentile(itl, q), rel=1e-9)
        assert getattr(res.latency.e2e, name) == pytest.approx(np.percentile(e2e, q), rel=1e-9)
    assert res.goodput.good_requests == int((ttft <= 21.0).sum())


def test_model_is_discovered_and_a_second_served_name_works(sim):
    report = run_benchmark(config(sim.url, model="sim-model-b", request_count=5, duration_s=None, run_id="b"))
    assert report.model == "sim-model-b" and report.records[0].results.requests.succeeded == 5


def test_non_streaming_and_concurrency_mode(sim):
    report = run_benchmark(config(sim.url, stream=False, mode="concurrency", rates=(), concurrencies=(4,),
                                  request_count=12, duration_s=None, run_id="c"))
    res = report.records[0].results
    assert res.requests.succeeded == 12
    assert res.latency.e2e.p50 == pytest.approx(20 + 15 * 5, abs=6)
    assert report.records[0].scenario.load.concurrency == 4


def test_two_worker_processes_share_one_schedule_and_the_live_progress_counts_both(sim):
    snapshots = []
    report = run_benchmark(config(sim.url, workers=2, rates=(40.0,), duration_s=1.5, run_id="w"),
                           progress=snapshots.append)
    recs = report.stages[0].records
    assert {r.worker for r in recs} == {0, 1}
    assert [r.index for r in recs] == list(range(60))
    res = report.records[0].results
    assert res.requests.succeeded == 60 and res.trust.achieved_rate_rps == pytest.approx(40, rel=0.1)
    assert len(report.stages[0].cpu_s_by_process) == 2
    # Each worker measured itself; the progress line ends at every worker's requests, not one worker's 30.
    assert sorted(c.worker for c in report.stages[0].clients) == [0, 1]
    assert res.trust.loop_lateness_ms.count > 0
    assert snapshots and snapshots[-1]["done"] == 60 and snapshots[-1]["in_flight"] == 0
    assert all(s["done"] <= 60 and s["elapsed_s"] >= 0 for s in snapshots)


def test_a_sweep_finds_the_saturation_of_a_server_with_a_known_limit():
    # 2 sequences at once, each 50 ms + 5 x 10 ms: the server completes at most 20 requests/s.
    cfg = SimConfig(port=0, ttft_ms=50, itl_ms=10, max_num_seqs=2)
    with SimulatorProcess(cfg) as limited:
        report = run_benchmark(RunConfig(url=limited.url, rates=(5.0,), search=True, duration_s=1.5, input_len="8",
                                         output_len="6", run_id="sat", search_max_stages=6))
    sustained = report.saturation["sustained_rate_rps"]
    assert 10.0 <= sustained <= 21.0, report.saturation
    assert report.saturation["max_throughput_rps"] <= 22.0
    assert len(report.records) == len(report.stages) <= 6
