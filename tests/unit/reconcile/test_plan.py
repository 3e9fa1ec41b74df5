"""Planning: desired + the owner's inventory -> actions with reasons (table tests)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vllmbench.reconcile.objects import APPLIED_HASH, mark
from vllmbench.reconcile.plan import plan
from vllmbench.runtimes.base import ObjectRef

C1, C2 = "1" * 40, "2" * 40


def configmap(name: str = "cm", data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"},
            "data": data or {"a": "1"}}


def job(name: str = "bench", image: str = "vllmbench/harness:1") -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "run", "image": image}]}}}}


def deployment(name: str = "web", replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x",
                                                           "resources": {"limits": {"cpu": "1000m"}}}]}}}}


def marked(obj: dict[str, Any], commit: str = C1, owner: str = "deploy") -> dict[str, Any]:
    return mark(obj, owner=owner, source=f"deployments/ns/{obj['metadata']['name']}.yaml", commit=commit)


def live(obj: dict[str, Any], **server_fields: Any) -> dict[str, Any]:
    """What the API holds after applying ``obj``: our fields plus server ones."""
    out = copy.deepcopy(obj)
    out["metadata"].update({"uid": "u-1", "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"})
    out["status"] = server_fields.pop("status", {})
    for key, value in server_fields.items():
        out.setdefault("spec", {})[key] = value
    return out


def ops(result: Any) -> dict[str, str]:
    return {a.ref.name: a.op for a in result.actions}


@pytest.mark.parametrize("desired, inventory, foreign, expected", [
    ([configmap()], [], {}, {"cm": "create"}),
    ([configmap()], [live(marked(configmap()))], {}, {"cm": "unchanged"}),
    ([configmap(data={"a": "2"})], [live(marked(configmap()))], {}, {"cm": "update"}),
    ([], [live(marked(configmap()))], {}, {"cm": "prune"}),
    ([configmap()], [], {ObjectRef("v1", "ConfigMap", "ns", "cm"): live(configmap())}, {"cm": "conflict"}),
    ([job(image="b")], [live(marked(job(image="a")))], {}, {"bench": "recreate"}),
    ([job()], [live(marked(job()))], {}, {"bench": "unchanged"}),
], ids=["create", "unchanged", "update", "prune", "not-ours", "job-template-recreate", "job-unchanged"])
def test_plan_table(desired: list[dict], inventory: list[dict], foreign: dict, expected: dict[str, str]) -> None:
    result = plan([marked(d) for d in desired], inventory, commit=C1, foreign=foreign)
    assert ops(result) == expected


def test_a_later_commit_that_does_not_change_an_object_leaves_it_alone() -> None:
    applied = live(marked(configmap(), commit=C1))
    result = plan([marked(configmap(), commit=C2)], [applied], commit=C2)
    assert ops(result) == {"cm": "unchanged"}
    assert result.writes == 0


def test_drift_of_an_owned_field_is_planned_but_server_defaults_are_not() -> None:
    applied = live(marked(deployment()), progressDeadlineSeconds=600, revisionHistoryLimit=10)
    applied["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1"  # normalised
    applied["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"  # a default
    result = plan([marked(deployment())], [applied], commit=C1)
    assert ops(result) == {"web": "unchanged"}
    edited = copy.deepcopy(applied)
    edited["spec"]["replicas"] = 5  # kubectl edit
    result = plan([marked(deployment())], [edited], commit=C1)
    assert ops(result) == {"web": "drift"}
    assert result.actions[0].paths == ["spec.replicas"]
    assert "spec.replicas" in result.actions[0].reason


def test_an_object_of_an_invalid_file_is_held_not_pruned() -> None:
    applied = live(marked(configmap()))
    result = plan([], [applied], commit=C2, held_sources={"deployments/ns/cm.yaml"})
    assert ops(result) == {"cm": "hold"}
    assert "invalid" in result.actions[0].reason and result.writes == 0


def test_order_creates_dependencies_first_and_prunes_them_last() -> None:
    result = plan([marked(job()), marked(configmap())], [live(marked(deployment())), live(marked(configmap("old")))],
                  commit=C1)
    assert [(a.ref.kind, a.op) for a in result.actions] == [
        ("ConfigMap", "create"), ("Job", "create"), ("Deployment", "prune"), ("ConfigMap", "prune")]


def test_the_same_object_twice_is_refused_naming_both_files() -> None:
    one = mark(configmap(), owner="deploy", source="deployments/ns/a.yaml", commit=C1)
    two = mark(configmap(), owner="deploy", source="deployments/ns/b.yaml", commit=C1)
    with pytest.raises(ValueError, match="a.yaml and deployments/ns/b.yaml"):
        plan([one, two], [], commit=C1)


def test_marks_carry_owner_labels_on_object_and_pod_template() -> None:
    obj = marked(job())
    labels = obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "vllmbench" and labels["vllmbench.dev/owner"] == "deploy"
    assert obj["spec"]["template"]["metadata"]["labels"]["vllmbench.dev/owner"] == "deploy"
    notes = obj["metadata"]["annotations"]
    assert notes["vllmbench.dev/source"] == "deployments/ns/bench.yaml" and notes["vllmbench.dev/commit"] == C1
    assert marked(job(), commit=C2)["metadata"]["annotations"][APPLIED_HASH] == notes[APPLIED_HASH]
    assert marked(job(image="other"))["metadata"]["annotations"][APPLIED_HASH] != notes[APPLIED_HASH]
