"""What the deployer answers about deployments and objects, from what the engine recorded."""

from __future__ import annotations

from typing import Any

from vllmbench.errors import RetryableError, UserError
from vllmbench.runtimes.base import Runtime
from vllmbench.store.reconcile import ReconcileStore

_WORST = ["failed", "pending", "unsupported", "missing", "progressing", "running", "complete", "ready"]


def _object_view(doc: dict[str, Any]) -> dict[str, Any]:
    health = doc.get("health") or {}
    return {"object": f"{doc['kind']} {doc['namespace']}/{doc['name']}", "kind": doc["kind"],
            "namespace": doc["namespace"], "name": doc["name"], "source": doc.get("source"),
            "commit": doc.get("commit"), "last_action": doc.get("op"), "reason": doc.get("reason"),
            "state": health.get("state") or ("conflict" if doc.get("op") == "conflict" else "unknown"),
            "message": health.get("message") or doc.get("reason"), "error": doc.get("error"),
            "pods": health.get("pods") or [], "updated_at": doc.get("updated_at")}


def live_health(runtime: Runtime, docs: list[dict[str, Any]], *, owner: str) -> dict[str, dict[str, Any]]:
    """Health of recorded objects as they are now (one listing per kind and namespace, one pod
    listing per namespace): what ``GET /objects`` shows rather than the state at the last reconcile."""
    from vllmbench.reconcile.engine import pods_of
    from vllmbench.reconcile.health import health
    from vllmbench.reconcile.objects import owner_labels
    from vllmbench.runtimes.base import KINDS

    labels = owner_labels(owner)
    live: dict[str, dict[str, Any]] = {}
    for api_version, kind_name, namespace in sorted({(d["api_version"], d["kind"], d["namespace"]) for d in docs}):
        kind = KINDS.get((api_version, kind_name))
        if kind is None:
            continue
        for obj in runtime.list(kind, namespace=namespace or None, labels=labels):
            live[f"{kind_name} {namespace}/{obj['metadata']['name']}"] = obj
    pods = {ns: runtime.pods(ns, labels) for ns in sorted({d["namespace"] for d in docs if d["namespace"]})}
    found = {}
    for doc in docs:
        name = f"{doc['kind']} {doc['namespace']}/{doc['name']}"
        if doc.get("op") == "conflict":
            continue
        obj = live.get(name)
        state = health(obj, pods=pods_of(obj, pods.get(doc["namespace"], [])),
                       unsupported=runtime.unsupported(obj) if obj else None)
        found[name] = state.to_dict()
    return found


def objects_view(db: Any, *, owner: str, namespace: str | None = None, kind: str | None = None,
                 state: str | None = None, runtime: Runtime | None = None) -> dict[str, Any]:
    store = ReconcileStore(db, owner)
    docs = list(store.objects().values())
    if runtime is not None:
        try:
            current = live_health(runtime, docs, owner=owner)
        except RetryableError:
            current = {}  # the runtime is away: what the last reconcile saw
        for doc in docs:
            name = f"{doc['kind']} {doc['namespace']}/{doc['name']}"
            if name in current:
                doc["health"] = current[name]
    views = [_object_view(doc) for doc in docs]
    views = [v for v in views if (not namespace or v["namespace"] == namespace) and (not kind or v["kind"] == kind)
             and (not state or v["state"] == state)]
    views.sort(key=lambda v: (v["namespace"], v["kind"], v["name"]))
    owner_state = store.state()
    return {"owner": owner, "applied_commit": owner_state.get("applied_commit"),
            "problems": owner_state.get("problems") or {}, "count": len(views), "objects": views}


def deployment_view(db: Any, request: dict[str, Any], *, runtime: Runtime | None = None,
                    owner: str = "deploy") -> dict[str, Any]:
    """A deploy request with each of its objects' recorded status (and live events when asked)."""
    store = ReconcileStore(db, owner)
    recorded = {f"{d['kind']} {d['namespace']}/{d['name']}": d for d in store.objects().values()}
    if runtime is not None:
        wanted = [d for name, d in recorded.items() if name in set(request.get("objects") or [])]
        try:
            for name, state in live_health(runtime, wanted, owner=owner).items():
                recorded[name]["health"] = state
        except RetryableError:
            pass
    objects = []
    for name in request.get("objects") or []:
        doc = recorded.get(name)
        if doc is None:
            state = "deleted" if request.get("action") == "delete" else "not applied yet"
            objects.append({"object": name, "state": state})
            continue
        view = _object_view(doc)
        if runtime is not None:
            view["events"] = _events(runtime, doc)
        objects.append(view)
    states = [o["state"] for o in objects]
    overall = min(states, key=lambda s: _WORST.index(s) if s in _WORST else -1) if states else "unknown"
    if request.get("action") == "delete":
        overall = "deleted" if all(s == "deleted" for s in states) else "deleting"
    commits = {o.get("commit") for o in objects if o.get("commit")}
    owner_state = store.state()
    errors = [o["error"] for o in objects if o.get("error")]
    return {"id": request["_id"], "action": request.get("action"), "namespace": request.get("namespace"),
            "created_at": request.get("created_at"), "files": request.get("files"),
            "desired_commit": request.get("commit"),
            "applied_commit": commits.pop() if len(commits) == 1 else owner_state.get("applied_commit"),
            "state": overall, "last_error": errors[-1] if errors else None, "objects": objects}


def _events(runtime: Runtime, doc: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        events = runtime.events(doc["namespace"], kind=doc["kind"], name=doc["name"])
    except (UserError, RetryableError):
        return []
    return [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
             "time": e.get("lastTimestamp") or e.get("eventTime")} for e in events][-20:]
