"""benchmark-manager (port 8001): projects, config-repo sync, config file edits, Git webhooks.

functions-framework --target=handle --source=functions/sync/main.py --port=8001
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench.errors import UserError
from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.projects import FileQuery, ProjectCreate, ProjectUpdate, PushedData

# Models load on the first request that needs them, not at import (cold start).
MODELS = "vllmbench.models.projects"

app = FunctionApp(
    "sync", service="benchmark-manager", port=8001, title="benchmark-manager",
    description="Projects and their configuration repositories: sync Git into the store, "
                "edit files through commits, receive GitHub webhooks.",
)
handle = app.handle

GITOPS_PUSHED = "dev.vllmbench.gitops.pushed"


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store import config_files, projects

    projects.ensure_indexes(ctx.db)
    config_files.ensure_indexes(ctx.db)


def _git_ready(ctx: Context) -> None:
    from gitops import service

    service.check_git(_options(ctx))


app.ready_check("git", _git_ready)


def _options(ctx: Context) -> Any:
    from gitops.mirror import GitOptions

    return GitOptions.from_settings(ctx.settings)


def _projects(ctx: Context) -> Any:
    from vllmbench.store.projects import ProjectStore

    return ProjectStore(ctx.db)


# -- projects -------------------------------------------------------------------------

@app.route("POST", "/projects", body=f"{MODELS}:ProjectCreate", status=201, tag="projects")
def create_project(ctx: Context, body: ProjectCreate) -> Reply:
    """Create a project after checking that its repository and branch are reachable."""
    from gitops import service

    project = service.create_project(ctx.db, body, _options(ctx))
    return Reply(project, 201, {"Location": f"/projects/{project.id}"})


@app.route("GET", "/projects", tag="projects")
def list_projects(ctx: Context) -> Any:
    """List every project with its snapshot commit and last sync."""
    return _projects(ctx).list()


@app.route("GET", "/projects/<project_id>", tag="projects")
def get_project(ctx: Context, project_id: str) -> Any:
    """One project."""
    return _projects(ctx).get(project_id)


@app.route("PATCH", "/projects/<project_id>", body=f"{MODELS}:ProjectUpdate", tag="projects")
def update_project(ctx: Context, project_id: str, body: ProjectUpdate) -> Any:
    """Change a project's repository, branch, root or credentials (the next sync is full)."""
    from gitops import service

    return service.update_project(ctx.db, project_id, body, _options(ctx))


@app.route("DELETE", "/projects/<project_id>", status=204, tag="projects")
def delete_project(ctx: Context, project_id: str) -> Reply:
    """Forget a project and its mirrored files (the repository is left alone)."""
    from gitops import service

    service.delete_project(ctx.db, project_id)
    return Reply(None, 204)


@app.route("POST", "/projects/<project_id>/sync", tag="sync")
def sync(ctx: Context, project_id: str) -> Any:
    """Mirror the project's files at the branch head into the store (incremental, atomic)."""
    from gitops.mirror import sync_project

    return sync_project(ctx.db, project_id, _options(ctx))


# -- files ----------------------------------------------------------------------------

@app.route("GET", "/projects/<project_id>/files", query=f"{MODELS}:FileQuery", tag="files")
def list_files(ctx: Context, project_id: str, query: FileQuery) -> Any:
    """List the files of the current snapshot; filter by kind, folder or status."""
    from gitops import service

    return service.list_files(ctx.db, project_id, query)


@app.route("GET", "/projects/<project_id>/files/<path:path>", tag="files")
def get_file(ctx: Context, project_id: str, path: str) -> Reply:
    """A file's content and metadata; the ETag is its blob sha."""
    from gitops import service

    found = service.get_file(ctx.db, project_id, path)
    return Reply(found, 200, {"ETag": f'"{found.sha}"'})


@app.route("PUT", "/projects/<project_id>/files/<path:path>", raw_body=True, tag="files")
def put_file(ctx: Context, project_id: str, path: str, body: bytes) -> Reply:
    """Validate, commit and push a file, then re-sync. ``If-Match: "<sha>"`` guards against lost updates."""
    if not body:
        raise UserError("the body is empty; send the file's content (DELETE removes a file)")
    return _write(ctx, project_id, path, body)


@app.route("DELETE", "/projects/<project_id>/files/<path:path>", tag="files")
def delete_file(ctx: Context, project_id: str, path: str) -> Reply:
    """Delete a file with one commit, then re-sync (``If-Match`` honoured)."""
    return _write(ctx, project_id, path, None)


def _write(ctx: Context, project_id: str, path: str, content: bytes | None) -> Reply:
    from gitops.commit import Author
    from gitops.editing import edit_file, parse_if_match

    written = edit_file(ctx.db, project_id, path, content,
                        if_match=parse_if_match(ctx.request.headers.get("If-Match")),
                        options=_options(ctx),
                        author=Author(ctx.settings.git_author_name, ctx.settings.git_author_email))
    headers = {"ETag": f'"{written.sha}"'} if written.sha else {}
    return Reply(written, 200, headers)


# -- GitHub and events ----------------------------------------------------------------

@app.route("POST", "/webhooks/github", raw_body=True, public=True, status=202, tag="webhooks")
def github_webhook(ctx: Context, body: bytes) -> Reply:
    """GitHub push and ping events, authenticated by their HMAC SHA-256 signature."""
    from gitops import webhook
    from vllmbench.models.projects import PushedData

    headers = ctx.request.headers
    secret = ctx.settings.github_webhook_secret
    webhook.verify_signature(body, headers.get(webhook.SIGNATURE_HEADER),
                             secret.get_secret_value() if secret else None)
    kind = headers.get(webhook.EVENT_HEADER, "")
    if kind == "ping":
        return Reply({"pong": True}, 200)
    if kind != "push":
        return Reply({"ignored": kind or "(no event header)"}, 202)
    push = webhook.parse_push(body)
    data = PushedData(repository=push.repository, aliases=list(push.aliases), branch=push.branch,
                      before=push.before, after=push.after, forced=push.forced, deleted=push.deleted)
    delivery = headers.get(webhook.DELIVERY_HEADER) or f"{push.repository}@{push.after}"
    sent = ctx.emit(GITOPS_PUSHED, data.model_dump(mode="json"), subject=push.branch, id=delivery)
    return Reply({"event": GITOPS_PUSHED, "id": delivery, "sent": sent}, 202)


@app.event(GITOPS_PUSHED, data=f"{MODELS}:PushedData")
def on_pushed(ctx: Context, event: Any, data: PushedData) -> Any:
    """Sync every project on the pushed repository and branch."""
    from gitops import service

    return service.sync_pushed(ctx.db, data, _options(ctx))


@app.event("dev.knative.sources.ping")
def on_tick(ctx: Context, event: Any, data: Any) -> Any:
    """PingSource tick (``{"job": "sync-all"}``): sync every project, the drift safety net."""
    from gitops import service

    return service.sync_all(ctx.db, _options(ctx))
