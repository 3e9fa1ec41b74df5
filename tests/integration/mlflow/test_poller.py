"""The poll's budgets against the real MLflow server, FerretDB and a Git remote: a full pass
larger than one poll goes on where it stopped instead of starting over."""

from __future__ import annotations

from pathlib import Path

import yaml
from pymongo import MongoClient

from gitops.repo import GitRepository
from tests.fixtures.mlflow_rest import MlflowRest
from tests.integration.gitops.gitutil import make_remote
from vllmbench.mlflow.client import MlflowClient
from vllmbench.mlflow.poll import Poller
from vllmbench.mlflow.repository import ConfigRepository
from vllmbench.store.mlflow import MlflowStore, ensure_indexes


def test_a_full_pass_over_several_polls_goes_on_where_it_stopped(tmp_path: Path, mlflow: MlflowRest,
                                                                 mongo_url: str, database_name: str):
    model = mlflow.name("budget")
    remote = make_remote(tmp_path / "gitops.git", {"mlflow/r.yaml": yaml.safe_dump({"models": [model]})})
    mlflow.create_model(model)
    for i in range(1, 6):
        mlflow.create_version(model, f"s3://bucket/{i}")
    client = MongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=3000)
    db = client[database_name]
    ensure_indexes(db)
    store = MlflowStore(db)
    repo = ConfigRepository(GitRepository(str(remote), "main", cache_dir=tmp_path / "cache"))

    def poll(*, reads: int, full: bool = False) -> dict:
        return Poller(MlflowClient(mlflow.url), store, repo, max_reads=reads).poll(trigger="test", full=full)

    try:
        first = poll(reads=100)
        assert [w["version"] for w in first["written"]] == [1, 2, 3, 4, 5] and first["versions_read"] == 5
        assert store.status()["full_cycle"] is None and store.status()["last_full_at"]
        for i in range(1, 6):
            mlflow.set_tag(model, i, "owner", "bob")  # in place: only a full pass sees it
        passes = [poll(reads=2, full=True), poll(reads=2), poll(reads=2)]
        assert [[w["version"] for w in p["written"]] for p in passes] == [[1, 2], [3, 4], [5]]
        assert [p["more"] for p in passes] == [True, True, False]
        assert store.status()["full_cycle"] is None
        assert poll(reads=2)["versions_read"] == 0  # the pass is done: the next poll reads nothing again
    finally:
        repo.close()
        client.close()
