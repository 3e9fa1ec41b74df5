"""The REST adapter against the real MLflow server of the session."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.fixtures.mlflow_rest import MlflowRest
from vllmbench.embedded.processes import free_port
from vllmbench.errors import BadGateway, DependencyUnavailable, UserError
from vllmbench.mlflow.client import MlflowClient
from vllmbench.mlflow.server import MlflowServer

REPO = Path(__file__).resolve().parents[3]


def test_the_server_is_the_pinned_version_and_the_project_venv_cannot_import_mlflow(mlflow_server: MlflowServer):
    pinned = re.search(r"^MLFLOW_VERSION=(\S+)$", (REPO / "tools" / "versions.env").read_text(), re.M)[1]
    assert MlflowClient(mlflow_server.url).server_version() == pinned
    assert importlib.util.find_spec("mlflow") is None


def test_the_cursor_sees_every_version_once_even_when_one_is_registered_between_pages(mlflow: MlflowRest):
    client = MlflowClient(mlflow.url)
    model = mlflow.name("paged")
    mlflow.create_model(model)
    for i in range(5):
        mlflow.create_version(model, f"s3://bucket/{i}")
    seen: list[int] = []
    cursor = 0
    while page := client.versions_after(model, cursor, limit=2):
        seen += [int(v["version"]) for v in page]
        cursor = seen[-1]
        if cursor == 2:
            mlflow.create_version(model, "s3://bucket/late")
    assert seen == [1, 2, 3, 4, 5, 6]


def test_lookups_of_what_does_not_exist_are_none(mlflow: MlflowRest):
    client = MlflowClient(mlflow.url)
    model = mlflow.name("lookups")
    mlflow.create_model(model)
    mlflow.create_version(model, "s3://bucket/1")
    mlflow.set_alias(model, "prod", 1)
    assert client.get_model(mlflow.name("absent")) is None
    assert client.get_version(model, 99) is None
    assert client.get_run("0" * 32) is None
    assert client.get_version(model, 1)["aliases"] == ["prod"]  # get-model-version carries them,
    assert "aliases" not in client.versions_after(model, 0)[0]  # search does not (mlflow#9783)
    assert client.versions_after(mlflow.name("absent"), 0) == []


def test_names_with_quotes_are_searchable_and_one_with_both_is_refused(mlflow: MlflowRest):
    client = MlflowClient(mlflow.url)
    for model in (mlflow.name("it's"), mlflow.name('say "hi"')):
        mlflow.create_model(model)
        mlflow.create_version(model, "s3://bucket/1")
        assert [v["version"] for v in client.versions_after(model, 0)] == ["1"]
    with pytest.raises(UserError, match="both quote characters"):
        client.versions_after("it's \"both\"", 0)
    assert any(m["name"] == mlflow.name("it's") for m in client.search_models(mlflow.name("it") + "%"))


def test_errors_become_the_projects_own(mlflow: MlflowRest):
    with pytest.raises(DependencyUnavailable, match="cannot be reached"):
        MlflowClient(f"http://127.0.0.1:{free_port()}", timeout_s=2).server_version()
    with pytest.raises(BadGateway, match="INVALID_PARAMETER_VALUE"):
        MlflowClient(mlflow.url).set_alias(mlflow.name("nobody"), "latest", 1)
