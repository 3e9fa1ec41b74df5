"""Shared set-up of the MLflow service's tests: a GitOps remote with rules, the function
served against the session's real MLflow server, and a broker that records events."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.functions import ServedFunction
from tests.fixtures.mlflow_rest import MlflowRest
from tests.integration.gitops import gitutil
from tests.integration.gitops.gitutil import Person, make_remote
from vllmbench.mlflow.server import MlflowServer
from vllmbench.settings import load_settings

WEBHOOK_SECRET = "whsec-test-only"  # a test value, never a real one


class RecordingBroker:
    """Stands in for the broker: records the events a function emits (nothing is relayed)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                broker.events.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Setup:
    remote: Path
    person: Person
    mlflow: MlflowRest
    broker: RecordingBroker
    serve: Callable[..., ServedFunction]
    settings: dict[str, Any]

    def rule(self, name: str, rule: dict[str, Any], *, folder: str = "mlflow") -> str:
        """Commit a rule file as a person would; returns its path."""
        path = f"{folder}/{name}.yaml"
        self.person.commit({path: yaml.safe_dump(rule, sort_keys=False)}, f"rule {name}")
        return path

    def function(self, **overrides: Any) -> ServedFunction:
        return self.serve("mlflow_poll", **{**self.settings, **overrides})

    def with_webhook(self, secret: str = WEBHOOK_SECRET, **overrides: Any) -> ServedFunction:
        """The function with its webhook URL (known once it listens) and secret."""
        served = self.function(mlflow_webhook_secret=secret, **overrides)
        self.settings = {**self.settings, "mlflow_webhook_secret": secret,
                         "mlflow_webhook_url": f"{served.url}/webhooks/mlflow", **overrides}
        served.app.configure(load_settings(**self.settings))
        return served

    def log(self) -> list[str]:
        return gitutil.log(self.remote)

    def mlflow_commits(self) -> list[str]:
        return gitutil.git("--git-dir", str(self.remote), "log", "--author=vllmbench-mlflow", "--format=%s",
                           "main").splitlines()

    def show(self, path: str) -> str:
        return gitutil.show(self.remote, path)

    def files(self, folder: str = "models") -> list[str]:
        out = gitutil.git("--git-dir", str(self.remote), "ls-tree", "-r", "--name-only", "main", "--", folder)
        return sorted(out.splitlines())


@pytest.fixture
def setup(tmp_path: Path, serve_function: Callable[..., ServedFunction], mlflow_server: MlflowServer,
          mlflow: MlflowRest, mongo_url: str, database_name: str) -> Iterator[Setup]:
    remote = make_remote(tmp_path / "gitops.git", {"README.md": "config\n"})
    broker = RecordingBroker()
    settings = {"gitops_repo_url": str(remote), "git_cache_dir": tmp_path / "cache", "data_dir": tmp_path,
                "mlflow_tracking_uri": mlflow_server.url, "broker_url": broker.url, "mlflow_timeout_s": 5,
                "mongo_url": mongo_url, "database": database_name, "mongo_timeout_ms": 1500}
    yield Setup(remote, Person(remote, tmp_path / "person"), mlflow, broker, serve_function, settings)
    broker.close()
    for hook in mlflow.webhooks():  # the server outlives the test: its webhooks must not
        mlflow.delete_webhook(hook["webhook_id"])
