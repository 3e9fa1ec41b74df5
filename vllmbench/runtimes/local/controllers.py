"""Running the controllers, with no daemon: on apply, on reads, and when a shim kicks.

A pass over one Deployment or Job reads its pods, asks the pure decision
(:mod:`.deployments`, :mod:`.jobs`) what to do, and does it: new pods, pods to stop,
events, the status. The first look takes no lock; only when something is to be done is
the lock taken and the decision made again on what is then on disk, so that two
processes never both create the same pod. The same pass starts the shim again of a pod
that lost it and removes the deleted pods whose shims have stopped.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from vllmbench.runtimes.local import deployments, events, jobs, pods
from vllmbench.runtimes.local.procs import parse_time, rfc3339

if TYPE_CHECKING:
    from vllmbench.runtimes.local.runtime import LocalRuntime

CONTROLLED = ("Deployment", "Job")
COMPONENT = {"Deployment": "deployment-controller", "Job": "job-controller"}


def pods_by_owner(rt: "LocalRuntime", namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The namespace's pods with their status, by the uid of their controller ('' for none)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for pod in rt.store.list(rt.kind_of(*pods.POD), namespace):
        pods.with_status(rt, pod)
        owner = next((o["uid"] for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), "")
        out.setdefault(owner, []).append(pod)
    return out


def needs_tending(rt: "LocalRuntime", pod: dict[str, Any]) -> bool:
    """Whether a pod waits for the runtime: deleted with its shim gone, or without the shim it should have."""
    state = pods.shim_state(rt, pod)
    if pod["metadata"].get("deletionTimestamp"):
        return state != "running"
    if rt.stopped:
        return False
    if state == "blocked":
        return bool((pods.raw_status(pods.folder(rt, pod["metadata"]["namespace"], pod["metadata"]["name"])) or {})
                    .get("_retry"))
    return state == "lost"


def tend(rt: "LocalRuntime", pod: dict[str, Any], *, force: bool = False) -> str:
    """Collect or revive one pod (under the lock): 'collected', 'revived' or ''."""
    if pod["metadata"].get("deletionTimestamp"):
        return "collected" if pods.collect(rt, pod) else ""
    return "revived" if pods.revive(rt, pod, force=force) else ""


def _decide(obj: dict[str, Any], owned: list[dict[str, Any]], now: float) -> Any:
    return (deployments.decide if obj["kind"] == "Deployment" else jobs.decide)(obj, owned, now)


def _idle(obj: dict[str, Any], plan: Any) -> bool:
    return not (plan.create or plan.terminate or plan.events or getattr(plan, "delete", False)) \
        and plan.status == (obj.get("status") or {})


def sync(rt: "LocalRuntime", obj: dict[str, Any], index: dict[str, list[dict[str, Any]]] | None = None
         ) -> tuple[dict[str, Any] | None, bool, float | None]:
    """One controller pass over a Deployment or Job: (the object now or None once deleted,
    whether anything was written, when the controller wants another look)."""
    meta = obj["metadata"]
    if index is None:
        index = pods_by_owner(rt, meta["namespace"])
    owned = index.get(meta["uid"], [])
    now = time.time()
    if meta.get("deletionTimestamp"):
        if not any(needs_tending(rt, p) for p in owned) and owned:
            return obj, False, None
        with rt.store.lock():
            return finish_delete(rt, obj), True, None
    plan = _decide(obj, owned, now)
    if _idle(obj, plan) and not any(needs_tending(rt, p) for p in owned):
        return obj, False, plan.wake_at if obj["kind"] == "Job" else None
    with rt.store.lock():
        fresh = rt.store.get(rt.kind_of(obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"]["uid"] != meta["uid"]:
            return fresh, False, None
        owned = pods_by_owner(rt, meta["namespace"]).get(meta["uid"], [])
        tended = [tend(rt, p) for p in owned]
        if "collected" in tended:
            owned = pods_by_owner(rt, meta["namespace"]).get(meta["uid"], [])
        plan = _decide(fresh, owned, time.time())
        return execute(rt, fresh, plan, owned), True, getattr(plan, "wake_at", None)


def execute(rt: "LocalRuntime", obj: dict[str, Any], plan: Any, owned: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Do what a decision says (under the lock)."""
    meta = obj["metadata"]
    component = COMPONENT[obj["kind"]]
    for reason, message, type_ in plan.events:
        events.record(rt.root, obj, reason, message, type_=type_, component=component)
    by_name = {p["metadata"]["name"]: p for p in owned}
    for name in plan.terminate:
        if name in by_name:
            pods.mark_deleted(rt, by_name[name])
    if obj["kind"] == "Deployment":
        for _ in range(plan.create):
            name = f"{meta['name']}-{plan.template_hash}-{pods.suffix()}"
            pod = pods.build(obj, obj["spec"]["template"], name, labels={deployments.HASH: plan.template_hash})
            pods.create(rt, pod)
    else:
        deadline = obj["spec"].get("activeDeadlineSeconds")
        started = plan.status.get("startTime")
        kick_at = [parse_time(started) + deadline] if deadline is not None and started else []
        for index in plan.create:
            labels, annotations = jobs.pod_labels(obj, index)
            template = copy.deepcopy(obj["spec"]["template"])
            if index is not None:
                for c in (template["spec"].get("initContainers") or []) + template["spec"]["containers"]:
                    if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or []):
                        c.setdefault("env", []).append(jobs.index_env())
            name = f"{meta['name']}-{index}-{pods.suffix()}" if index is not None else f"{meta['name']}-{pods.suffix()}"
            pod = pods.build(obj, template, name, labels=labels, annotations=annotations)
            pods.create(rt, pod, kick_at=kick_at)  # the shim looks in at the deadline
            events.record(rt.root, obj, "SuccessfulCreate", f"Created pod: {name}", component=component)
    if getattr(plan, "delete", False):
        return delete_owner(rt, obj)
    if plan.status != (obj.get("status") or {}):
        obj = dict(obj)
        obj["status"] = plan.status
        obj = rt.store.put(obj)
    return obj


def delete_owner(rt: "LocalRuntime", obj: dict[str, Any]) -> dict[str, Any] | None:
    """Foreground deletion of a Deployment or Job (under the lock): the mark, then its pods stopped."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp"):
        obj = copy.deepcopy(obj)
        obj["metadata"]["deletionTimestamp"] = rfc3339()
        obj["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
        obj = rt.store.put(obj)
    for pod in pods_by_owner(rt, meta["namespace"]).get(meta["uid"], []):
        pods.mark_deleted(rt, pod)
    return finish_delete(rt, obj)


def finish_delete(rt: "LocalRuntime", obj: dict[str, Any]) -> dict[str, Any] | None:
    """Remove the deleted pods whose shims stopped, and the owner once none is left (under the lock)."""
    meta = obj["metadata"]
    left = [p for p in pods_by_owner(rt, meta["namespace"]).get(meta["uid"], []) if not pods.collect(rt, p)]
    for pod in left:
        if not pod["metadata"].get("deletionTimestamp"):
            pods.mark_deleted(rt, pod)
    if left:
        return obj
    rt.store.remove(rt.kind_of(obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"])
    events.forget(rt.root, meta["namespace"], obj["kind"], meta["name"])
    return None
