"""Comparison of records: values side by side, differences against the first."""

from __future__ import annotations

import pytest

from tests.fixtures.records import record
from vllmbench.compare import compare
from vllmbench.models.results import StandardizedRecord


def test_differences_against_the_baseline():
    a = StandardizedRecord.model_validate(record("a", rate=10))
    b = StandardizedRecord.model_validate(record("b", rate=20))
    result = compare([a, b])
    throughput = next(m for m in result["metrics"] if m["metric"] == "requests_per_s")
    assert throughput["values"] == pytest.approx([9.9, 19.8])
    assert throughput["rel_diff"] == pytest.approx([0.0, 1.0])
    assert throughput["better"] == "higher"


def test_metrics_no_record_has_are_left_out():
    plain = record("plain")
    del plain["results"]["goodput"]
    result = compare([StandardizedRecord.model_validate(plain)] * 2)
    assert not any(m["metric"].startswith("goodput") for m in result["metrics"])


def test_nothing_to_compare():
    with pytest.raises(ValueError):
        compare([])
