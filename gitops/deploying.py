"""The deployer's use cases: commit requested objects to ``deployments/``, reconcile the folder.

Git is the truth: ``POST /deploy`` validates (the policy, then the runtime's own
dry-run when it answers), commits, and reconciles the new head; ``POST /delete``
commits the removal, and the reconcile prunes. A reconcile reads the folder at the
branch head, renders it (:mod:`gitops.deployments`) and hands it to the engine as
the ``deploy`` owner.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gitops import deployments, installation
from gitops.changes import FileEdit
from gitops.commit import write
from vllmbench.errors import Conflict, RetryableError, UserError, ValidationFailed
from vllmbench.logs import get_logger, info
from vllmbench.reconcile.engine import Outcome, Reconciler
from vllmbench.reconcile.objects import mark, ownership
from vllmbench.reconcile.policy import DEPLOYABLE
from vllmbench.runtimes.base import Kind, ObjectRef, Runtime, kind_of
from vllmbench.store.deployments import DeployRequests

log = get_logger("vllmbench.deployer")
OWNER = "deploy"
KINDS: list[Kind] = [kind_of(api_version, kind) for kind, api_version in DEPLOYABLE.items()]


def reconciler(settings: Any, db: Any, runtime: Runtime, *, lease_wait_s: float = 0.0) -> Reconciler:
    return Reconciler(runtime, db, owner=OWNER, namespaces=settings.workload_namespaces, kinds=KINDS,
                      lease_wait_s=lease_wait_s)


_RENDERED: dict[tuple[str, str, tuple[str, ...]], tuple[deployments.Rendered, dict[str, Any], int]] = {}


def render_head(settings: Any) -> tuple[deployments.Rendered, dict[str, Any], int]:
    """The folder at the branch head, rendered, with its problems and file count. A commit is
    immutable, so its rendering is kept (per process) for the ticks that find the same head."""
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        key = (installation.repository_url(settings), commit, tuple(settings.workload_namespaces))
        if key in _RENDERED:
            return _RENDERED[key]
        folder = installation.read_folder(repo, commit, deployments.FOLDER, max_bytes=settings.git_max_file_bytes)
    rendered = deployments.render(folder.files, commit=commit, namespaces=settings.workload_namespaces)
    problems = {**rendered.problems, **{p: [{"loc": p, "msg": f"{p}: {why}", "expected": "a YAML file"}]
                                        for p, why in folder.skipped.items()}}
    _RENDERED.clear()  # one head at a time is enough
    _RENDERED[key] = (rendered, problems, len(folder.files))
    return _RENDERED[key]


def reconcile_head(settings: Any, db: Any, runtime: Runtime, *, trigger: str, dry_run: bool = False,
                   lease_wait_s: float = 0.0) -> dict[str, Any]:
    """Reconcile ``deployments/`` at the branch head; the outcome with the folder's problems."""
    rendered, problems, files = render_head(settings)
    commit = rendered.commit
    engine = reconciler(settings, db, runtime, lease_wait_s=lease_wait_s)
    outcome = engine.reconcile(rendered.desired, commit=commit, trigger=trigger, held_sources=set(problems),
                               dry_run=dry_run)
    if not dry_run:
        engine.store.set_state(problems=problems, files=files)
    return {**outcome.summary(), "problems": problems, "health": _health(outcome)}


def _health(outcome: Outcome) -> dict[str, Any]:
    return {str(ref): state.to_dict() for ref, state in outcome.health.items()}


