import datetime as dt

import numpy as np
import pytest

from vllmbench.harness.aggregate import StageFacts, is_good, measured, to_record
from vllmbench.harness.config import RunConfig, SloSpec
from vllmbench.harness.records import RequestRecord
from vllmbench.models.results import Slo

MS = 1_000_000
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def rec(i, sched_ms, sent_ms, ttft_ms, gaps_ms, *, out=None, error=None, cap_ms=0.0):
    tokens = []
    if ttft_ms is not None:
        t = (sent_ms + ttft_ms) * MS
        tokens.append(round(t))
        for g in gaps_ms:
            t += g * MS
            tokens.append(round(t))
    end = tokens[-1] + MS if tokens else round((sent_ms + 1) * MS)
    return RequestRecord(index=i, scheduled_ns=round(sched_ms * MS), sent_ns=round(sent_ms * MS), end_ns=end,
                         token_ns=tokens, input_tokens=10, output_tokens=out or len(tokens), tokens_from="server",
                         error=error, cap_wait_ns=round(cap_ms * MS))


def facts(**kw):
    base = dict(index=0, mode="rate", rate=10.0, concurrency=None, started_at=T0, ended_at=T0 + dt.timedelta(seconds=2),
                wall_s=2.0, cpu_s_by_process=(0.2,), model="m", planned_span_ns=900 * MS)
    base.update(kw)
    return StageFacts(**base)


def cfg(**kw):
    return RunConfig(url="http://x", rates=(10.0,), duration_s=1.0, run_id="r1", input_len="10", output_len="4", **kw)


def sample():
    return [rec(i, i * 100, i * 100 + 0.2, 20 + i, [5, 5 + i * 0.1, 4.9]) for i in range(10)]


def test_latency_statistics_match_numpy():
    records = sample()
    out = to_record(records, cfg(), facts()).results
    ttft = np.array([20 + i + 0.0 for i in range(10)])
    gaps = np.array([g for i in range(10) for g in (5, 5 + i * 0.1, 4.9)])
    assert out.latency.ttft.p50 == pytest.approx(np.percentile(ttft, 50), abs=1e-3)
    assert out.latency.ttft.p99 == pytest.approx(np.percentile(ttft, 99), abs=1e-3)
    assert out.latency.itl.p90 == pytest.approx(np.percentile(gaps, 90), abs=1e-3)
    assert out.latency.itl.count == 30
    e2e = ttft + np.array([5 + 5 + i * 0.1 + 4.9 + 1 for i in range(10)])
    tpot = (e2e - ttft) / 3
    assert out.latency.tpot.mean == pytest.approx(tpot.mean(), abs=1e-3)
    assert out.latency.ntpot.p50 == pytest.approx(np.percentile(e2e / 4, 50), abs=1e-3)
    assert out.latency.e2e_from_schedule.min == pytest.approx(e2e.min() + 0.2, abs=1e-3)
    assert out.requests.total == 10 and out.requests.failed == 0
    assert out.token_counts_from == "server"


def test_failures_are_counted_by_class_and_kept_out_of_latency():
    records = sample()
    records[3] = rec(3, 300, 300.2, None, [], error="http_500")
    records[4] = rec(4, 400, 400.2, 1000, [], error="malformed_sse")
    out = to_record(records, cfg(), facts()).results
    assert out.requests.failures_by_cause == {"http_500": 1, "malformed_sse": 1}
    assert out.requests.succeeded == 8
    assert out.latency.ttft.max < 100  # the malformed request's 1000 ms never reaches the statistics


@pytest.mark.parametrize("slo,good", [
    (SloSpec(ttft_ms=25), 6),          # ttft 20..25 inclusive
    (SloSpec(ttft_ms=100, itl_ms=5.5), 6),   # max gap 5 + i*0.1 <= 5.5 for i <= 5
    (SloSpec(e2e_ms=40), 4),          # e2e = 35.9 + 1.1 i
    (SloSpec(ttft_ms=25, e2e_ms=40), 4),
])
def test_goodput_counts_requests_meeting_every_slo(slo, good):
    out = to_record(sample(), cfg(slo=slo), facts()).results
    assert out.goodput.good_requests == good
    assert out.goodput.fraction == pytest.approx(good / 10)


def test_itl_slo_applies_to_every_gap():
    r = rec(0, 0, 0, 10, [1, 9, 1])
    assert not is_good(r, Slo(itl_ms=5)) and is_good(r, Slo(itl_ms=9))


def test_warmup_and_cooldown_are_cut_by_scheduled_time():
    records = sample()
    kept = measured(records, cfg(warmup_s=0.25, cooldown_s=0.25), facts())
    assert [r.index for r in kept] == [3, 4, 5, 6]


def test_a_backlog_makes_the_run_untrustworthy_and_shows_in_latency_from_schedule():
    late = [rec(i, i * 100, i * 100 + 50, 20, [5]) for i in range(10)]
    out = to_record(late, cfg(), facts()).results
    assert not out.trust.trustworthy
    assert any("schedule delay" in reason for reason in out.trust.reasons)
    assert out.latency.e2e_from_schedule.p50 - out.latency.e2e.p50 == pytest.approx(50, abs=0.01)
    assert out.trust.schedule_delay_ms.p50 == pytest.approx(50, abs=0.01)


def test_cap_wait_is_reported_apart_from_schedule_delay():
    capped = [rec(i, i * 100, i * 100 + 30, 20, [5], cap_ms=30) for i in range(10)]
    out = to_record(capped, cfg(max_in_flight=1), facts()).results
    assert out.trust.schedule_delay_ms.p99 == pytest.approx(0, abs=0.01)
    assert out.trust.cap_wait_ms.p50 == pytest.approx(30)
    assert any("in-flight cap" in reason for reason in out.trust.reasons)


def test_a_busy_client_process_is_named():
    out = to_record(sample(), cfg(), facts(cpu_s_by_process=(1.9,))).results
    assert any("CPU" in reason for reason in out.trust.reasons)
    assert out.trust.client_cpu_percent == pytest.approx(95)


def test_record_describes_the_load():
    record = to_record(sample(), cfg(unique_prompts=False), facts())
    load = record.scenario.load
    assert (load.mode, load.rate_rps, load.arrival, load.unique_prompts) == ("rate", 10.0, "constant", False)
    assert record.scenario.harness.name == "vllmbench"
    assert record.key() == "r1#0"


def test_request_record_round_trips_through_json():
    r = sample()[4]
    back = RequestRecord.from_dict(r.to_dict())
    assert back.token_ns == pytest.approx(r.token_ns, abs=1000)
    assert back.end_ns == pytest.approx(r.end_ns, abs=1000)
