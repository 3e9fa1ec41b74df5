"""Each function logs in as its own database user, read from its mounted Secret, against
a MongoDB-wire server with authentication on (FerretDB v1's experimental auth).

FerretDB v1 authenticates users (SCRAM) but neither stores nor enforces roles, so what
this test can see is the wiring: the users of manifests/base/mongodb/users.yaml, each
function's Secret files, the login, and a 503 naming the database for a wrong password.
That each user's roles cover its own database and no other is checked over the rendered
manifests (tests/k8s/test_mongodb_users.py); a real MongoDB enforces them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pymongo
import pytest
import yaml

from tests.fixtures.functions import start_function
from tests.fixtures.records import raw
from vllmbench.embedded.ferretdb import FerretDB
from vllmbench.embedded.processes import free_port
from vllmbench.settings import FUNCTION_DATABASES

REPO = Path(__file__).resolve().parents[2]
ROOT = ("root", f"root-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def authenticated_db(tmp_path_factory: pytest.TempPathFactory):
    server = FerretDB(tmp_path_factory.mktemp("ferretdb-auth"), free_port(), auth=ROOT).start()
    yield server
    server.stop()


def _manifest_users() -> list[dict]:
    config = yaml.safe_load((REPO / "manifests" / "base" / "mongodb" / "users.yaml").read_text())
    return json.loads(config["data"]["users.json"])


@pytest.fixture(scope="module")
def users(authenticated_db, tmp_path_factory) -> dict[str, Path]:
    """function -> a folder laid out like its mounted Secret, its user created by root."""
    root = pymongo.MongoClient(authenticated_db.url, username=ROOT[0], password=ROOT[1], authSource="admin",
                               serverSelectionTimeoutMS=5000)
    folders = {}
    for entry in _manifest_users():
        name, password = f"{entry['function'].replace('_', '-')}-user", uuid.uuid4().hex
        root.admin.command("createUser", name, pwd=password, roles=[])  # FerretDB v1: no roles
        folder = tmp_path_factory.mktemp(entry["secret"])
        (folder / "MONGO_USERNAME").write_text(name + "\n")  # as a Secret volume lays out its keys
        (folder / "MONGO_PASSWORD").write_text(password + "\n")
        folders[entry["function"]] = folder
    root.close()
    return folders


@pytest.mark.parametrize("function", sorted(FUNCTION_DATABASES))
def test_each_function_logs_in_as_its_own_user_from_its_secret(authenticated_db, users, monkeypatch, function):
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(users[function]))
    served, stop = start_function(function, mongo_url=authenticated_db.url, mongo_timeout_ms=2000)
    try:
        assert served.app.runtime.settings.database_for(function) == FUNCTION_DATABASES[function]
        ready = served.get("/ready")
        assert ready.status_code == 200, ready.text
        db = served.app.runtime.database()  # the function's own client and database
        db["login_probe"].insert_one({"_id": "probe"})
        assert db["login_probe"].find_one({"_id": "probe"}) is not None
        if function == "results":
            assert served.post("/raw_input", json=raw("auth-run")).status_code == 201
            assert served.get("/runs/auth-run").status_code == 200
    finally:
        stop()


def test_a_wrong_password_is_503_naming_the_database_and_never_echoes_it(authenticated_db, users, monkeypatch, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "MONGO_USERNAME").write_text((users["results"] / "MONGO_USERNAME").read_text())
    (wrong / "MONGO_PASSWORD").write_text("not-the-password-123")
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(wrong))
    served, stop = start_function("results", mongo_url=authenticated_db.url, mongo_timeout_ms=1500)
    try:
        for response in (served.get("/ready"), served.post("/raw_input", json=raw("refused"))):
            assert response.status_code == 503, response.text
            assert "mongodb" in response.text and "not-the-password-123" not in response.text
            assert response.headers["Retry-After"]
    finally:
        stop()


def test_without_credentials_nothing_is_written(authenticated_db, monkeypatch, tmp_path):
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(tmp_path / "none"))
    served, stop = start_function("results", mongo_url=authenticated_db.url, mongo_timeout_ms=1500)
    try:
        assert served.post("/raw_input", json=raw("anonymous")).status_code == 503
    finally:
        stop()
