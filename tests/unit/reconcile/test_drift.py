"""Drift is a field we sent whose live value differs; server additions and normalised values are not."""

from __future__ import annotations

import pytest

from vllmbench.reconcile.drift import differences, quantity, same_live


@pytest.mark.parametrize("text, value", [("500m", 0.5), ("1", 1), ("1Gi", 2 ** 30), ("1024Mi", 2 ** 30),
                                         ("2k", 2000), ("1.5", 1.5), (4, 4)])
def test_quantities(text: object, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("desired, live, expected", [
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": 1, "paused": False}}, []),
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": 3}}, ["spec.replicas"]),
    ({"spec": {"c": [{"name": "a", "image": "x"}]}}, {"spec": {"c": [{"name": "a", "image": "x", "tty": False}]}}, []),
    ({"spec": {"c": [{"name": "a", "image": "x"}]}}, {"spec": {"c": [{"name": "a", "image": "y"}]}},
     ["spec.c[a].image"]),
    ({"spec": {"c": [{"name": "a"}]}}, {"spec": {"c": [{"name": "a"}, {"name": "b"}]}}, ["spec.c (count)"]),
    ({"r": {"limits": {"cpu": "1000m", "memory": "1Gi"}}}, {"r": {"limits": {"cpu": "1", "memory": "1024Mi"}}}, []),
    ({"r": {"limits": {"nvidia.com/gpu": 1}}}, {"r": {"limits": {"nvidia.com/gpu": "2"}}}, ["r.limits.nvidia.com/gpu"]),
    ({"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["a"]}}, ["spec.args"]),
    ({"spec": {"port": 80}}, {"spec": {"port": "80"}}, []),
    ({"metadata": {"name": "x", "resourceVersion": "1"}}, {"metadata": {"name": "x", "resourceVersion": "9"}}, []),
    ({"status": {"x": 1}}, {"status": {"x": 2}}, []),
    ({"spec": {"selector": {}}}, {"spec": {}}, []),
    ({"spec": {"flag": True}}, {"spec": {"flag": 1}}, ["spec.flag"]),
], ids=["default-added", "replicas-edited", "named-list-extra-field", "named-list-changed", "named-list-grew",
        "quantities-normalised", "gpu-count-changed", "list-shrunk", "int-as-string", "server-metadata",
        "status-ignored", "empty-map", "bool-is-not-int"])
def test_differences(desired: dict, live: dict, expected: list[str]) -> None:
    assert differences(desired, live) == expected


def test_same_live_ignores_bookkeeping_only() -> None:
    a = {"metadata": {"name": "x", "resourceVersion": "1", "managedFields": [1]}, "spec": {"a": 1}, "status": {}}
    b = {"metadata": {"name": "x", "resourceVersion": "2"}, "spec": {"a": 1}, "status": {"ready": True}}
    assert same_live(a, b)
    assert not same_live(a, {**b, "spec": {"a": 2}})
