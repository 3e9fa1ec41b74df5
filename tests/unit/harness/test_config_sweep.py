import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.harness.config import RunConfig
from vllmbench.harness.sweep import Point, next_rate, saturated, saturation


@pytest.mark.parametrize("kwargs,message", [
    ({"rates": ()}, "at least one --rate"),
    ({"rates": (0.0,)}, "positive"),
    ({"url": "localhost:8000"}, "http://"),
    ({"duration_s": 10, "warmup_s": 6, "cooldown_s": 5}, "leave nothing"),
    ({"mode": "concurrency", "rates": (), "concurrencies": (0,)}, ">= 1"),
    ({"workers": 0}, "workers"),
    ({"dataset": "jsonl"}, "needs a file path"),
    ({"input_len": "uniform:9:1"}, "length"),
    ({"arrival": "weibull"}, "arrival"),
    ({"duration_s": None, "request_count": None}, "duration or a request count"),
    ({"rates": (1e9,), "duration_s": 100}, "requests, over"),
])
def test_impossible_settings_are_refused_with_a_reason(kwargs, message):
    values = {"url": "http://127.0.0.1:1", "rates": (1.0,), "duration_s": 10.0, **kwargs}
    with pytest.raises(ValidationFailed, match=message):
        RunConfig(**values).validate()


def test_config_without_the_api_key():
    assert "api_key" not in RunConfig(url="http://x", rates=(1.0,), api_key="secret").to_dict()


def P(rate, thr=None, ttft=20.0, failed=0.0):
    return Point(rate, rate if thr is None else thr, ttft, failed)


@pytest.mark.parametrize("p,baseline,expected", [
    (P(10), 20.0, False), (P(10, thr=8.5), 20.0, True), (P(10, ttft=70), 20.0, True),
    (P(10, failed=0.6), 20.0, True), (P(10, ttft=None), 20.0, True),
])
def test_saturated(p, baseline, expected):
    assert saturated(p, baseline) is expected


@pytest.mark.parametrize("points,expected", [
    ([], 5.0),
    ([P(5)], 10.0),
    ([P(5), P(10)], 20.0),
    ([P(5), P(10), P(20, thr=12)], 15.0),
    ([P(5), P(10), P(20, thr=12), P(15)], 17.5),
    ([P(5), P(10), P(20, thr=12), P(15), P(17.5, ttft=100), P(16.25)], None),  # within 10%
    ([P(5, thr=1)], 1.25),
])
def test_search_doubles_then_bisects(points, expected):
    assert next_rate(points, start=5.0, max_stages=8) == expected


def test_search_stops_at_the_stage_budget_and_reports_the_sustained_rate():
    points = [P(5), P(10), P(20, thr=12)]
    assert next_rate(points, start=5.0, max_stages=3) is None
    assert saturation(points) == {"sustained_rate_rps": 10, "max_throughput_rps": 12}
