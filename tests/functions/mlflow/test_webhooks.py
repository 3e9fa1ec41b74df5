"""Registry webhooks delivered by the real MLflow server (http to loopback is allowed by the
session server's MLFLOW_WEBHOOK_ALLOWED_SCHEMES and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.functions.mlflow.conftest import WEBHOOK_SECRET, Setup


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def _registered(setup: Setup, fn) -> dict:
    assert fn.post("/poll").status_code == 200  # the first poll registers the webhook
    webhook = fn.get("/connections").json()["webhook"]
    assert webhook["registered"] is True, webhook
    time.sleep(1.2)  # the session server caches its webhook list for a second
    return webhook


def test_a_version_registered_in_mlflow_reaches_git_through_the_webhook_without_a_poll(setup: Setup):
    model = setup.mlflow.name("hooked")
    setup.rule("hooked", {"models": [model], "follow_aliases": ["prod"]})
    setup.mlflow.create_model(model)
    fn = setup.with_webhook(mlflow_poll_interval_s=3600)
    webhook = _registered(setup, fn)
    assert "model_version.created" in webhook["events"]
    assert [h["url"] for h in setup.mlflow.webhooks()] == [f"{fn.url}/webhooks/mlflow"]
    assert WEBHOOK_SECRET not in fn.get("/connections").text  # a fingerprint of it, never the secret

    setup.mlflow.create_version(model, "s3://b/1")
    _wait(lambda: len(setup.mlflow_commits()) == 1, "the commit of version 1")
    assert setup.mlflow_commits()[0].startswith(f"MLflow: {model} version 1 as ModelServer")
    setup.mlflow.set_alias(model, "prod", 1)
    _wait(lambda: f"models/default/{model}-prod.yaml" in setup.files(), "the alias file")
    assert len(setup.mlflow_commits()) == 2
    status = fn.get("/connections").json()
    assert status["last_poll"]["trigger"].startswith("webhook "), status  # no tick ran: the interval is an hour


def test_the_poll_keeps_one_webhook_registered_and_repairs_it(setup: Setup):
    fn = setup.with_webhook()
    first = _registered(setup, fn)
    fn.post("/poll")
    hooks = setup.mlflow.webhooks()
    assert len(hooks) == 1 and hooks[0]["webhook_id"] == first["id"]
    setup.mlflow.call("PATCH", f"/webhooks/{first['id']}", {"status": "DISABLED"})  # someone switched it off
    fn.post("/poll")
    hooks = setup.mlflow.webhooks()
    assert len(hooks) == 1 and hooks[0]["status"] == "ACTIVE"


def test_deliveries_signed_with_another_secret_are_refused(setup: Setup):
    model = setup.mlflow.name("wrong")
    setup.rule("wrong", {"models": [model]})
    setup.mlflow.create_model(model)
    fn = setup.with_webhook()
    webhook = _registered(setup, fn)
    tested = setup.mlflow.call("POST", f"/webhooks/{webhook['id']}/test", {})["result"]
    assert tested["response_status"] == 200 and "no rule follows" in tested["response_body"]  # example_model
    setup.mlflow.call("PATCH", f"/webhooks/{webhook['id']}", {"secret": "someone-elses-secret"})
    tested = setup.mlflow.call("POST", f"/webhooks/{webhook['id']}/test", {})["result"]
    assert tested["response_status"] == 401 and "signature does not match" in tested["response_body"]
    time.sleep(1.2)
    setup.mlflow.create_version(model, "s3://b/1")  # delivered with the wrong signature: nothing happens
    time.sleep(2)
    assert setup.mlflow_commits() == []
    assert fn.post("/poll").json()["written"][0]["version"] == 1  # the poll is the backstop
