"""benchmark-mlflow (port 8003): follow the MLflow model registry, write ModelServers for new
versions to Git, and write evaluation verdicts back to the versions (docs/mlflow.md).

functions-framework --target=handle --source=functions/mlflow_poll/main.py --port=8003
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.mlflow import EvalCompleted, VersionsQuery

# Models, the MLflow adapter and git load on the first request that needs them (cold start);
# `mlflow` itself is never imported: its REST API is plain HTTP.
MODELS = "vllmbench.models.mlflow"

app = FunctionApp(
    "mlflow_poll", service="benchmark-mlflow", port=8003, title="benchmark-mlflow",
    description="Follow the MLflow model registry (polling and webhooks): rules in Git turn new model versions "
                "into ModelServer commits; evaluation verdicts go back to the versions as tags.",
)
handle = app.handle

EVAL_COMPLETED = "dev.vllmbench.eval.completed"
WEBHOOK_SOURCE = "mlflow-webhook"


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store.mlflow import ensure_indexes

    ensure_indexes(ctx.db)


# /ready checks the database only: MLflow or Git being down is an answer this function gives
# (503 on /poll, the tick retrying, GET /connections), not a reason to take it out of service.


def _store(ctx: Context) -> Any:
    from vllmbench.store.mlflow import MlflowStore

    return MlflowStore(ctx.db)


# -- polling ------------------------------------------------------------------------------

@app.route("POST", "/poll", raw_body=True, tag="poll")
def poll(ctx: Context, body: bytes) -> Any:
    """Poll MLflow now: new versions of the followed models become ModelServer commits.

    Optional JSON body ``{"model": name, "full": true}``: one model only; read every version again.
    """
    from vllmbench.mlflow.service import poll as run_poll
    from vllmbench.models.mlflow import PollRequest
    from vllmbench.web.bodies import parse_json, validate

    given = parse_json(body, max_depth=ctx.settings.max_json_depth) if body.strip() else {}
    request: PollRequest = validate(PollRequest, given, where="body")
    return run_poll(ctx.settings, ctx.db, ctx.emit, trigger="manual", model=request.model, full=request.full,
                    wait_s=30)


@app.event("dev.knative.sources.ping")
def on_tick(ctx: Context, event: Any, data: Any) -> Any:
    """PingSource tick (``{"job": "mlflow-poll"}``): poll when the interval has passed since the last good poll."""
    from vllmbench.mlflow.service import tick

    return tick(ctx.settings, ctx.db, ctx.emit)


@app.route("POST", "/webhooks/mlflow", raw_body=True, public=True, tag="webhooks")
def mlflow_webhook(ctx: Context, body: bytes) -> Reply:
    """MLflow registry webhooks (model_version.created, aliases, tags), authenticated by X-MLflow-Signature."""
    from vllmbench.mlflow import signature, webhooks
    from vllmbench.mlflow.service import poll as run_poll
    from vllmbench.store.events import Claim, EventLedger

    headers = ctx.request.headers
    secret = ctx.settings.mlflow_webhook_secret
    delivery = headers.get(signature.DELIVERY_HEADER)
    signature.verify(secret.get_secret_value() if secret else None, signature=headers.get(signature.SIGNATURE_HEADER),
                     timestamp=headers.get(signature.TIMESTAMP_HEADER), delivery_id=delivery, body=body,
                     now=time.time(), tolerance_s=ctx.settings.mlflow_webhook_tolerance_s)
    payload = webhooks.parse(body)
    # A delivery MLflow retries is answered once, like a CloudEvent redelivered (the same claim).
    ledger = EventLedger(ctx.db, ttl_s=ctx.settings.event_dedupe_ttl_s, claim_s=ctx.settings.event_claim_s,
                         wait_s=ctx.settings.event_claim_wait_s)
    claim = ledger.acquire(WEBHOOK_SOURCE, str(delivery), payload.event)
    if not isinstance(claim, Claim):
        return Reply({"status": "duplicate", "delivery": delivery, "outcome": claim.get("outcome", {})}, 200)
    with claim:
        model, versions = webhooks.targets(payload)
        if model is None:
            outcome: dict[str, Any] = {"ignored": f"{payload.event} is not an event this service acts on"}
        else:
            outcome = run_poll(ctx.settings, ctx.db, ctx.emit, trigger=f"webhook {payload.event}", model=model,
                               versions=versions, wait_s=20)
            if not outcome["models"]:
                outcome = {"ignored": f"no rule follows the registered model {model!r}"}
    claim.complete(outcome)
    return Reply({"status": "accepted", "delivery": delivery, "event": payload.event, "outcome": outcome}, 200)


# -- what it sees ---------------------------------------------------------------------------

@app.route("GET", "/connections", tag="status")
def connections(ctx: Context) -> Any:
    """MLflow (reachable, version), Git (reachable, head), models seen, the last poll and error, the webhook."""
    from vllmbench.mlflow.service import connections as describe

    return describe(ctx.settings, ctx.db)


@app.route("GET", "/models", tag="models")
def list_models(ctx: Context) -> Any:
    """The registered models followed here: Kubernetes name (or why refused), cursor, aliases, rule."""
    models = _store(ctx).models()
    return {"count": len(models), "models": models}


@app.route("GET", "/models/<name>/versions", query=f"{MODELS}:VersionsQuery", tag="models")
def list_versions(ctx: Context, name: str, query: VersionsQuery) -> Any:
    """A model's versions as seen (source, run with params and metrics, tags, aliases) and what was written."""
    from vllmbench.store.mlflow import require_model

    store = _store(ctx)
    model = require_model(store, name)
    versions = store.versions(name, limit=query.limit, before=query.before)
    page: dict[str, Any] = {"model": model, "count": len(versions), "versions": versions, "next_before": None}
    if len(versions) == query.limit:
        page["next_before"] = versions[-1].version
    return page


@app.route("GET", "/models/<name>/versions/<int:version>", tag="models")
def get_version(ctx: Context, name: str, version: int) -> Any:
    """One version as seen, with its files in Git and the verdict written back."""
    from vllmbench.errors import NotFound

    found = _store(ctx).version(name, version)
    if found is None:
        raise NotFound(f"version {version} of {name!r} has not been seen; GET /models/{name}/versions lists those that were")
    return found


# -- the verdict, back to MLflow ------------------------------------------------------------

@app.event(EVAL_COMPLETED, data=f"{MODELS}:EvalCompleted")
def on_eval_completed(ctx: Context, event: Any, data: EvalCompleted) -> Any:
    """An evaluation finished: its verdict and key figures become tags on the model version (and an alias may move)."""
    import uuid

    from vllmbench.mlflow.service import client
    from vllmbench.mlflow.writeback import write_back

    store = _store(ctx)
    holder = uuid.uuid4().hex
    store.acquire(holder, wait_s=20)  # a poll saving the same version must not overwrite the write-back
    try:
        return write_back(lambda: client(ctx.settings), store, data, eval_url=ctx.settings.eval_url,
                          results_url=ctx.settings.results_url)
    finally:
        store.release(holder)
