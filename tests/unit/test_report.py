"""The report's pure parts: axes, the Pareto front, the samples' window, the flat export, size."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random

import pytest

from tests.fixtures.records import record
from vllmbench.errors import NotFound, ValidationFailed
from vllmbench.harness.aggregate import StageFacts, to_record
from vllmbench.harness.config import RunConfig
from vllmbench.harness.records import RequestRecord
from vllmbench.models.results import StandardizedRecord
from vllmbench.report import compare_report, run_data, run_report, samples_by_stage
from vllmbench.report.charts import cdf_points
from vllmbench.report.flat import header, row, to_csv
from vllmbench.report.params import CompareReportQuery, split_item
from vllmbench.report.pareto import front
from vllmbench.report.svg import Plot, Series, fmt, line_plot, nice_ticks
from vllmbench.stats import summarize


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 14.5, [0, 5, 10, 15]),
    (3.3, 51.1, [0, 10, 20, 30, 40, 50, 60]),
    (0, 100, [0, 20, 40, 60, 80, 100]),
    (95, 100.2, [94, 96, 98, 100, 102]),
    (5, 5, [5.0, 5.1, 5.2, 5.3, 5.4, 5.5]),  # one value: a range around it
])
def test_nice_ticks_cover_the_range_in_round_steps(lo, hi, expected):
    ticks = nice_ticks(lo, hi)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= lo and ticks[-1] >= hi


@pytest.mark.parametrize("value, text", [(0, "0"), (12.5, "12.5"), (0.25, "0.25"), (463.2, "463"),
                                         (12500, "12.5k"), (3_000_000, "3M"), (0.0123, "0.0123")])
def test_labels_are_short(value, text):
    assert fmt(value) == text


@pytest.mark.parametrize("points, expected", [
    ([], []),
    ([(1, 10)], [0]),
    ([(1, 10), (2, 20), (3, 5)], [2]),  # (3, 5) is faster and lower than both
    ([(1, 10), (2, 20), (3, 30)], [0, 1, 2]),  # a trade-off at every step
    ([(1, 10), (1, 12), (2, 10)], [2]),  # ties: more throughput at the same latency wins
    ([(5, 5), (5, 5)], [0]),  # the same point twice is on the front once
])
def test_the_pareto_front_keeps_the_points_nothing_dominates(points, expected):
    assert front(points) == expected


def test_runs_in_a_comparison_are_run_ids_with_an_optional_stage():
    assert split_item("run-1@3") == ("run-1", 3) and split_item("run-1") == ("run-1", None)
    with pytest.raises(ValidationFailed):
        split_item("run-1@x")
    assert CompareReportQuery.model_validate({"runs": ["a", "b@2"]}).runs == ["a", "b@2"]
    for bad in (["a"], ["a", "b@"], ["a", "b c"], [f"r{i}" for i in range(51)]):
        with pytest.raises(ValueError):
            CompareReportQuery.model_validate({"runs": bad})


def _requests(n: int, *, error_every: int = 10, seed: int = 1) -> list[RequestRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        scheduled = i * 100_000_000  # 10 req/s
        sent = scheduled + rng.randrange(0, 500_000)
        if i % error_every == 3:
            out.append(RequestRecord(index=i, scheduled_ns=scheduled, sent_ns=sent, end_ns=sent + 5_000_000,
                                     error="http_500", status=500))
            continue
        first = sent + rng.randrange(15_000_000, 40_000_000)
        tokens = [first]
        for _ in range(15):
            tokens.append(tokens[-1] + rng.randrange(3_000_000, 8_000_000))
        out.append(RequestRecord(index=i, scheduled_ns=scheduled, sent_ns=sent, end_ns=tokens[-1] + 1_000_000,
                                 token_ns=tokens, input_tokens=64, output_tokens=16, tokens_from="server"))
    return out


def _record(reqs: list[RequestRecord], cfg: RunConfig, *, index: int = 0) -> StandardizedRecord:
    start = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    facts = StageFacts(index=index, mode="rate", rate=10.0, concurrency=None, started_at=start,
                       ended_at=start + dt.timedelta(seconds=10), wall_s=10.0, cpu_s_by_process=(0.5,),
                       model="m", planned_span_ns=reqs[-1].scheduled_ns)
    return to_record(reqs, cfg, facts)


def test_samples_are_cut_to_the_window_the_statistics_used():
    cfg = RunConfig(url="http://127.0.0.1:1", rates=(10.0,), duration_s=10.0, warmup_s=2.0, cooldown_s=1.0,
                    run_id="w")
    reqs = _requests(100)
    rec = _record(reqs, cfg)
    rows = [{"stage": 0, "planned_span_ms": reqs[-1].scheduled_ns / 1e6, **r.to_dict()} for r in reqs]
    samples = samples_by_stage(rows, [rec])[0]
    # The same requests as the record's figures: warm-up and cool-down cut, failures left out.
    ours, theirs = summarize(samples.ttft_ms).model_dump(), rec.results.latency.ttft.model_dump()
    assert ours.pop("units") == theirs.pop("units") and ours == pytest.approx(theirs, abs=1e-3)  # rows keep 4 decimals
    assert summarize(samples.itl_ms).p99 == pytest.approx(rec.results.latency.itl.p99, abs=1e-3)
    assert len(samples.ttft_ms) == rec.results.requests.succeeded
    # Throughput over time keeps every succeeded request, warm-up included, and marks the window.
    assert len(samples.completions) == sum(1 for r in reqs if r.ok)
    assert samples.window_s == pytest.approx((2.0, reqs[-1].scheduled_ns / 1e9 - 1.0))


def test_a_distribution_without_samples_is_outlined_by_the_stored_percentiles():
    stats = summarize([10.0, 20.0, 30.0, 40.0])
    points, from_samples = cdf_points(None, stats)
    assert not from_samples
    assert points[0] == (10.0, 0.0) and points[-1] == (40.0, 100.0) and (stats.p50, 50.0) in points
    points, from_samples = cdf_points([3.0, 1.0, 2.0], stats)
    assert from_samples and points[0] == (1.0, 0.0) and points[-1] == (3.0, 100.0)


def test_the_csv_has_a_column_for_every_figure():
    rec = StandardizedRecord.model_validate(record("csv-run", stage=2))
    assert len(header()) == len(row(rec))
    rows = list(csv.DictReader(io.StringIO(to_csv([rec]))))
    assert rows[0]["run_id"] == "csv-run" and rows[0]["stage"] == "2"
    assert float(rows[0]["ttft_p99_ms"]) == pytest.approx(rec.results.latency.ttft.p99)
    assert rows[0]["failures_by_cause"] == "http_500=2" and rows[0]["trustworthy"] == "True"


def test_chart_text_is_escaped():
    svg = line_plot(Plot("<b>t</b>", "x <ms>", "y & z", [Series("<script>", [(0, 1), (1, 2)])]))
    assert "<b>" not in svg and "<script>" not in svg and "&lt;script&gt;" in svg and "y &amp; z" in svg


def test_an_unknown_stage_names_the_stages_there_are():
    run = run_data("r", [record("r", stage=0), record("r", stage=3)])
    with pytest.raises(NotFound, match="has no stage 2; it has: 0, 3"):
        run.stage(2)


def test_reports_stay_small_however_many_requests_and_runs():
    cfg = RunConfig(url="http://127.0.0.1:1", rates=(10.0,), duration_s=150.0, run_id="big")
    records, rows = [], []
    for stage in range(10):
        reqs = _requests(1500, seed=stage)
        records.append(_record(reqs, cfg, index=stage))
        rows += [{"stage": stage, **r.to_dict()} for r in reqs]
    big = run_data("big", records, rows=rows)
    assert len(big.samples[0].itl_ms) > 20_000
    size = len(run_report(big, generated_at="t").encode())
    assert size < 300_000, size
    many = [run_data(f"run-{i}", [record(f"run-{i}", stage=s, rate=5.0 * (s + 1), ttft=20.0 + i) for s in range(4)])
            for i in range(50)]
    size = len(compare_report(many, generated_at="t").encode())
    assert size < 1_500_000, size


def test_throughput_over_time_is_a_sliding_window_that_keeps_its_rate_at_the_edges():
    from vllmbench.report.charts import rolling

    steady = [(i / 10, 16) for i in range(1, 101)]  # a response of 16 tokens every 100 ms for 10 s
    points = rolling(steady, 1.0, 0.25, 10.0)
    assert points[0][0] == 0.0 and points[-1][0] == 10.0
    assert all(tokens == pytest.approx(160, rel=0.25) for _, tokens, _ in points)
    assert all(requests == pytest.approx(10, rel=0.25) for *_, requests in points)
    stalled = [(t, n) for t, n in steady if not 4.0 < t <= 6.0]  # the server stops for 2 s
    assert min(tokens for t, tokens, _ in rolling(stalled, 1.0, 0.25, 10.0) if 4.5 <= t <= 5.5) == 0


def test_a_verdict_is_printed_where_an_evaluation_judged_one_and_colours_say_direction_only():
    base = run_data("base", [record("base", ttft=20.0)])
    worse = run_data("worse", [record("worse", ttft=40.0)])
    plain = compare_report([base, worse], generated_at="t")
    assert "verdict:" not in plain and 'class="worse">▲' in plain  # TTFT went up: red, not judged
    judged = compare_report([base, worse], generated_at="t", verdicts={"worse": {"ttft_p50": "worse"}})
    assert judged.count("verdict: worse") == 1
