"""What the deployer may apply: kinds, namespaces, pod security; messages name the field."""

from __future__ import annotations

from typing import Any

import pytest

from vllmbench.reconcile.policy import check

NS = ["bench"]


def job(**pod: Any) -> dict[str, Any]:
    container = pod.pop("container", {})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x", **container}], **pod}}}}


@pytest.mark.parametrize("obj, loc, words", [
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}},
     "f:1.kind", "Secret data never goes into Git"),
    ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}},
     "f:1.kind", "cluster-scoped"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "f:1.kind", "not allowed"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}},
     "f:1.metadata.namespace", "not a benchmark namespace"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}, "f:1.metadata.name", "not valid"),
    ({"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "d"}}, "f:1.apiVersion", "not served"),
    (job(hostNetwork=True), "f:1.spec.template.spec.hostNetwork", "hostNetwork"),
    (job(hostPID=True), "f:1.spec.template.spec.hostPID", "hostPID"),
    (job(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "f:1.spec.template.spec.volumes[0].hostPath",
     "hostPath"),
    (job(container={"securityContext": {"privileged": True}}),
     "f:1.spec.template.spec.containers[c].securityContext.privileged", "privileged"),
    (job(container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}),
     "f:1.spec.template.spec.containers[c].securityContext.capabilities.add", "SYS_ADMIN"),
])
def test_refusals_name_the_field(obj: dict[str, Any], loc: str, words: str) -> None:
    problems = check(obj, namespaces=NS, where="f:1")
    assert problems, obj
    assert problems[0].loc == loc
    assert words in problems[0].message


def test_a_secret_refusal_never_echoes_its_data() -> None:
    problems = check({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                      "stringData": {"password": "hunter2-very-secret"}}, namespaces=NS, where="f:1")
    assert all("hunter2" not in p.message for p in problems)


@pytest.mark.parametrize("obj", [
    job(container={"securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}}),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "bench"}, "spec": {}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
     "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}},
])
def test_ordinary_workloads_pass(obj: dict[str, Any]) -> None:
    assert check(obj, namespaces=NS, where="f:1") == []
