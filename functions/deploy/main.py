"""benchmark-deployer (port 8002): apply YAML through GitOps, reconcile Git to the cluster, job logs, terminal.

functions-framework --target=handle --source=functions/deploy/main.py --port=8002
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.deployments import (
        DeployBody,
        JobQuery,
        JobTerminal,
        ListQuery,
        LogQuery,
        ObjectQuery,
        ReconcileBody,
        RunRequest,
        TerminalCreate,
    )

# Models, git, the engine and the runtimes load on first use, not at import (cold start).
MODELS = "vllmbench.models.deployments"
GITOPS_PUSHED = "dev.vllmbench.gitops.pushed"

app = FunctionApp(
    "deploy", service="benchmark-deployer", port=8002, title="benchmark-deployer",
    description="Desired state in Git (deployments/) applied to the cluster or the local runtime: "
                "deploy and delete through commits, reconcile (plan, apply, prune, drift repair), "
                "job status and logs, terminals into job pods.",
)
handle = app.handle


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store import deployments, reconcile, terminals

    reconcile.ensure_indexes(ctx.db)
    deployments.ensure_indexes(ctx.db)
    terminals.ensure_indexes(ctx.db)


def _runtime(ctx: Context) -> Any:
    from vllmbench.runtimes import open_runtime

    return ctx.runtime.resource("workloads", lambda: open_runtime(ctx.settings))


def _runtime_ready(ctx: Context) -> None:
    _runtime(ctx).check()


app.ready_check("workloads", _runtime_ready)


# -- GitOps: deploy, delete, reconcile -------------------------------------------------

@app.route("POST", "/deploy", body=f"{MODELS}:DeployBody", status=202, tag="deploy")
def deploy(ctx: Context, body: DeployBody) -> Reply:
    """Validate YAML (one or more objects), commit it to deployments/<namespace>/ and apply it."""
    from gitops import deploying

    outcome = deploying.deploy(ctx.settings, ctx.db, _runtime(ctx), yaml_content=body.yaml_content,
                               namespace=body.namespace)
    _announce(ctx, outcome["commit"])
    return Reply(outcome, 202, {"Location": f"/deployments/{outcome['id']}"})


@app.route("POST", "/delete", body=f"{MODELS}:DeployBody", status=202, tag="deploy")
def delete(ctx: Context, body: DeployBody) -> Reply:
    """Commit the removal of these objects from deployments/; the reconcile deletes them."""
    from gitops import deploying

    outcome = deploying.delete(ctx.settings, ctx.db, _runtime(ctx), yaml_content=body.yaml_content,
                               namespace=body.namespace)
    _announce(ctx, outcome["commit"])
    return Reply(outcome, 202)


@app.route("POST", "/reconcile", body=f"{MODELS}:ReconcileBody", tag="reconcile")
def reconcile(ctx: Context, body: ReconcileBody) -> Any:
    """Reconcile deployments/ at the branch head now (dry_run: plan only)."""
    from gitops import deploying

    return deploying.reconcile_head(ctx.settings, ctx.db, _runtime(ctx), trigger="api", dry_run=body.dry_run,
                                    lease_wait_s=0 if body.dry_run else 10)


@app.route("GET", "/reconcile", tag="reconcile")
def reconcile_status(ctx: Context) -> Any:
    """The applied commit, the folder's problems and the last runs with their plans."""
    from gitops.deploying import OWNER
    from vllmbench.store.reconcile import ReconcileStore

    store = ReconcileStore(ctx.db, OWNER)
    return {"state": store.state(), "runs": store.runs(limit=10), "runtime": _runtime(ctx).describe()}


@app.route("GET", "/reconcile/<run_id>", tag="reconcile")
def reconcile_run(ctx: Context, run_id: str) -> Any:
    """One reconcile run: its plan and what each action did."""
    from gitops.deploying import OWNER
    from vllmbench.errors import NotFound
    from vllmbench.store.reconcile import ReconcileStore

    found = ReconcileStore(ctx.db, OWNER).run(run_id)
    if found is None:
        raise NotFound(f"no reconcile run {run_id!r}; GET /reconcile lists the last ones")
    return found


