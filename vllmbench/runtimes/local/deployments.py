"""The Deployment controller, as a decision: a Deployment and its pods in, what to do and the
new status out.

``replicas`` pods named ``<name>-<pod-template-hash>-<5 chars>`` with the template's labels
plus ``pod-template-hash``, owned by the Deployment (there are no ReplicaSet objects here).
A template change replaces the pods the Recreate way, whatever the strategy says: the old
pods stop first, then the new ones start. Status and conditions as the deployment
controller writes them: Available (MinimumReplicasAvailable / MinimumReplicasUnavailable),
Progressing (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable, or False with
ProgressDeadlineExceeded once no progress was made for ``progressDeadlineSeconds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vllmbench.runtimes.local.pods import SUFFIX, is_ready, ready_since
from vllmbench.runtimes.local.procs import parse_time, rfc3339

HASH = "pod-template-hash"


@dataclass
class Plan:
    status: dict[str, Any]
    create: int = 0
    terminate: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    template_hash: str = ""


def template_hash(template: dict[str, Any]) -> str:
    """FNV-1a of the template, its decimal digits spelled in the API's safe alphabet (as ComputeHash does)."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SUFFIX[int(d) % len(SUFFIX)] for d in str(value))


def _max_unavailable(spec: dict[str, Any], replicas: int) -> int:
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(replicas * int(value[:-1]) / 100)
    return int(value)


def _set(conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, now: float,
         *, progress: bool = False) -> None:
    old = next((c for c in conditions if c["type"] == type_), None)
    changed = old is None or old["status"] != status
    new = {"type": type_, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": rfc3339(now) if (changed or progress or old["reason"] != reason) else old["lastUpdateTime"],
           "lastTransitionTime": rfc3339(now) if changed else old["lastTransitionTime"]}
    if old is None:
        conditions.append(new)
    else:
        conditions[conditions.index(old)] = new


def decide(deployment: dict[str, Any], pods: list[dict[str, Any]], now: float) -> Plan:
    spec = deployment.get("spec") or {}
    meta = deployment["metadata"]
    status = dict(deployment.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or []]
    h = template_hash(spec.get("template") or {})
    plan = Plan(status=status, template_hash=h)
    rs = f"{meta['name']}-{h}"
    mine = [p for p in pods if any(o.get("uid") == meta["uid"] for o in p["metadata"].get("ownerReferences") or [])]
    live = [p for p in mine if not p["metadata"].get("deletionTimestamp")]
    current = [p for p in live if p["metadata"].get("labels", {}).get(HASH) == h]
    old = [p for p in live if p["metadata"].get("labels", {}).get(HASH) != h]
    stopping_old = [p for p in mine if p["metadata"].get("deletionTimestamp")
                    and p["metadata"].get("labels", {}).get(HASH) != h]
    replicas = spec.get("replicas", 1)
    new_rs = not any(c.get("reason") == "NewReplicaSetCreated" and rs in c.get("message", "") for c in conditions) \
        and not current
    if old:
        plan.terminate += [p["metadata"]["name"] for p in old]
        old_hashes = sorted({p["metadata"]["labels"].get(HASH, "") for p in old})
        for old_h in old_hashes:
            n = sum(1 for p in old if p["metadata"]["labels"].get(HASH, "") == old_h)
            plan.events.append(("ScalingReplicaSet", f"Scaled down replica set {meta['name']}-{old_h} from {n} to 0",
                                "Normal"))
    elif not stopping_old:  # Recreate: new pods only once the old ones are gone
        if len(current) < replicas:
            plan.create = replicas - len(current)
            plan.events.append(("ScalingReplicaSet", f"Scaled up replica set {rs} from {len(current)} to {replicas}",
                                "Normal"))
        elif len(current) > replicas:
            # the ones not ready first, then the newest, as the ReplicaSet controller picks
            extra = sorted(current, key=lambda p: (is_ready(p), p["metadata"].get("creationTimestamp", "")),
                           reverse=False)[: len(current) - replicas]
            plan.terminate += [p["metadata"]["name"] for p in extra]
            plan.events.append(("ScalingReplicaSet", f"Scaled down replica set {rs} from {len(current)} to {replicas}",
                                "Normal"))
    kept = [p for p in current if p["metadata"]["name"] not in plan.terminate]
    min_ready = spec.get("minReadySeconds", 0)
    ready = [p for p in kept if is_ready(p)]
    available = [p for p in ready if now - (ready_since(p) or now) >= min_ready]
    counts = {"replicas": len(kept) + plan.create + len(old), "updatedReplicas": len(kept) + plan.create,
              "readyReplicas": len(ready), "availableReplicas": len(available),
              "unavailableReplicas": max(0, replicas - len(available))}
    before = {k: status.get(k, 0) for k in counts}
    for key, value in counts.items():
        if value:
            status[key] = value
        else:
            status.pop(key, None)
    status["observedGeneration"] = meta.get("generation", 1)
    if len(available) >= replicas - _max_unavailable(spec, replicas):
        _set(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
    else:
        _set(conditions, "Available", "False", "MinimumReplicasUnavailable",
             "Deployment does not have minimum availability.", now)
    complete = not old and not stopping_old and len(kept) == replicas and len(available) == replicas
    progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
    if complete:
        _set(conditions, "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs}" has successfully '
             "progressed.", now)
    elif new_rs and plan.create:
        _set(conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs}"', now,
             progress=True)
    elif before != counts or plan.create or plan.terminate or progressing is None:
        _set(conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs}" is progressing.', now,
             progress=True)
    else:
        last = parse_time(progressing.get("lastUpdateTime")) or now
        if progressing["status"] == "True" and progressing["reason"] != "NewReplicaSetAvailable" \
                and now - last > spec.get("progressDeadlineSeconds", 600):
            _set(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                 f'ReplicaSet "{rs}" has timed out progressing.', now)
            plan.events.append(("ProgressDeadlineExceeded", f'ReplicaSet "{rs}" has timed out progressing.',
                                "Warning"))
    status["conditions"] = sorted(conditions, key=lambda c: c["type"])
    return plan
