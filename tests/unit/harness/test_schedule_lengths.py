import random
import statistics

import pytest

from vllmbench.harness.lengths import LengthSpec
from vllmbench.harness.schedule import request_count, send_offsets, split


@pytest.mark.parametrize("rate,n,expected", [
    (10.0, 3, [0, 100_000_000, 200_000_000]),
    (4.0, 2, [0, 250_000_000]),
    (1000.0, 3, [0, 1_000_000, 2_000_000]),
])
def test_constant_offsets_are_evenly_spaced(rate, n, expected):
    assert send_offsets(rate, n) == expected


@pytest.mark.parametrize("arrival,burstiness", [("poisson", 1.0), ("gamma", 0.5), ("gamma", 4.0)])
def test_random_arrivals_keep_the_mean_rate(arrival, burstiness):
    offsets = send_offsets(50.0, 20_000, arrival=arrival, burstiness=burstiness, seed=3)
    assert offsets == sorted(offsets) and offsets[0] == 0
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert statistics.fmean(gaps) == pytest.approx(1e9 / 50, rel=0.05)
    # gamma shape k: coefficient of variation 1/sqrt(k)
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    assert cv == pytest.approx(1 / burstiness ** 0.5, rel=0.1)


def test_schedule_is_reproducible_from_the_seed():
    assert send_offsets(5, 100, arrival="poisson", seed=7) == send_offsets(5, 100, arrival="poisson", seed=7)


@pytest.mark.parametrize("kwargs,message", [
    ({"rate": 0, "n": 1}, "rate"), ({"rate": -1, "n": 1}, "rate"), ({"rate": float("inf"), "n": 1}, "rate"),
    ({"rate": 1, "n": 0}, "count"), ({"rate": 1, "n": 2, "arrival": "zipf"}, "arrival"),
    ({"rate": 1, "n": 2, "arrival": "gamma", "burstiness": 0}, "burstiness"),
])
def test_impossible_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        send_offsets(kwargs.pop("rate"), kwargs.pop("n"), **kwargs)


@pytest.mark.parametrize("rate,duration,count,expected", [(10, 3, None, 30), (2.5, 2, None, 5), (10, 3, 7, 7), (0.1, 1, None, 1)])
def test_request_count(rate, duration, count, expected):
    assert request_count(rate, duration, count) == expected


def test_split_is_round_robin_and_covers_everything():
    parts = split(list(range(10)), 3)
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


@pytest.mark.parametrize("text,kind,low,high", [
    ("128", "fixed", 128, 128), ("fixed:64", "fixed", 64, 64), ("uniform:10:20", "uniform", 10, 20),
    ("normal:100:10:80:120", "normal", 80, 120), ("normal:100:10", "normal", 1, 140),
])
def test_length_specs_parse_and_stay_in_bounds(text, kind, low, high):
    spec = LengthSpec.parse(text)
    assert (spec.kind, spec.low, spec.high) == (kind, low, high)
    rng = random.Random(1)
    assert all(low <= spec.sample(rng) <= high for _ in range(2000))


@pytest.mark.parametrize("text", ["", "abc", "uniform:5", "uniform:9:3", "normal:1", "fixed:0", "normal:10:-1"])
def test_bad_length_specs_are_refused(text):
    with pytest.raises(ValueError, match="length"):
        LengthSpec.parse(text)