def request_id(namespace: str, files: dict[str, Any], action: str) -> str:
    canonical = action + "\0" + namespace + "\0" + "\0".join(f"{p}\0{deployments.dump(o).decode()}"
                                                             for p, o in sorted(files.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def deploy(settings: Any, db: Any, runtime: Runtime, *, yaml_content: str, namespace: str | None) -> dict[str, Any]:
    """Validate, commit (one commit for every object of the request) and reconcile."""
    namespace = _namespace(settings, namespace)
    files = deployments.request_files(yaml_content, namespace=namespace, namespaces=settings.workload_namespaces)
    checked = _check_with_runtime(runtime, files)
    edits = [FileEdit(path, deployments.dump(obj)) for path, obj in sorted(files.items())]
    names = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in files.values())
    message = f"Deploy {names} to {namespace}\n\nRequested through the deployer's POST /deploy."
    with installation.open_repository(settings) as repo:
        result = write(repo, edits, message=message, author=installation.author(settings, "vllmbench-deployer"),
                       retries=settings.git_push_retries)
    rid = request_id(namespace, files, "deploy")
    refs = [str(ObjectRef.of(o)) for o in files.values()]
    record = DeployRequests(db).save({"_id": rid, "action": "deploy", "namespace": namespace, "objects": refs,
                                      "files": sorted(files), "commit": result.commit, "created": result.created})
    info(log, "deploy committed", deployment=rid, commit=result.commit, created=result.created, objects=refs)
    return {"id": rid, "commit": record.get("commit", result.commit), "created_commit": result.created,
            "files": sorted(files), "objects": refs, "validated_by": checked,
            "reconcile": _reconcile_now(settings, db, runtime)}


def delete(settings: Any, db: Any, runtime: Runtime, *, yaml_content: str, namespace: str | None) -> dict[str, Any]:
    """Commit the removal of the request's objects from ``deployments/`` (the reconcile prunes them)."""
    namespace = _namespace(settings, namespace)
    files = deployments.request_files(yaml_content, namespace=namespace, namespaces=settings.workload_namespaces)
    wanted = {ObjectRef.of(obj) for obj in files.values()}
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        folder = installation.read_folder(repo, commit, f"{deployments.FOLDER}/{namespace}")
        edits, found = [], set()
        for path, data in folder.files.items():
            objects, _ = deployments.parse(data.decode("utf-8", "replace"), path=path, namespace=namespace,
                                           namespaces=settings.workload_namespaces)
            here = {ObjectRef.of(o) for o in objects} & wanted
            if here:
                found |= here
                kept = deployments.remove_from_file(data.decode(), path=path, refs=here, namespace=namespace)
                edits.append(FileEdit(path, kept))
        missing = wanted - found
        if missing:
            raise UserError("not in deployments/ at the branch head, so nothing to delete: "
                            + ", ".join(sorted(map(str, missing))))
        names = ", ".join(sorted(str(r) for r in found))
        result = write(repo, edits, message=f"Delete {names}\n\nRequested through the deployer's POST /delete.",
                       author=installation.author(settings, "vllmbench-deployer"), retries=settings.git_push_retries)
    rid = request_id(namespace, files, "delete")
    DeployRequests(db).save({"_id": rid, "action": "delete", "namespace": namespace, "objects": sorted(map(str, found)),
                             "files": sorted(e.path for e in edits), "commit": result.commit, "created": result.created})
    return {"id": rid, "commit": result.commit, "created_commit": result.created,
            "files": sorted(e.path for e in edits), "objects": sorted(map(str, found)),
            "reconcile": _reconcile_now(settings, db, runtime)}


def _namespace(settings: Any, namespace: str | None) -> str:
    allowed = settings.workload_namespaces
    if not allowed:
        raise UserError("no benchmark namespaces are configured (VLLMBENCH_WORKLOAD_NAMESPACES)")
    chosen = namespace or allowed[0]
    if chosen not in allowed:
        raise ValidationFailed(f"namespace {chosen!r} is not a benchmark namespace; allowed: {', '.join(allowed)}",
                               details=[{"loc": "body.namespace", "msg": f"{chosen!r} is not allowed",
                                         "expected": f"one of {', '.join(allowed)}"}])
    return chosen


def _check_with_runtime(runtime: Runtime, files: dict[str, dict[str, Any]]) -> str:
    """The runtime's own validation (a dry-run apply) and "not ours" before anything is committed.

    A runtime that cannot be reached does not block a commit: Git is the truth and the
    reconcile applies it when the cluster is back. The answer says which check ran.
    """
    problems = []
    try:
        for path, obj in files.items():
            ref = ObjectRef.of(obj)
            live = runtime.get(ref)
            if live is not None and ((live.get("metadata") or {}).get("labels") or {}).get(
                    "vllmbench.dev/owner") != OWNER:
                raise Conflict(f"{ref} exists already and is {ownership(live)}: it is never changed by the "
                               "deployer; choose another name or delete it first; nothing was committed")
            try:
                runtime.apply(mark(obj, owner=OWNER, source=path, commit="0" * 40), field_manager=f"vllmbench-{OWNER}",
                              dry_run=True)
            except ValidationFailed as exc:
                problems += [{**d, "loc": f"{path}: {d['loc']}"} for d in exc.details] or [
                    {"loc": path, "msg": exc.message, "expected": "an object the API accepts"}]
    except RetryableError as exc:
        log.warning("runtime unreachable, committing without its dry-run: %s", exc.message)
        return f"policy only ({runtime.name} runtime unreachable: {exc.message})"
    if problems:
        raise ValidationFailed(f"the {runtime.name} runtime refused it: {problems[0]['msg']}; nothing was committed",
                               details=problems)
    return f"policy and the {runtime.name} runtime's dry-run"


def _reconcile_now(settings: Any, db: Any, runtime: Runtime) -> dict[str, Any]:
    """Apply the new head at once when no reconcile runs; else the running one's next turn does."""
    from vllmbench.store.leases import LeaseBusy

    try:
        outcome = reconcile_head(settings, db, runtime, trigger="deploy")
    except LeaseBusy:
        return {"state": "queued", "message": "a reconcile is running; the pushed event or the next tick applies this"}
    except RetryableError as exc:
        return {"state": "pending", "message": f"committed; not applied yet: {exc.message}"}
    return {"state": "done", "run_id": outcome["run_id"], "counts": outcome["counts"], "errors": outcome["errors"]}
