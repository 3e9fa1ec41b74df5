"""benchmark-vllm (port 8005): vLLM servers: placement on GPUs, conflict detection and resolution, status.

The original service's routes (deploy a config, a file or the default; list, status and
delete deployments; the service's status) over GitOps: a deploy is a commit to
``models/<namespace>/<server>.yaml``, then a sync places it on GPUs, applies its
Deployment and Service through the reconcile engine and follows its status
(docs/placement.md). ``POST /plan`` is the same decision as a dry run.

functions-framework --target=handle --source=functions/vllm_deploy/main.py --port=8005
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.vllm_service import DeployBody, FileDeployBody, StatusQuery

# Models, git, the planner, the engine and the runtimes load on first use, not at import (cold start).
MODELS = "vllmbench.models.vllm_service"
GITOPS_PUSHED = "dev.vllmbench.gitops.pushed"

app = FunctionApp("vllm_deploy", service="benchmark-vllm", port=8005, title="benchmark-vllm",
                  description="vLLM servers (models/ in Git): placement on GPUs that explains itself, conflict "
                              "detection and resolution (reuse, pack, other accelerator, shrink, preempt, Pending), "
                              "status placed -> starting -> ready, events.")
handle = app.handle


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store import placements, reconcile

    placements.ensure_indexes(ctx.db)
    reconcile.ensure_indexes(ctx.db)


def _runtime(ctx: Context) -> Any:
    from vllmbench.runtimes import open_runtime

    return ctx.runtime.resource("workloads", lambda: open_runtime(ctx.settings))


def _runtime_ready(ctx: Context) -> None:
    _runtime(ctx).check()


app.ready_check("workloads", _runtime_ready)


def _emitter(ctx: Context) -> Any:
    def emit(event_type: str, data: dict[str, Any], event_id: str) -> bool:
        return ctx.emit(event_type, data, subject=data.get("id"), id=event_id)

    return emit


def _optional(ctx: Context, body: bytes, model: str) -> Any:
    """A body that may be empty (the original routes took none)."""
    from vllmbench.web.bodies import parse_json, resolve, validate

    value = parse_json(body, max_depth=ctx.settings.max_json_depth) if body.strip() else {}
    return validate(resolve(model), value, where="body")


def _announce(ctx: Context, outcome: dict[str, Any]) -> None:
    """Tell the others (the Manager syncs) that the configuration repository moved."""
    if not outcome.get("created_commit"):
        return
    from gitops.installation import repository_url

    data = {"repository": repository_url(ctx.settings), "branch": ctx.settings.gitops_branch,
            "after": outcome["commit"], "aliases": []}
    ctx.emit(GITOPS_PUSHED, data, subject=ctx.settings.gitops_branch, id=f"vllm-{outcome['commit']}")


def _accepted(ctx: Context, outcome: dict[str, Any]) -> Reply:
    _announce(ctx, outcome)
    return Reply(outcome, 202, {"Location": f"/deployments/{outcome['id']}/status"})


# -- deploying (the original routes) ----------------------------------------------------

@app.route("POST", "/deploy", body=f"{MODELS}:DeployBody", status=202, tag="deploy")
def deploy(ctx: Context, body: DeployBody) -> Reply:
    """Validate a ModelServer spec, commit it to models/<namespace>/<server>.yaml, place and apply it (202 with the decision)."""
    from vllmbench.servers import requests

    config = body.config.model_dump(mode="json", exclude_unset=True)
    return _accepted(ctx, requests.deploy(ctx.settings, ctx.db, lambda: _runtime(ctx), config=config,
                                          namespace=body.namespace, name=body.name, route="POST /deploy",
                                          emit=_emitter(ctx)))


@app.route("POST", "/deploy-from-file", body=f"{MODELS}:FileDeployBody", status=202, tag="deploy")
def deploy_from_file(ctx: Context, body: FileDeployBody) -> Reply:
    """Deploy a ModelServer file of the repository (configs/<file>, or any path GET /configs/files lists)."""
    from vllmbench.servers import requests

    return _accepted(ctx, requests.deploy_file(ctx.settings, ctx.db, lambda: _runtime(ctx), config_file=body.config_file,
                                               namespace=body.namespace, name=body.name, emit=_emitter(ctx)))


@app.route("POST", "/deploy-default", raw_body=True, status=202, tag="deploy")
def deploy_default(ctx: Context, body: bytes) -> Reply:
    """Deploy the default server: configs/default.yaml of the repository, else opt-125m on CPU (body optional)."""
    from vllmbench.servers import requests

    given = _optional(ctx, body, f"{MODELS}:DefaultDeployBody")
    return _accepted(ctx, requests.deploy_default(ctx.settings, ctx.db, lambda: _runtime(ctx), namespace=given.namespace,
                                                  name=given.name, emit=_emitter(ctx)))


@app.route("GET", "/configs/files", tag="deploy")
def config_files(ctx: Context) -> Any:
    """ModelServer files of the repository: configs/ (ready to deploy) and models/ (deployed)."""
    from vllmbench.servers import views

    return views.config_files(ctx.settings, ctx.db)


@app.route("POST", "/plan", body=f"{MODELS}:DeployBody", tag="deploy")
def plan(ctx: Context, body: DeployBody) -> Any:
    """Dry run: the decision a deploy would get now (per-GPU memory, KV tokens, concurrency, node, conflicts, resolution)."""
    from vllmbench.servers import views

    return views.dry_run(ctx.settings, ctx.db, lambda: _runtime(ctx), config=body.config.model_dump(mode="json", exclude_unset=True),
                         namespace=body.namespace, name=body.name)


# -- what runs --------------------------------------------------------------------------

@app.route("GET", "/deployments", tag="servers")
def list_deployments(ctx: Context) -> Any:
    """Every server, keyed by id (<namespace>.<server>): config, status, created_at, reason, URL."""
    from vllmbench.servers import views

    return views.deployments(ctx.db)


@app.route("GET", "/deployments/<deployment_id>/status", query=f"{MODELS}:StatusQuery", tag="servers")
def deployment_status(ctx: Context, deployment_id: str, query: StatusQuery) -> Any:
    """One server now: status (placed, starting, ready, failed, pending) with the reason, URL, decision, hints."""
    from vllmbench.servers import requests
    from vllmbench.servers.sync import observe
    from vllmbench.store.placements import Servers

    key = requests.find_key(ctx.db, deployment_id)
    doc = Servers(ctx.db).get(key)
    docs = {key: doc} if doc else {}  # a server that reuses another reads its twin itself
    docs = observe(ctx.settings, ctx.db, _runtime(ctx), docs, emit=_emitter(ctx), only={key}, probe=query.probe)
    return requests.view(docs.get(key))


@app.route("GET", "/deployments/<deployment_id>", tag="servers")
def get_deployment(ctx: Context, deployment_id: str) -> Any:
    """One server as last recorded (GET .../status asks it now)."""
    from vllmbench.servers import requests
    from vllmbench.store.placements import Servers

    return requests.view(Servers(ctx.db).get(requests.find_key(ctx.db, deployment_id)))


@app.route("DELETE", "/deployments/<deployment_id>", status=202, tag="servers")
def delete_deployment(ctx: Context, deployment_id: str) -> Reply:
    """Commit the removal of the server's file: its GPUs are freed and the waiting servers planned again."""
    from vllmbench.servers import requests

    return _accepted(ctx, requests.delete(ctx.settings, ctx.db, lambda: _runtime(ctx), server=deployment_id,
                                          emit=_emitter(ctx)))


