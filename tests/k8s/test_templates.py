"""The Jobs of the built-in templates: valid against the Kubernetes schema, and a real API server takes them."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.fixtures.templates import BUILTINS, builtin, profile, values
from tests.k8s.test_manifests import KUBERNETES_SCHEMA_VERSION
from vllmbench.evals.templates import render

pytestmark = pytest.mark.k8s

PROFILES = {
    "rate": profile(slo={"ttft_ms": 200}, accuracy={"tasks": ["gsm8k"], "limit": 100}),
    "concurrency": profile(load={"mode": "concurrency", "concurrency": 8, "request_count": 200},
                           accuracy={"tasks": ["gsm8k"]}),
}
CASES = [(name, load) for name in BUILTINS for load in PROFILES]


def _job(name: str, load: str, namespace: str | None = None, **overrides: Any) -> dict[str, Any]:
    job = render(builtin(name), values(benchmark=PROFILES[load], **overrides))
    if namespace:
        job["metadata"]["namespace"] = namespace
    return job


@pytest.mark.parametrize("name,load", CASES)
def test_the_rendered_job_passes_the_kubernetes_schema(name, load):
    for job in (_job(name, load), _job(name, load, token_secret="")):
        try:
            kubernetes_validate.validate(job, KUBERNETES_SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} ({load}): {exc.message}")


@pytest.mark.parametrize("name,load", CASES)
def test_the_api_server_accepts_the_job_in_a_dry_run(k8s_cluster, k8s_namespace, name, load):
    job = _job(name, load, k8s_namespace)
    path = f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs/{job['metadata']['name']}"
    applied = k8s_cluster.raw.apply(job, dry_run=True, path=path, field_manager="vllmbench-tests")
    assert applied["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    containers = applied["spec"]["template"]["spec"].get("initContainers", []) + \
        applied["spec"]["template"]["spec"]["containers"]
    assert containers[-1]["args"] == job["spec"]["template"]["spec"]["containers"][-1]["args"]


def test_a_misspelt_field_would_be_caught(k8s_cluster, k8s_namespace):
    """The dry run above proves something only if the API server refuses what is wrong."""
    job = copy.deepcopy(_job("guidellm", "rate", k8s_namespace))
    job["spec"]["template"]["spec"]["initContainers"][0]["volumeMount"] = []
    with pytest.raises(Exception, match="volumeMount"):
        k8s_cluster.raw.apply(job, dry_run=True, field_manager="vllmbench-tests",
                              path=f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs/{job['metadata']['name']}")
