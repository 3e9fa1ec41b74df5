"""benchmark-eval (port 8004): evaluations, one-off and scheduled, templates from Git, the run lifecycle, verdicts.

functions-framework --target=handle --source=functions/eval/main.py --port=8004
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.evaluations import CancelBody, EvaluateRequest, EvaluationQuery

# Models, git, the engine and the runtimes load on first use, not at import (cold start).
MODELS = "vllmbench.models.evaluations"

app = FunctionApp(
    "eval", service="benchmark-eval", port=8004, title="benchmark-eval",
    description="Evaluations: benchmark a ModelServer (or a URL) with a profile and a template from Git, now, "
                "later or on a schedule; follow the run from request to verdict against a baseline.",
)
handle = app.handle


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store import evaluations, reconcile

    evaluations.ensure_indexes(ctx.db)
    reconcile.ensure_indexes(ctx.db)


def _runtime(ctx: Context) -> Any:
    from vllmbench.runtimes import open_runtime

    return ctx.runtime.resource("workloads", lambda: open_runtime(ctx.settings))


def _service(ctx: Context, name: str, url: str) -> Any:
    from vllmbench.services import Service

    token = ctx.settings.api_token.get_secret_value() if ctx.settings.api_token else None
    return Service(name, url, token=token)


def _evaluator(ctx: Context) -> Any:
    from vllmbench.evals.runner import Evaluator
    from vllmbench.evals.servers import VllmServers

    servers = VllmServers(_service(ctx, "benchmark-vllm", ctx.settings.vllm_url))
    return Evaluator(ctx.settings, ctx.db, runtime=lambda: _runtime(ctx), emit=ctx.emit, servers=servers)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


# -- requests ---------------------------------------------------------------------------

@app.route("GET", "/", tag="evaluations")
def status(ctx: Context) -> Any:
    """The service's status: evaluations by state (the original service's status answer)."""
    from vllmbench.store.evaluations import Evaluations

    counts: dict[str, int] = {}
    for doc in Evaluations(ctx.db).active():
        counts[doc["state"]] = counts.get(doc["state"], 0) + 1
    return {"service": "benchmark-eval", "status": "running", "active": counts,
            "runtime": _runtime(ctx).describe()}


@app.route("POST", "/evaluate", body=f"{MODELS}:EvaluateRequest", status=202, tag="evaluations")
def evaluate(ctx: Context, body: EvaluateRequest) -> Reply:
    """Check everything (project, profile, template, server), store the evaluation, start it (202)."""
    ev, created = _start(ctx, body)
    return Reply(_view(ctx, ev) | {"created": created}, 202, {"Location": f"/evaluations/{ev['_id']}"})


def _start(ctx: Context, body: Any, *, schedule: str | None = None, evaluation_id: str | None = None) -> Any:
    from vllmbench.evals.prepare import prepare
    from vllmbench.store.evaluations import Evaluations

    manager = _service(ctx, "benchmark-manager", ctx.settings.manager_url)
    ev = prepare(ctx.settings, body, now=_now(), manager=manager, schedule=schedule, evaluation_id_=evaluation_id)
    stored, created = Evaluations(ctx.db).create(ev)
    if created:
        stored = _evaluator(ctx).apply(stored["_id"], {"id": "start", "type": "start"})
    return stored, created


@app.route("GET", "/evaluations", query=f"{MODELS}:EvaluationQuery", tag="evaluations")
def list_evaluations(ctx: Context, query: EvaluationQuery) -> Any:
    """Evaluations, newest first; filter by project, state, schedule or verdict; page with before=<created_at>."""
    from vllmbench.store.evaluations import Evaluations

    selector: dict[str, Any] = {}
    for field in ("project", "state", "schedule"):
        if getattr(query, field):
            selector[field] = getattr(query, field)
    if query.verdict:
        selector["verdict.verdict"] = query.verdict
    docs = Evaluations(ctx.db).list(query=selector, limit=query.limit, before=query.before)
    items = [_summary(doc) for doc in docs]
    more = len(docs) == query.limit
    return {"count": len(items), "items": items,
            "next_before": items[-1]["created_at"] if more and items else None}


@app.route("GET", "/evaluations/<evaluation_id>", tag="evaluations")
def get_evaluation(ctx: Context, evaluation_id: str) -> Any:
    """One evaluation: its timeline with reasons, jobs and their logs, result ids, the verdict."""
    from vllmbench.store.evaluations import Evaluations

    return _view(ctx, Evaluations(ctx.db).get(evaluation_id))


@app.route("DELETE", "/evaluations/<evaluation_id>", tag="evaluations")
def cancel(ctx: Context, evaluation_id: str) -> Any:
    """Cancel: its jobs are stopped, what was stored is kept."""
    ev = _evaluator(ctx).apply(evaluation_id, {"id": "cancel", "type": "cancel",
                                               "reason": "cancelled through DELETE /evaluations"})
    return _view(ctx, ev)


@app.route("POST", "/evaluations/<evaluation_id>/cancel", body=f"{MODELS}:CancelBody", tag="evaluations")
def cancel_with_reason(ctx: Context, evaluation_id: str, body: CancelBody) -> Any:
    """Cancel with a reason of your own."""
    return _view(ctx, _evaluator(ctx).apply(evaluation_id, {"id": "cancel", "type": "cancel", "reason": body.reason}))


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    request = doc["request"]
    return {"id": doc["_id"], "state": doc["state"], "project": request["project"], "benchmark": request["benchmark"],
            "server": doc.get("server"), "target_url": doc.get("target_url"), "schedule": doc.get("schedule"),
            "repeats": len(doc["repeats"]), "verdict": (doc.get("verdict") or {}).get("verdict"),
            "reason": doc.get("reason"), "created_at": doc.get("created_at"), "at": doc.get("at")}


def _view(ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
    namespace = doc["request"]["namespace"]
    deployer = ctx.settings.deployer_url.rstrip("/")
    repeats = []
    for repeat in doc["repeats"]:
        job = repeat.get("job")
        repeats.append({**repeat, "logs": f"{deployer}/jobs/{job}/logs?namespace={namespace}" if job else None,
                        "results": repeat.get("results") or [],
                        "results_link": f"{ctx.settings.results_url.rstrip('/')}/runs/{repeat['run_id']}"})
    request = {k: v for k, v in doc["request"].items() if k not in ("template_text",)}
    return {"id": doc["_id"], "state": doc["state"], "reason": doc.get("reason"), "request": request,
            "server": doc.get("server"), "server_url": doc.get("server_url"), "model": doc.get("model"),
            "schedule": doc.get("schedule"), "at": doc.get("at"), "deadline_at": doc.get("deadline_at"),
            "created_at": doc.get("created_at"), "finished_at": doc.get("finished_at"),
            "timeline": doc["timeline"], "repeats": repeats, "verdict": doc.get("verdict")}


# -- events -----------------------------------------------------------------------------

@app.event("dev.vllmbench.result.ingested")
def on_result(ctx: Context, event: Any, data: Any) -> Any:
    """A run's results were stored: if it is a repeat of an evaluation, collect it (and judge when all are in)."""
    data = data or {}
    run_ids = [data["run_id"]] if data.get("run_id") else sorted(
        {str(key).rsplit("#", 1)[0] for key in data.get("standardized") or []})
    if not run_ids:
        return {"ignored": "no run id in the event"}
    moved = {}
    for run_id in run_ids:
        ev = _evaluator(ctx).on_result(run_id, f"{event['id']}-{run_id}")
        moved[run_id] = {"evaluation": ev["_id"], "state": ev["state"]} if ev else "not an evaluation's run"
    return {"runs": moved}


