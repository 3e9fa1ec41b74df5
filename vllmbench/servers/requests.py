"""The vLLM service's writes: a deploy or a delete is a commit to ``models/``, then a sync.

Git is the truth, as for the deployer: ``POST /deploy`` validates the spec (schema, the
model's facts, the parallelism: 422 naming the field, nothing committed), commits it to
``models/<namespace>/<server>.yaml`` (one commit; the same spec again commits nothing),
and syncs the new head (plan, apply, status), answering with the decision. A person's
commit to ``models/`` reaches the same sync through ``dev.vllmbench.gitops.pushed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops import installation
from gitops.changes import FileEdit
from gitops.commit import write
from vllmbench.errors import Conflict, NotFound, RetryableError, ValidationFailed
from vllmbench.logs import get_logger, info
from vllmbench.models.servers import ModelServerSpec
from vllmbench.runtimes.base import Runtime
from vllmbench.servers import lifecycle
from vllmbench.servers.folder import (
    CONFIGS,
    DEFAULT_CONFIG,
    FOLDER,
    ServerFile,
    default_name,
    dump,
    key_of,
    load,
    parse_yaml,
    path_of,
    server_id,
    split_path,
)
from vllmbench.servers.head import read_head, vllm_namespace, workload_namespace
from vllmbench.store.placements import Servers

log = get_logger("vllmbench.vllm")
AUTHOR = "vllmbench-vllm"
# The runtime is opened only once a request is valid and committed: a 422 never waits on a cluster.
Runtimes = Callable[[], Runtime]


def resolve(settings: Any, config: dict[str, Any], *, namespace: str | None, name: str | None,
            where: tuple[str, ...]) -> ServerFile:
    """The server a request names (body, then the spec's own name/namespace, then the defaults), validated."""
    spec_ns, spec_name = config.get("namespace"), config.get("name")
    namespace = namespace or (spec_ns if isinstance(spec_ns, str) else None) or vllm_namespace(settings)
    if name is None and isinstance(spec_name, str):
        name = spec_name
    if name is None:
        try:
            name = default_name(ModelServerSpec.model_validate(config))
        except ValueError:
            name = "server"  # the spec is wrong: load() below names the field
    return load(config, namespace=namespace, name=name, path=path_of(namespace, name), where=where)


def deploy(settings: Any, db: Any, runtime: Runtimes, *, config: dict[str, Any], namespace: str | None,
           name: str | None, route: str, emit: lifecycle.Emit | None, where: tuple[str, ...] = ("body", "config")
           ) -> dict[str, Any]:
    """Validate, commit ``models/<namespace>/<server>.yaml``, sync; the server's decision and status."""
    found = resolve(settings, config, namespace=namespace, name=name, where=where)
    head = read_head(settings)
    slot = workload_namespace(settings, found.namespace)
    for other in head.servers.values():
        if other.key != found.key and other.name == found.name and workload_namespace(settings, other.namespace) == slot:
            raise Conflict(f"a server named {found.name} is defined in {other.path} and runs in {slot}: choose "
                           "another name; nothing was committed")
    spec = ModelServerSpec.model_validate(config)
    same = head.servers.get(found.key)
    if same is not None and same.digest == found.digest:  # in Git already, as a person wrote it: keep their file
        commit, created = head.commit, False
    else:
        message = (f"Deploy vLLM server {found.key} ({spec.model_name})\n\n"
                   f"Requested through benchmark-vllm's {route}.")
        with installation.open_repository(settings) as repo:
            result = write(repo, [FileEdit(found.path, dump(spec, source=f"requested through benchmark-vllm's {route}"))],
                           message=message, author=installation.author(settings, AUTHOR),
                           retries=settings.git_push_retries)
        commit, created = result.commit, result.created
    info(log, "server committed", server=found.key, commit=commit, created=created)
    synced = sync_now(settings, db, runtime, trigger="deploy", emit=emit)
    return {**view(Servers(db).get(found.key), fallback=found), "path": found.path, "commit": commit,
            "created_commit": created, "sync": synced}


def deploy_file(settings: Any, db: Any, runtime: Runtimes, *, config_file: str, namespace: str | None,
                name: str | None, emit: lifecycle.Emit | None, route: str = "POST /deploy-from-file"
                ) -> dict[str, Any]:
    """A ModelServer file of the repository (``configs/<file>`` or any path) deployed to ``models/``."""
    path = config_file if "/" in config_file else f"{CONFIGS}/{config_file}"
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        entry = repo.entries(commit, [path]).get(path)
        if entry is None or entry.type != "blob":
            raise NotFound(f"{path} is not a file at the head of the configuration repository; GET /configs/files "
                           "lists the ModelServer files there")
        data = repo.read_blob(entry.sha)
    config = parse_yaml(path, data)
    if not isinstance(config, dict):
        raise ValidationFailed(f"{path}: a ModelServer is a mapping; nothing was committed",
                               details=[{"loc": path, "msg": "not a mapping", "expected": "ModelServerSpec"}])
    located = split_path(path)
    if located:  # deploying models/<ns>/<x>.yaml again keeps its place unless the body moves it
        namespace, name = namespace or located[0], name or located[1]
    return deploy(settings, db, runtime, config=config, namespace=namespace, name=name, route=route, emit=emit,
                  where=(path,))


def deploy_default(settings: Any, db: Any, runtime: Runtimes, *, namespace: str | None, name: str | None,
                   emit: lifecycle.Emit | None) -> dict[str, Any]:
    """``configs/default.yaml`` of the repository when it has one, else opt-125m on CPU (the seed's model)."""
    try:
        return deploy_file(settings, db, runtime, config_file="default.yaml", namespace=namespace, name=name,
                           emit=emit, route="POST /deploy-default")
    except NotFound:
        return deploy(settings, db, runtime, config=dict(DEFAULT_CONFIG), namespace=namespace, name=name,
                      route="POST /deploy-default", emit=emit)


def delete(settings: Any, db: Any, runtime: Runtimes, *, server: str, emit: lifecycle.Emit | None) -> dict[str, Any]:
    """Commit the removal of the server's file; the sync frees its GPUs, prunes its objects, re-plans the waiting."""
    key = find_key(db, server)
    doc = Servers(db).get(key) or {}
    head = read_head(settings)
    path = doc.get("path") or (head.servers[key].path if key in head.servers else None)
    if path is None or (key not in head.servers and path not in head.problems):
        raise NotFound(f"{server_id(key)} is not in {FOLDER}/ at the branch head, so there is nothing to delete")
    before = doc.get("decision") or {}
    with installation.open_repository(settings) as repo:
        result = write(repo, [FileEdit(path, None)], author=installation.author(settings, AUTHOR),
                       message=f"Delete vLLM server {key}\n\nRequested through benchmark-vllm's DELETE /deployments.",
                       retries=settings.git_push_retries)
    synced = sync_now(settings, db, runtime, trigger="delete", emit=emit)
    freed = [{"node": r["node"], "gpus": r.get("gpus"), "resource": r["resource"]} for r in before.get("replicas") or []]
    return {"id": server_id(key), "deleted": True, "path": path, "commit": result.commit,
            "created_commit": result.created, "freed": freed if doc.get("phase") != "pending" else [],
            "placed_now": sorted(k for k, d in (synced.get("planned") or {}).items() if d["outcome"] == "placed"),
            "sync": synced}


def find_key(db: Any, server: str) -> str:
    """``<namespace>.<server>`` (the routes' id), ``<namespace>/<server>``, or a bare name when it is unique."""
    key = key_of(server)
    if "/" in key:
        return key
    matches = [k for k, d in Servers(db).all().items() if d.get("name") == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise Conflict(f"{server!r} names {len(matches)} servers ({', '.join(sorted(matches))}): use "
                       "<namespace>.<server>")
    raise NotFound(f"no server {server!r}; GET /deployments lists them (ids are <namespace>.<server>)")


def sync_now(settings: Any, db: Any, runtime: Runtimes, *, trigger: str, emit: lifecycle.Emit | None) -> dict[str, Any]:
    """Sync at once; when another sync holds on, or the runtime is down, the commit stands and a later sync applies it."""
    from vllmbench.servers.sync import sync
    from vllmbench.store.leases import LeaseBusy

    try:
        return {"state": "done", **sync(settings, db, runtime(), trigger=trigger, emit=emit)}
    except LeaseBusy:
        return {"state": "queued", "message": "another sync is running; the pushed event or the next tick applies this"}
    except RetryableError as exc:
        return {"state": "pending", "message": f"committed; not applied yet: {exc.message}"}


def view(doc: dict[str, Any] | None, *, fallback: ServerFile | None = None) -> dict[str, Any]:
    """One server as the routes show it: id, status and its reason, URL, the decision in full."""
    if doc is None:
        if fallback is None:
            raise NotFound("no such server in the store yet: it is placed by the sync after its commit "
                           "(GET /deployments lists the known ones)")
        return {"id": fallback.id, "namespace": fallback.namespace, "server": fallback.name,
                "status": "committed", "reason": "committed; not planned yet", "url": None, "decision": None}
    decision = doc.get("decision") or {}
    replicas = decision.get("replicas") or []
    return {"id": server_id(doc["_id"]), "namespace": doc.get("namespace"), "server": doc.get("name"),
            "model": doc.get("model"), "served_model_name": doc.get("served_model_name"),
            "status": doc.get("phase"), "reason": doc.get("reason"), "url": doc.get("url"),
            "reused": doc.get("reused"), "preempted_by": doc.get("preempted_by"),
            "node": replicas[0]["node"] if replicas else None, "gpus": [r.get("gpus") for r in replicas],
            "workload_namespace": doc.get("workload_namespace"), "identity": doc.get("identity_hash"),
            "commit": doc.get("commit"), "path": doc.get("path"), "since": doc.get("since"),
            "hints": (decision.get("hints") or []) + [h["message"] for h in doc.get("log_hints") or []],
            "decision": decision or None, "pods": doc.get("pods") or []}