def _announce(ctx: Context, commit: str) -> None:
    """Tell the others (the Manager syncs) that the configuration repository moved."""
    from gitops.installation import repository_url

    data = {"repository": repository_url(ctx.settings), "branch": ctx.settings.gitops_branch, "after": commit,
            "aliases": []}
    ctx.emit(GITOPS_PUSHED, data, subject=ctx.settings.gitops_branch, id=f"deployer-{commit}")


@app.event(GITOPS_PUSHED, data="vllmbench.models.projects:PushedData")
def on_pushed(ctx: Context, event: Any, data: Any) -> Any:
    """A push to the configuration repository: reconcile its head (pushes to other repositories are ignored)."""
    from gitops import deploying
    from gitops.installation import repository_url
    from gitops.webhook import normalize_repo_url

    ours = normalize_repo_url(repository_url(ctx.settings))
    pushed = {normalize_repo_url(url) for url in [data.repository, *data.aliases]}
    if ours not in pushed or data.branch != ctx.settings.gitops_branch:
        return {"ignored": f"not the configuration repository's branch {ctx.settings.gitops_branch}"}

    outcome = deploying.reconcile_head(ctx.settings, ctx.db, _runtime(ctx), trigger="pushed", lease_wait_s=20)
    return {"run_id": outcome["run_id"], "commit": outcome["commit"], "counts": outcome["counts"]}


@app.event("dev.knative.sources.ping")
def on_tick(ctx: Context, event: Any, data: Any) -> Any:
    """PingSource tick ({"job": "reconcile"}): reconcile the head, repairing drift."""
    from gitops import deploying
    from vllmbench.store.leases import LeaseBusy

    try:
        outcome = deploying.reconcile_head(ctx.settings, ctx.db, _runtime(ctx), trigger="tick")
    except LeaseBusy:
        return {"skipped": "a reconcile is running"}
    return {"run_id": outcome["run_id"], "commit": outcome["commit"], "counts": outcome["counts"]}


# -- what is deployed -------------------------------------------------------------------

@app.route("GET", "/deployments", query=f"{MODELS}:ListQuery", tag="deploy")
def list_deployments(ctx: Context, query: ListQuery) -> Any:
    """Deploy requests, newest first, each with its objects' live status."""
    from vllmbench.deployer_views import deployment_view
    from vllmbench.store.deployments import DeployRequests

    docs = DeployRequests(ctx.db).list(namespace=query.namespace, limit=query.limit)
    return {"deployments": [deployment_view(ctx.db, doc) for doc in docs]}


@app.route("GET", "/deployments/<deployment_id>", tag="deploy")
def get_deployment(ctx: Context, deployment_id: str) -> Any:
    """One deploy request: desired and applied commit, each object's status, last error, events."""
    from vllmbench.deployer_views import deployment_view
    from vllmbench.store.deployments import DeployRequests

    doc = DeployRequests(ctx.db).get(deployment_id)
    return deployment_view(ctx.db, doc, runtime=_runtime(ctx))


@app.route("GET", "/objects", query=f"{MODELS}:ObjectQuery", tag="deploy")
def list_objects(ctx: Context, query: ObjectQuery) -> Any:
    """Every object an owner manages (whoever committed it), with its source file and live health."""
    from vllmbench.deployer_views import objects_view

    return objects_view(ctx.db, owner=query.owner, namespace=query.namespace, kind=query.kind, state=query.state,
                        runtime=_runtime(ctx))


# -- jobs -------------------------------------------------------------------------------

@app.route("GET", "/jobs/<job_name>/status", query=f"{MODELS}:JobQuery", tag="jobs")
def job_status(ctx: Context, job_name: str, query: JobQuery) -> Any:
    """A Job's state in words (with its pods' reasons), conditions, times and pods."""
    from vllmbench.jobs import job_status as status

    return status(_runtime(ctx), ctx.settings.workload_namespaces, job_name, query.namespace)


