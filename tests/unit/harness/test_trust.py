"""The client's trust figures from its own measurements: the lateness histogram, the estimate of
how much lateness raised the TTFT p50, and the reasons a user reads."""

import random

import pytest

from vllmbench.harness.config import RunConfig
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.trust import ClientFacts, assess, bin_ms, bin_of, late_share, lateness_stats, p50_inflation

MS = 1_000_000


def hist(lateness_ms: list[float]) -> dict[int, int]:
    out: dict[int, int] = {}
    for ms in lateness_ms:
        b = bin_of(round(ms * MS))
        out[b] = out.get(b, 0) + 1
    return out


@pytest.mark.parametrize("ns", [10_000, 12_345, 999_999, 1_000_000, 7_654_321, 180 * MS, 30_000 * MS])
def test_a_bin_holds_its_value_to_6_percent(ns):
    assert bin_ms(bin_of(ns)) == pytest.approx(ns / 1e6, rel=0.06)


def test_lateness_under_10_us_is_one_bin_of_5_us():
    assert bin_of(0) == bin_of(9_999) == 0 and bin_ms(0) == 0.005


def test_no_lateness_raises_nothing():
    ttfts = [20 + random.Random(1).gauss(0, 1) for _ in range(500)]
    assert p50_inflation([(ttfts, {0: 1000})]) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("spread_ms", [0.0, 0.5, 50.0])
def test_the_estimate_recovers_what_lateness_added_to_the_median(spread_ms):
    """Measured = truth + one draw of the lateness; the estimate is the p50 shift that caused."""
    rng = random.Random(7)
    lateness = [rng.choice([0.02] * 3 + [3.0, 8.0, 20.0, 60.0]) for _ in range(5000)]
    truth = [100 + rng.uniform(-spread_ms, spread_ms) for _ in range(4000)]
    measured = [t + rng.choice(lateness) for t in truth]
    shift = sorted(measured)[2000] - sorted(truth)[2000]
    assert shift > 0.5  # the case the estimate exists for
    assert p50_inflation([(measured, hist(lateness))]) == pytest.approx(shift, rel=0.15, abs=0.1)


def test_each_process_s_values_are_corrected_by_its_own_lateness():
    rng = random.Random(3)
    starved = [20 + 6 + rng.uniform(0, 0.5) for _ in range(400)]  # worker 0 read 6 ms late, worker 1 on time
    healthy = [20 + rng.uniform(0, 0.5) for _ in range(200)]
    pooled = p50_inflation([(starved, hist([6.0] * 100)), (healthy, hist([0.01] * 100))])
    assert pooled == pytest.approx(6.0, abs=0.5)
    assert p50_inflation([(healthy, hist([0.01] * 100))]) < 0.05


def test_nothing_to_estimate_without_values_or_samples():
    assert p50_inflation([]) is None
    assert p50_inflation([([20.0], {})]) is None


def test_lateness_statistics_are_ordered_and_the_max_is_exact():
    stats = lateness_stats(hist([0.02] * 90 + [2.0] * 9 + [150.0]), 151_234_567)
    assert stats.count == 100 and stats.max == pytest.approx(151.234567)
    assert stats.p50 == pytest.approx(0.02, rel=0.06) and stats.p99 == pytest.approx(2.0, rel=0.06)
    assert stats.min <= stats.p50 <= stats.p90 <= stats.p99 <= stats.p999 <= stats.max
    assert late_share(hist([0.02] * 90 + [2.0] * 9 + [150.0])) == pytest.approx(0.10)


# --- the verdict -----------------------------------------------------------------------------
def cfg(**kw):
    return RunConfig(url="http://x", rates=(10.0,), **kw)


def records(ttft_ms: float, n: int = 200, *, worker: int = 0, gap_ms: float = 5.0) -> list[RequestRecord]:
    out = []
    for i in range(n):
        sent = i * 100 * MS
        first = sent + round(ttft_ms * MS)
        out.append(RequestRecord(index=i, scheduled_ns=sent, sent_ns=sent, end_ns=first + 20 * MS, worker=worker,
                                 token_ns=[first + round(k * gap_ms * MS) for k in range(4)], output_tokens=4))
    return out


