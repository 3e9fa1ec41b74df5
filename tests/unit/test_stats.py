"""Statistics match numpy on the same samples."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vllmbench.stats import percentile, summarize


@pytest.mark.parametrize("values", [
    [5.0],
    [1.0, 2.0],
    [3.0, 1.0, 2.0, 10.0],
    [random.Random(7).expovariate(0.05) for _ in range(1001)],
    [20.0] * 50,
])
def test_summary_matches_numpy(values):
    summary = summarize(values)
    for name, q in {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}.items():
        assert getattr(summary, name) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-9)
    assert summary.mean == pytest.approx(np.mean(values))
    assert summary.stddev == pytest.approx(np.std(values), abs=1e-9)
    assert (summary.min, summary.max, summary.count) == (min(values), max(values), len(values))


def test_no_values_is_none():
    assert summarize([]) is None


@pytest.mark.parametrize("bad", [[float("nan")], [1.0, float("inf")]])
def test_non_finite_values_are_refused(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_percentile_bounds():
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([], 50)