@app.route("GET", "/status", tag="servers")
def status(ctx: Context) -> Any:
    """The service: servers per phase, the applied commit, files held back, the ledger, the runtime."""
    from vllmbench.servers import views

    return views.service_status(ctx.settings, ctx.db, _runtime(ctx))


@app.route("GET", "/inventory", tag="servers")
def inventory(ctx: Context) -> Any:
    """GPUs per node: free, and who holds the rest (our servers by name and phase, others' pods)."""
    from vllmbench.servers import views

    return views.inventory(ctx.settings, ctx.db, _runtime(ctx))


# -- syncing ----------------------------------------------------------------------------

@app.route("POST", "/reconcile", raw_body=True, tag="sync")
def reconcile(ctx: Context, body: bytes) -> Any:
    """Sync models/ at the branch head now: plan what changed or waits, apply, follow statuses."""
    from vllmbench.servers.sync import sync

    _optional(ctx, body, f"{MODELS}:ReconcileBody")
    return sync(ctx.settings, ctx.db, _runtime(ctx), trigger="api", emit=_emitter(ctx))


@app.event(GITOPS_PUSHED, data="vllmbench.models.projects:PushedData")
def on_pushed(ctx: Context, event: Any, data: Any) -> Any:
    """A push to the configuration repository: sync models/ at its head (a person's commit is a deploy request)."""
    from gitops.installation import repository_url
    from gitops.webhook import normalize_repo_url
    from vllmbench.servers.sync import sync

    ours = normalize_repo_url(repository_url(ctx.settings))
    pushed = {normalize_repo_url(url) for url in [data.repository, *data.aliases]}
    if ours not in pushed or data.branch != ctx.settings.gitops_branch:
        return {"ignored": f"not the configuration repository's branch {ctx.settings.gitops_branch}"}
    outcome = sync(ctx.settings, ctx.db, _runtime(ctx), trigger="pushed", emit=_emitter(ctx))
    return {"commit": outcome["commit"], "planned": outcome["planned"]}


@app.event("dev.knative.sources.ping")
def on_tick(ctx: Context, event: Any, data: Any) -> Any:
    """PingSource tick ({"job": "servers"}): plan the waiting servers again, follow every status."""
    from vllmbench.servers.sync import sync
    from vllmbench.store.leases import LeaseBusy

    try:
        outcome = sync(ctx.settings, ctx.db, _runtime(ctx), trigger="tick", emit=_emitter(ctx), wait_s=0)
    except LeaseBusy:
        return {"skipped": "a sync is running"}
    return {"commit": outcome["commit"], "planned": outcome["planned"]}