def _server_event(ctx: Context, data: dict[str, Any], kind: str) -> Any:
    from vllmbench.store.evaluations import Evaluations

    namespace, name = data.get("namespace"), data.get("server") or data.get("name")
    moved = {}
    evaluator = _evaluator(ctx)
    for ev in Evaluations(ctx.db).active():
        server = ev.get("server") or {}
        if ev["state"] != "waiting" or (server.get("namespace"), server.get("name")) != (namespace, name):
            continue
        if kind == "ready":
            event = {"id": f"ready-{data.get('url')}", "type": "server_ready", "url": data.get("url"),
                     "model": data.get("served_model_name") or data.get("model"), "reused": data.get("reused")}
        else:
            event = {"id": f"{kind}-{data.get('reason')}", "type": "server_failed", "pending": kind == "pending",
                     "reason": data.get("reason")}
        moved[ev["_id"]] = evaluator.apply(ev["_id"], event)["state"]
    return {"moved": moved}


@app.event("dev.vllmbench.model.ready")
def on_model_ready(ctx: Context, event: Any, data: Any) -> Any:
    """A ModelServer is ready: the evaluations waiting for it start their jobs."""
    return _server_event(ctx, data or {}, "ready")


@app.event("dev.vllmbench.model.failed")
def on_model_failed(ctx: Context, event: Any, data: Any) -> Any:
    """A ModelServer failed to start: the evaluations waiting for it fail with its reason."""
    return _server_event(ctx, data or {}, "failed")


@app.event("dev.vllmbench.model.pending")
def on_model_pending(ctx: Context, event: Any, data: Any) -> Any:
    """A ModelServer is pending (no GPUs free): noted on the waiting evaluations' timelines."""
    return _server_event(ctx, data or {}, "pending")


@app.event("dev.vllmbench.model.version.registered")
def on_version_registered(ctx: Context, event: Any, data: Any) -> Any:
    """A model version the MLflow service committed as a ModelServer: evaluated as its rule says
    (profile, baseline, labels that lead the verdict back to the version); once per version."""
    from vllmbench.evals import registered
    from vllmbench.models.evaluations import EvaluateRequest

    wanted = registered.request(data)
    if wanted is None:
        return {"evaluation": None, "reason": "the rule asks for no benchmark"}
    ev, created = _start(ctx, EvaluateRequest.model_validate(wanted))
    return {"evaluation": ev["_id"], "state": ev["state"], "created": created}


@app.event("dev.knative.sources.ping")
def on_tick(ctx: Context, event: Any, data: Any) -> Any:
    """PingSource: {"job": "tick"} (every minute: starts, deadlines, jobs, local schedules) or
    {"job": "schedule", "schedule": name} (one schedule's PingSource fired)."""
    from vllmbench.evals import scheduling

    job = (data or {}).get("job") if isinstance(data, dict) else None
    if job == "schedule":
        return scheduling.fire(ctx, _start, _evaluator(ctx), (data or {}).get("schedule"), event)
    outcome = {"evaluations": _evaluator(ctx).tick()}
    outcome["schedules"] = scheduling.on_tick(ctx, _start, _evaluator(ctx), _runtime(ctx))
    return outcome


@app.route("GET", "/schedules", tag="schedules")
def list_schedules(ctx: Context) -> Any:
    """Schedules in Git (schedules/), their next fire times and the files that do not validate."""
    from vllmbench.evals import scheduling

    return scheduling.listing(ctx.settings)
