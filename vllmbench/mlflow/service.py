"""The MLflow service's use cases, built from the settings: what the function's handlers call."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from vllmbench.errors import DependencyUnavailable, VllmbenchError
from vllmbench.logs import get_logger
from vllmbench.mlflow import webhooks
from vllmbench.mlflow.client import MlflowClient
from vllmbench.mlflow.poll import Poller
from vllmbench.mlflow.repository import ConfigRepository
from vllmbench.store.mlflow import MlflowStore, PollBusy

log = get_logger("vllmbench.mlflow")


def client(settings: Any) -> MlflowClient:
    url = settings.mlflow_tracking_uri.strip()
    if not url:
        raise DependencyUnavailable("mlflow", "MLFLOW_TRACKING_URI is not set (the tracking server's http(s) URL)")
    if not url.startswith(("http://", "https://")):
        raise DependencyUnavailable("mlflow", "MLFLOW_TRACKING_URI must be the http(s) URL of a tracking server, "
                                              "not a local store")
    token = settings.mlflow_tracking_token.get_secret_value() if settings.mlflow_tracking_token else None
    password = settings.mlflow_tracking_password.get_secret_value() if settings.mlflow_tracking_password else None
    return MlflowClient(url, token=token, username=settings.mlflow_tracking_username or None, password=password,
                        timeout_s=settings.mlflow_timeout_s)


def _secret(settings: Any) -> str | None:
    return settings.mlflow_webhook_secret.get_secret_value() if settings.mlflow_webhook_secret else None


def poll(settings: Any, db: Any, emit: Callable[..., bool], *, trigger: str, model: str | None = None,
         versions: tuple[int, ...] = (), full: bool = False, wait_s: float = 0) -> dict[str, Any]:
    """One poll (see :mod:`vllmbench.mlflow.poll`), and our webhook kept registered."""
    mlflow, store = client(settings), MlflowStore(db)
    repo = ConfigRepository.from_settings(settings)
    try:
        poller = Poller(mlflow, store, repo, emit=emit, max_writes=settings.mlflow_max_writes)
        outcome = poller.poll(trigger=trigger, model=model, versions=versions, full=full,
                              resync_s=settings.mlflow_resync_s, wait_s=wait_s)
    finally:
        repo.close()
    if model is None:
        known = store.status().get("webhook") or {}
        store.update_status(webhook=webhooks.ensure_registered(mlflow, url=settings.mlflow_webhook_url,
                                                               secret=_secret(settings), known=known))
    return outcome


def tick(settings: Any, db: Any, emit: Callable[..., bool]) -> dict[str, Any]:
    """A PingSource tick: poll when the last good poll is older than the interval.

    A failure is recorded and answered 2xx: the next tick (a minute later) is the retry,
    not a burst of broker redeliveries.
    """
    status = MlflowStore(db).status()
    last = status.get("last_success_at")
    age = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(last)).total_seconds() if last else None
    if age is not None and age < settings.mlflow_poll_interval_s:
        return {"polled": False, "reason": f"the last poll was {age:.0f} s ago; the interval is "
                                           f"{settings.mlflow_poll_interval_s} s"}
    try:
        return {"polled": True, **poll(settings, db, emit, trigger="tick")}
    except PollBusy as exc:
        return {"polled": False, "reason": exc.message}
    except VllmbenchError as exc:
        log.warning("MLflow poll on a tick failed (the next tick retries): %s", exc.message)
        return {"polled": False, "error": exc.message, "retry": "on the next tick"}


def connections(settings: Any, db: Any) -> dict[str, Any]:
    """What the service reaches, and what it last did (GET /connections)."""
    store = MlflowStore(db)
    status = store.status()
    mlflow: dict[str, Any] = {"url": settings.mlflow_tracking_uri or None, "reachable": False}
    started = time.perf_counter()
    try:
        mlflow["version"] = client(settings).server_version()
        mlflow["reachable"] = True
        mlflow["ms"] = round((time.perf_counter() - started) * 1000, 1)
    except VllmbenchError as exc:
        mlflow["error"] = exc.message
    git: dict[str, Any] = {"url": None, "branch": settings.gitops_branch, "reachable": False}
    try:
        repo = ConfigRepository.from_settings(settings)
        git["url"] = repo.public
        try:
            git["head"] = repo.head()
            git["reachable"] = True
        finally:
            repo.close()
    except VllmbenchError as exc:
        git["error"] = exc.message
    seen = store.models()
    return {
        "mlflow": mlflow, "git": git,
        "registered_models_seen": len(seen), "models": [m.name for m in seen][:100],
        "models_refused": len([m for m in seen if m.refused]),
        "rules": status.get("rules") or {"count": 0},
        "last_poll": status.get("last_poll"), "last_success_at": status.get("last_success_at"),
        "last_full_at": status.get("last_full_at"), "last_error": status.get("last_error"),
        "webhook": status.get("webhook") or {"registered": False, "reason": "not checked yet (after the first poll)"},
        "poll_interval_s": settings.mlflow_poll_interval_s,
    }
