"""MLflow down (before and during a poll), the tick retrying, a push race, bad webhooks."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.functions.mlflow.conftest import Setup
from vllmbench.embedded.processes import free_port
from vllmbench.mlflow.signature import sign

PING_SOURCE = "/apis/v1/namespaces/vllmbench/pingsources/mlflow-poll"


class CuttableProxy:
    """Forwards to MLflow until ``cut()``; then every request finds a closed connection,
    as when the server dies mid-poll."""

    def __init__(self, target: str) -> None:
        self.target, self.forwarded, self.cut_after = target, 0, None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                if proxy.cut_after is not None and proxy.forwarded >= proxy.cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    return
                proxy.forwarded += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                request = urllib.request.Request(proxy.target + self.path, data=body, method=self.command,
                                                 headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _relay  # noqa: N815

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tick(fn, event_id: str):
    event = CloudEvent({"id": event_id, "source": PING_SOURCE, "type": "dev.knative.sources.ping"},
                       {"job": "mlflow-poll"})
    headers, body = to_binary(event)
    return fn.post("/events", data=body, headers=headers)


def test_mlflow_down_is_503_with_retry_after_and_nothing_is_written(setup: Setup):
    model = setup.mlflow.name("down")
    setup.rule("down", {"models": [model]})
    before = setup.log()
    fn = setup.function(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    answer = fn.post("/poll")
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert answer.json()["dependency"] == "mlflow"
    assert setup.log() == before
    connections = fn.get("/connections").json()
    assert connections["mlflow"]["reachable"] is False and "cannot be reached" in connections["mlflow"]["error"]
    assert connections["git"]["reachable"] is True
    assert "mlflow is unavailable" in connections["last_error"]["message"]
    assert fn.get("/ready").status_code == 200  # it still serves: /poll answers 503, the tick retries


def test_mlflow_dying_mid_poll_leaves_every_version_done_or_untouched(setup: Setup):
    model = setup.mlflow.name("mid")
    setup.rule("mid", {"models": [model]})
    setup.mlflow.create_model(model)
    for i in range(1, 5):
        setup.mlflow.create_version(model, f"s3://b/{i}")
    proxy = CuttableProxy(setup.mlflow.url)
    try:
        fn = setup.function(mlflow_tracking_uri=proxy.url)
        # get-model, a page of versions, then get-version per version (no runs): MLflow dies at version 3
        proxy.cut_after = 4
        answer = fn.post("/poll")
        assert answer.status_code == 503
        assert [line.split(" ", 1)[1] for line in setup.log()[:2]] == [
            f"MLflow: {model} version 2 as ModelServer default/{model}-v2",
            f"MLflow: {model} version 1 as ModelServer default/{model}-v1"]
        assert fn.get("/models").json()["models"][0]["cursor"] == 2
        proxy.cut_after = None
        resumed = fn.post("/poll").json()
        assert [w["version"] for w in resumed["written"]] == [3, 4]
        assert len(setup.mlflow_commits()) == 4  # each version once
    finally:
        proxy.close()


def test_a_tick_while_mlflow_is_down_is_answered_and_the_next_tick_retries(setup: Setup):
    model = setup.mlflow.name("tick")
    setup.rule("tick", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")
    proxy = CuttableProxy(setup.mlflow.url)
    try:
        proxy.cut_after = 0
        fn = setup.function(mlflow_tracking_uri=proxy.url, mlflow_poll_interval_s=3600)
        first = _tick(fn, "tick-1")
        assert first.status_code == 202  # no redelivery storm: the next tick is the retry
        assert first.json()["outcome"]["polled"] is False and "mlflow" in first.json()["outcome"]["error"]
        assert setup.mlflow_commits() == []
        proxy.cut_after = None
        second = _tick(fn, "tick-2").json()["outcome"]
        assert second["polled"] is True and [w["version"] for w in second["written"]] == [1]
        third = _tick(fn, "tick-3").json()["outcome"]  # a good poll a moment ago: not due for an hour
        assert third["polled"] is False and "interval is 3600 s" in third["reason"]
        assert _tick(fn, "tick-3").json()["status"] == "duplicate"
    finally:
        proxy.close()


RACING_HOOK = """#!/bin/sh
# The first push meets another writer's push that landed a moment before it.
cat > /dev/null
[ -e "$GIT_DIR/raced" ] && exit 0
touch "$GIT_DIR/raced"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
old=$(git rev-parse refs/heads/main)
blob=$(echo "someone: else" | git hash-object -w --stdin)
tree=$( (git ls-tree "$old"; printf '100644 blob %s\\tother-writer.yaml\\n' "$blob") | git mktree)
new=$(GIT_AUTHOR_NAME=Other GIT_AUTHOR_EMAIL=o@x GIT_COMMITTER_NAME=Other GIT_COMMITTER_EMAIL=o@x \\
      git commit-tree "$tree" -p "$old" -m "another writer")