def facts(lateness_ms: list[float], *, worker: int = 0, wait: float = 0.0, tokens: int = 800, together: int = 0):
    h = hist(lateness_ms)
    return ClientFacts(worker=worker, lateness=h, lateness_max_ns=round(max(lateness_ms) * MS),
                       cpu_wait_ns=round(wait * 10 * MS), wall_ns=1000 * MS, chunked_tokens=tokens,
                       coalesced_tokens=together)


def trust(window, clients, mode="rate", cpu=(0.1,)):
    return assess(window, cfg(), mode=mode, rate=10.0 if mode == "rate" else None, wall_s=1.0,
                  cpu_s_by_process=cpu, clients=tuple(clients))


@pytest.mark.parametrize("mode", ["rate", "concurrency"])
def test_a_client_that_read_late_is_marked_with_what_happened_and_what_to_do(mode):
    rng = random.Random(5)
    lateness = [rng.choice([0.02, 0.02, 4.0, 9.0, 180.0]) for _ in range(2000)]
    window = records(20.0)
    for r in window:  # what those reads did to the figures
        late = round(rng.choice(lateness) * MS)
        r.token_ns = [t + late for t in r.token_ns]
    t = trust(window, [facts(lateness, wait=40.0)], mode=mode)
    assert not t.trustworthy and t.ttft_p50_inflation_ms > 0.5
    [reason] = [r for r in t.reasons if "read responses late" in r]
    assert "up to 180 ms" in reason and "TTFT p50 by about" in reason
    assert "waited for a CPU 40% of the time" in reason and "core of its own" in reason


def test_a_busy_client_is_told_to_add_workers():
    window = records(20.0)
    for r in window:
        r.token_ns = [t + 3 * MS for t in r.token_ns]
    t = trust(window, [facts([3.0] * 500, wait=0.0)], cpu=(0.8,))
    [reason] = [r for r in t.reasons if "read responses late" in r]
    assert "busy 80% of a core" in reason and "--workers" in reason


def test_tokens_read_together_are_a_reason_of_their_own():
    t = trust(records(20.0), [facts([0.02] * 500, tokens=1000, together=300)])
    assert t.coalesced_tokens_percent == pytest.approx(30.0)
    assert any("30% of the streamed tokens were read together" in r and "ITL is understated" in r for r in t.reasons)


def test_a_healthy_client_is_trusted_and_its_figures_are_reported():
    t = trust(records(20.0), [facts([0.02] * 1900 + [0.3] * 90 + [2.0] * 10, wait=1.0, together=4)], mode="concurrency")
    assert t.trustworthy, t.reasons
    assert t.ttft_p50_inflation_ms < 0.05
    assert t.loop_lateness_ms.count == 2000 and t.cpu_wait_percent == pytest.approx(1.0)
    assert t.coalesced_tokens_percent == pytest.approx(0.5)


def test_several_workers_are_pooled_each_with_its_own_lateness():
    window = records(20.0, worker=0) + records(20.0, worker=1)
    t = trust(window, [facts([0.02] * 500, worker=0), facts([0.02] * 500, worker=1, tokens=800)])
    assert t.trustworthy and t.loop_lateness_ms.count == 1000


def test_without_the_client_s_own_facts_the_new_figures_are_absent():
    t = trust(records(20.0), [])
    assert t.trustworthy
    assert (t.loop_lateness_ms, t.ttft_p50_inflation_ms, t.coalesced_tokens_percent, t.cpu_wait_percent) == (None,) * 4


def test_a_stage_that_sent_nothing_is_not_trusted():
    t = trust([], [facts([2000.0] * 10)], mode="concurrency")
    assert not t.trustworthy and any("no request was sent" in r for r in t.reasons)


def test_client_facts_round_trip_through_json():
    f = facts([0.02, 3.0, 180.0], worker=2, wait=12.5, together=7)
    assert ClientFacts.from_dict(f.to_dict()) == f
