"""MLflow's registry webhooks (MLflow >= 3.3): keeping ours registered, reading deliveries.

Our webhook is registered on MLflow when ``VLLMBENCH_MLFLOW_WEBHOOK_URL`` and
``VLLMBENCH_MLFLOW_WEBHOOK_SECRET`` are set (MLflow needs
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` to keep a secret across restarts, and
``MLFLOW_WEBHOOK_ALLOWED_SCHEMES`` / ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`` for http or
in-cluster targets). A delivery names a registered model; it triggers a poll of that
model only. MLflow delivers fire and forget (three retries, no log), so the PingSource
poll stays the backstop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pydantic import ValidationError

from vllmbench.errors import UserError, ValidationFailed, VllmbenchError
from vllmbench.mlflow.client import MlflowClient
from vllmbench.models.mlflow import WebhookPayload

NAME = "vllmbench"
EVENTS = [("REGISTERED_MODEL", "CREATED"), ("MODEL_VERSION", "CREATED"), ("MODEL_VERSION_TAG", "SET"),
          ("MODEL_VERSION_TAG", "DELETED"), ("MODEL_VERSION_ALIAS", "CREATED"), ("MODEL_VERSION_ALIAS", "DELETED")]
HANDLED = {f"{entity}.{action}".lower() for entity, action in EVENTS}


def fingerprint(url: str, secret: str) -> str:
    """Tells whether the registered webhook is the one configured now, without storing the secret."""
    events = ",".join(f"{e}.{a}" for e, a in EVENTS)
    return hmac.new(secret.encode(), f"{url}\n{events}".encode(), hashlib.sha256).hexdigest()[:16]


def ensure_registered(client: MlflowClient, *, url: str, secret: str | None, known: dict[str, Any]) -> dict[str, Any]:
    """Our webhook on MLflow, created or updated when needed; its state for GET /connections."""
    if not url or not secret:
        return {"registered": False, "reason": "VLLMBENCH_MLFLOW_WEBHOOK_URL and VLLMBENCH_MLFLOW_WEBHOOK_SECRET "
                                               "are not both set; polling only"}
    wanted = fingerprint(url, secret)
    try:
        existing = [w for w in client.list_webhooks() if w.get("name") == NAME]
    except VllmbenchError as exc:
        return {"registered": False, "url": url, "reason": f"this MLflow cannot list webhooks: {exc.message}"}
    body = {"name": NAME, "url": url, "secret": secret, "status": "ACTIVE",
            "description": "vllmbench: new model versions become ModelServers in Git",
            "events": [{"entity": entity, "action": action} for entity, action in EVENTS]}
    mine = next((w for w in existing if w.get("url") == url), existing[0] if existing else None)
    try:
        if mine is None:
            mine = client.create_webhook(body)
        elif known.get("fingerprint") != wanted or known.get("id") != mine.get("webhook_id") \
                or mine.get("status") != "ACTIVE":
            mine = client.update_webhook(mine["webhook_id"], body)
    except VllmbenchError as exc:
        return {"registered": False, "url": url, "reason": f"MLflow did not take the webhook: {exc.message}"}
    return {"registered": True, "id": mine.get("webhook_id"), "url": url, "status": mine.get("status"),
            "events": [f"{e}.{a}".lower() for e, a in EVENTS], "fingerprint": wanted}


def parse(body: bytes) -> WebhookPayload:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UserError(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UserError("the webhook body must be a JSON object {entity, action, timestamp, data}")
    try:
        return WebhookPayload.model_validate(document)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_url=False))
        raise ValidationFailed(f"not an MLflow webhook payload {{entity, action, timestamp, data}}: {fields}") from exc


def targets(payload: WebhookPayload) -> tuple[str | None, tuple[int, ...]]:
    """(registered model, versions to read again) a delivery is about; (None, ()) for others."""
    if payload.event not in HANDLED:
        return None, ()
    name = payload.data.get("name")
    if not isinstance(name, str) or not name:
        return None, ()
    try:
        version = int(payload.data.get("version") or 0)
    except (TypeError, ValueError):
        version = 0
    return name, (version,) if version > 0 else ()
