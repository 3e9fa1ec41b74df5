"""Fixtures of the k8s tests: rendered manifests (kustomize from the cluster tools)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import REPO_ROOT, load_localcluster

# kustomize roots that a user applies, by the name a test report shows.
TARGETS = {
    "base": REPO_ROOT / "manifests" / "base",
    "dev": REPO_ROOT / "manifests" / "overlays" / "dev",
    "prod": REPO_ROOT / "manifests" / "overlays" / "prod",
    "eventing": REPO_ROOT / "eventing",
}


@pytest.fixture(scope="session")
def kustomize() -> Path:
    lc = load_localcluster()
    try:
        return lc.Toolset.from_cache().kustomize
    except lc.MissingBinaries as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def render(kustomize: Path) -> Any:
    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(target: str) -> list[dict[str, Any]]:
        if target not in cache:
            out = subprocess.run([str(kustomize), "build", str(TARGETS[target])],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, f"kustomize build {target} failed:\n{out.stderr}"
            cache[target] = [d for d in yaml.safe_load_all(out.stdout) if d]
        return cache[target]

    return _render


def by_kind(docs: list[dict[str, Any]], kind: str, api_group: str | None = None) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in docs
        if d["kind"] == kind and (api_group is None or d["apiVersion"].split("/")[0] == api_group)
    }
