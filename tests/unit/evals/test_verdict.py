"""Verdicts: worse only beyond the threshold and the noise; untrustworthy repeats left out."""

from __future__ import annotations

import pytest

from vllmbench.evals.verdict import judge, metrics_of, summary, welch_p


def repeat(ttft: float, *, throughput: float = 100.0, trustworthy: bool = True) -> dict:
    return {"run_id": "r", "metrics": {"s0:ttft_p50": ttft, "s0:output_tokens_per_s": throughput},
            "trustworthy": trustworthy, "trust_reasons": [] if trustworthy else ["schedule delay p99 40 ms"]}


BASE = [repeat(20.0), repeat(20.4), repeat(19.8)]


@pytest.mark.parametrize("current, expected", [
    ([repeat(26.0), repeat(26.3), repeat(25.9)], "worse"),       # TTFT +30%: beyond threshold and noise
    ([repeat(20.1), repeat(20.2), repeat(19.9)], "same"),        # same settings again
    ([repeat(15.0), repeat(15.2), repeat(14.9)], "better"),
    ([repeat(21.5), repeat(18.2), repeat(23.9)], "same"),        # +5.6% mean but within the noise
    ([repeat(20.0, throughput=80.0), repeat(20.1, throughput=80.5), repeat(19.9, throughput=79.0)], "worse"),
])
def test_verdicts(current: list[dict], expected: str) -> None:
    assert judge(current, BASE, baseline_id="b")["verdict"] == expected


def test_untrustworthy_repeats_are_left_out_and_named() -> None:
    current = [repeat(26.0, trustworthy=False), repeat(20.1), repeat(20.2)]
    result = judge(current, BASE, baseline_id="b")
    assert result["verdict"] == "same" and result["untrustworthy_repeats"][0]["reasons"] == ["schedule delay p99 40 ms"]
    only_bad = judge([repeat(26.0, trustworthy=False)], BASE, baseline_id="b")
    assert only_bad["verdict"] == "untrustworthy" and "no trustworthy repeat" in only_bad["summary"]


def test_one_repeat_each_needs_twice_the_threshold() -> None:
    assert judge([repeat(21.5)], [repeat(20.0)], baseline_id="b")["verdict"] == "same"   # +7.5%: noise unknown
    assert judge([repeat(26.0)], [repeat(20.0)], baseline_id="b")["verdict"] == "worse"  # +30%


def test_one_repeat_against_several_uses_their_prediction_interval() -> None:
    assert judge([repeat(21.0)], BASE, baseline_id="b")["verdict"] == "same"      # +4.7%: inside anyway
    assert judge([repeat(21.5)], BASE, baseline_id="b")["verdict"] == "same"      # +7.1%: beyond the threshold, inside the interval
    assert judge([repeat(26.0)], BASE, baseline_id="b")["verdict"] == "worse"     # +29.8%, outside it


def test_no_baseline_gives_the_figures() -> None:
    result = judge(BASE, None, baseline_id=None)
    assert result["verdict"] == "no_baseline"
    stats = result["metrics"]["s0:ttft_p50"]
    assert stats["n"] == 3 and stats["ci95"][0] < stats["mean"] < stats["ci95"][1]


def test_welch_p_values() -> None:
    assert welch_p(summary([1.0, 2.0, 3.0]), summary([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert welch_p(summary([10.0, 10.1, 9.9]), summary([12.0, 12.1, 11.9])) < 0.001


def test_metrics_of_a_record() -> None:
    record = {"run": {"stage": 1}, "results": {
        "latency": {"ttft": {"mean": 20, "p50": 19.5, "p99": 40}, "itl": {"mean": 5, "p50": 5.0}},
        "throughput": {"requests_per_s": 4.0, "output_tokens_per_s": 500.0},
        "goodput": {"requests_per_s": 3.5}}}
    assert metrics_of([record]) == {"s1:ttft_p50": 19.5, "s1:ttft_p99": 40.0, "s1:itl_p50": 5.0,
                                    "s1:requests_per_s": 4.0, "s1:output_tokens_per_s": 500.0, "s1:goodput_rps": 3.5}


def test_a_baseline_names_an_evaluation_the_last_one_another_server_or_none() -> None:
    from pydantic import ValidationError

    from vllmbench.models.evaluations import EvaluateRequest

    for ok in ("last", "none", "server:default/llama-ft-v2", "chat-20261201-120000-ab12"):
        assert EvaluateRequest(baseline=ok).baseline == ok
    with pytest.raises(ValidationError):
        EvaluateRequest(baseline="server:Not A Name")
