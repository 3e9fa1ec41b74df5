"""Each function logs in to MongoDB as its own user, whose roles cover its own database
and no other function's (issue 9: one user with readWrite on 'vllmbench' would have
been refused every read and write, and no test could see it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from eventing.types import SERVICES
from tests.fixtures.cluster import REPO_ROOT
from tests.k8s.conftest import by_kind
from vllmbench.settings import FUNCTION_DATABASES

pytestmark = pytest.mark.k8s


def _users(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(by_kind(docs, "ConfigMap")["mongodb-users"]["data"]["users.json"])


def _secret_of(env: dict[str, Any], key: str) -> str:
    return env[key]["valueFrom"]["secretKeyRef"]["name"]


@pytest.mark.parametrize("target", ["base", "dev", "prod"])
def test_every_functions_database_is_covered_by_its_own_user_and_no_other(render: Any, target: str) -> None:
    docs = render(target)
    users = {entry["secret"]: entry for entry in _users(docs)}
    ksvcs = by_kind(docs, "Service", "serving.knative.dev")
    seen_secrets = set()
    for folder, (service, _port) in SERVICES.items():
        container = ksvcs[service]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert "VLLMBENCH_DATABASE" not in env, "each function keeps its own database"
        secret = _secret_of(env, "MONGO_USERNAME")
        assert _secret_of(env, "MONGO_PASSWORD") == secret
        assert secret not in seen_secrets, f"{service} shares its database user"
        seen_secrets.add(secret)
        own = FUNCTION_DATABASES[folder]
        assert users[secret]["function"] == folder
        assert users[secret]["roles"] == [{"role": "readWrite", "db": own}], service
        others = [s for s, entry in users.items() if s != secret and any(r["db"] == own for r in entry["roles"])]
        assert not others, f"{own} is also covered by {others}"
    assert set(users) == seen_secrets, "a user that no function logs in as"


def test_the_init_job_creates_every_user_from_its_secret(render: Any) -> None:
    docs = render("dev")
    job = by_kind(docs, "Job")["mongodb-replica-set-init"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in job["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in job["volumes"]}
    assert volumes[mounts["/etc/mongodb-users"]]["configMap"]["name"] == "mongodb-users"
    secrets = by_kind(docs, "Secret")
    usernames = set()
    for entry in _users(docs):
        volume = volumes[mounts[f"/users/{entry['secret']}"]]
        assert volume["secret"]["secretName"] == entry["secret"]
        data = secrets[entry["secret"]]["stringData"]
        assert {"MONGO_USERNAME", "MONGO_PASSWORD"} <= set(data)
        usernames.add(data["MONGO_USERNAME"])
    assert len(usernames) == len(SERVICES)
    assert "/etc/mongodb-users/users.json" in job["containers"][0]["command"][-1]
    assert "MONGO_APP_" not in job["containers"][0]["command"][-1]


def test_func_yaml_logs_in_as_the_same_user() -> None:
    for folder, (service, _port) in SERVICES.items():
        func = yaml.safe_load((REPO_ROOT / "functions" / folder / "func.yaml").read_text())
        envs = {e["name"]: e["value"] for e in func["run"]["envs"]}
        for key in ("MONGO_USERNAME", "MONGO_PASSWORD"):
            assert envs[key] == f"{{{{ secret:{service}-mongodb:{key} }}}}", folder