@app.route("GET", "/jobs/<job_name>/logs", query=f"{MODELS}:LogQuery", tag="jobs")
def job_logs(ctx: Context, job_name: str, query: LogQuery) -> Any:
    """Logs of every pod of a Job (or one); follow=true streams until the Job ends."""
    import flask

    from vllmbench.jobs import log_lines
    from vllmbench.web.stream import client_gone

    environ = ctx.request.environ
    lines = log_lines(_runtime(ctx), ctx.settings.workload_namespaces, job_name, query,
                      client_gone=lambda: client_gone(environ))
    return Reply(flask.Response(lines, mimetype="text/plain", headers={"X-Accel-Buffering": "no",
                                                                      "Cache-Control": "no-store"}))


# -- terminals --------------------------------------------------------------------------

def _caller(ctx: Context) -> str:
    from vllmbench.terminal import who

    return who(ctx.settings, ctx.request)


def _create_terminal(ctx: Context, job_name: str, body: Any) -> Reply:
    from vllmbench.terminal import create_session

    session = create_session(ctx.settings, ctx.db, _runtime(ctx), job_name=job_name, namespace=body.namespace,
                             pod_name=body.pod_name, container_name=body.container_name, shell=body.shell,
                             cols=body.cols, rows=body.rows, caller=_caller(ctx))
    return Reply(session, 201, {"Location": session["websocket"]})


@app.route("POST", "/terminal/create", body=f"{MODELS}:TerminalCreate", status=201, tag="terminal")
def create_terminal(ctx: Context, body: TerminalCreate) -> Reply:
    """Create a terminal session into a pod of a vllmbench Job; answers a one-time ticket for the WebSocket."""
    return _create_terminal(ctx, body.job_name, body)


@app.route("POST", "/jobs/<job_name>/terminal", body=f"{MODELS}:JobTerminal", status=201, tag="terminal")
def create_job_terminal(ctx: Context, job_name: str, body: JobTerminal) -> Reply:
    """Create a terminal session into the Job's running pod (see POST /terminal/create)."""
    return _create_terminal(ctx, job_name, body)


@app.websocket("/terminal/<session_id>", tag="terminal")
def terminal(ctx: Context, ws: Any, session_id: str) -> None:
    """The terminal: first message {"type": "auth", "ticket": ...}, then input/output/resize messages."""
    from vllmbench.terminal import serve

    serve(ctx.settings, ctx.db, _runtime(ctx), ws, session_id, caller=_caller(ctx))


@app.route("GET", "/terminal/sessions", tag="terminal")
def terminal_sessions(ctx: Context) -> Any:
    """Open (and waiting) terminal sessions."""
    from vllmbench.store.terminals import TerminalSessions
    from vllmbench.terminal import public

    return {"sessions": [public(doc) for doc in TerminalSessions(ctx.db).list()]}


@app.route("DELETE", "/terminal/<session_id>", tag="terminal")
def close_terminal(ctx: Context, session_id: str) -> Any:
    """Close one session (its replica ends it within about a second)."""
    from vllmbench.errors import NotFound
    from vllmbench.store.terminals import TerminalSessions

    closed = TerminalSessions(ctx.db).request_close({"_id": session_id}, "closed through DELETE /terminal")
    if not closed:
        raise NotFound(f"no open terminal session {session_id!r}; GET /terminal/sessions lists them")
    return {"closed": closed}


@app.route("DELETE", "/terminal/job/<job_name>", tag="terminal")
def close_job_terminals(ctx: Context, job_name: str) -> Any:
    """Close every session into the pods of a Job."""
    from vllmbench.store.terminals import TerminalSessions

    return {"closed": TerminalSessions(ctx.db).request_close({"job": job_name}, "closed through DELETE /terminal/job")}


# -- the original POST /run -------------------------------------------------------------

@app.route("POST", "/run", body=f"{MODELS}:RunRequest", status=202, tag="deploy")
def run(ctx: Context, body: RunRequest) -> Reply:
    """The original deployer's benchmark run: forwarded to the evaluations (port 8004) as POST /evaluate."""
    from vllmbench.services import Service

    token = ctx.settings.api_token.get_secret_value() if ctx.settings.api_token else None
    answer = Service("benchmark-eval", ctx.settings.eval_url, token=token).post("/evaluate", body.evaluation())
    return Reply({**answer, "forwarded_to": f"{ctx.settings.eval_url.rstrip('/')}/evaluations/{answer['id']}"}, 202)