git update-ref refs/heads/main "$new" "$old"
"""


def test_a_push_race_with_another_writer_is_replayed_never_forced(setup: Setup):
    model = setup.mlflow.name("race")
    setup.rule("race", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")
    hook = Path(setup.remote) / "hooks" / "pre-receive"
    hook.write_text(RACING_HOOK)
    hook.chmod(0o755)
    fn = setup.function()
    outcome = fn.post("/poll")
    assert outcome.status_code == 200, outcome.text
    assert (Path(setup.remote) / "raced").exists(), "the hook never raced the push"
    subjects = [line.split(" ", 1)[1] for line in setup.log()]
    assert subjects[:2] == [f"MLflow: {model} version 1 as ModelServer default/{model}-v1", "another writer"]
    assert setup.show("other-writer.yaml") == "someone: else"
    assert setup.show(f"models/default/{model}-v1.yaml")


def test_a_webhook_with_a_bad_or_old_signature_is_401_and_changes_nothing(setup: Setup):
    model = setup.mlflow.name("sig")
    setup.rule("sig", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")
    fn = setup.with_webhook()
    body = json.dumps({"entity": "model_version", "action": "created", "timestamp": "2026-12-01T00:00:00Z",
                       "data": {"name": model, "version": "1", "source": "s3://b/1"}}).encode()
    now = str(int(time.time()))
    cases = {
        "wrong secret": {"X-MLflow-Signature": sign("not-the-secret", "d1", now, body), "X-MLflow-Timestamp": now,
                         "X-MLflow-Delivery-Id": "d1"},
        "no signature": {"X-MLflow-Timestamp": now, "X-MLflow-Delivery-Id": "d2"},
        "body changed": {"X-MLflow-Signature": sign("whsec-test-only", "d3", now, body + b" "),
                         "X-MLflow-Timestamp": now, "X-MLflow-Delivery-Id": "d3"},
        "too old": {"X-MLflow-Signature": sign("whsec-test-only", "d4", str(int(now) - 3600), body),
                    "X-MLflow-Timestamp": str(int(now) - 3600), "X-MLflow-Delivery-Id": "d4"},
    }
    for case, headers in cases.items():
        answer = fn.post("/webhooks/mlflow", data=body, headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 401, case
        assert "whsec-test-only" not in answer.text
    assert "over the 300 s allowed" in answer.json()["message"]
    assert setup.mlflow_commits() == [] and fn.get("/models").json()["count"] == 0
    good = {"X-MLflow-Signature": sign("whsec-test-only", "d5", now, body), "X-MLflow-Timestamp": now,
            "X-MLflow-Delivery-Id": "d5", "Content-Type": "application/json"}
    accepted = fn.post("/webhooks/mlflow", data=body, headers=good)
    assert accepted.status_code == 200 and len(accepted.json()["outcome"]["written"]) == 1
    again = fn.post("/webhooks/mlflow", data=body, headers=good)  # MLflow retried the same delivery
    assert again.json()["status"] == "duplicate" and len(setup.mlflow_commits()) == 1
