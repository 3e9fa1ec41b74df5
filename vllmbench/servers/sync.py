"""One sync of the vLLM service: ``models/`` at the branch head -> placements -> the cluster -> statuses.

    lease -> read the head -> ledger + inventory -> plan (pure) -> commit the ledger (compare-and-set)
          -> record decisions -> render -> the reconcile engine (owner "vllm") -> observe -> events

It runs after every deploy and delete, on every push (``dev.vllmbench.gitops.pushed``), on
the PingSource tick (re-planning the waiting servers, following statuses) and on
``POST /reconcile``. One sync at a time (a lease in the store); the ledger's
compare-and-set keeps two placements from sharing GPUs even if a lease ran out mid-way.
Everything is idempotent: a sync with nothing new writes nothing.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vllmbench.errors import RetryableError
from vllmbench.logs import get_logger, info
from vllmbench.placement.decision import Decision
from vllmbench.placement.render import identity_hash, render
from vllmbench.reconcile.engine import Outcome, Reconciler, pods_of
from vllmbench.reconcile.health import Health, health
from vllmbench.reconcile.objects import Desired, owner_labels
from vllmbench.runtimes.base import KINDS, ObjectRef, Runtime
from vllmbench.servers import capacity, lifecycle
from vllmbench.servers.folder import ServerFile
from vllmbench.servers.head import Head, read_head, workload_namespace
from vllmbench.servers.placing import Placement, holds_gpus, plan_sync
from vllmbench.store.leases import Leases
from vllmbench.store.placements import Ledger, Servers

log = get_logger("vllmbench.vllm")
OWNER = "vllm"
ENGINE_KINDS = [KINDS[("v1", "Service")], KINDS[("apps/v1", "Deployment")]]
LEASE, LEASE_TTL_S, COMMIT_TRIES = "vllm:sync", 300.0, 8
PROBES = 16  # /v1/models asked at once


def reconciler(settings: Any, db: Any, runtime: Runtime) -> Reconciler:
    return Reconciler(runtime, db, owner=OWNER, namespaces=settings.workload_namespaces, kinds=ENGINE_KINDS,
                      lease_wait_s=30)


def sync(settings: Any, db: Any, runtime: Runtime, *, trigger: str, emit: lifecycle.Emit | None,
         wait_s: float = 30.0) -> dict[str, Any]:
    """Place and apply ``models/`` at the branch head; LeaseBusy when another sync holds on past ``wait_s``."""
    run = uuid.uuid4().hex
    leases = Leases(db)
    leases.acquire(LEASE, run, ttl_s=LEASE_TTL_S, wait_s=wait_s, what="a sync of the vLLM servers")
    try:
        head = read_head(settings)
        placement, docs = _place(settings, db, runtime, head, run)
        outcome = reconciler(settings, db, runtime).reconcile(_desired(settings, head, docs, runtime.name),
                                                              commit=head.commit, trigger=trigger,
                                                              held_sources=set(head.problems))
        entering = {k for k, d in placement.decisions.items() if d.outcome == "placed"}
        docs = observe(settings, db, runtime, docs, emit=emit, live=outcome, entering=entering)
    finally:
        leases.release(LEASE, run)
    summary = {"commit": head.commit, "run_id": outcome.run_id, "counts": outcome.plan.counts(),
               "errors": outcome.errors, "problems": head.problems,
               "planned": {key: {"outcome": d.outcome, "reason": d.reason, "why": placement.why.get(key)}
                           for key, d in placement.decisions.items()},
               "preempted": sorted(placement.victims), "removed": sorted(placement.gone),
               "servers": {key: {"phase": d.get("phase"), "reason": d.get("reason")} for key, d in docs.items()}}
    info(log, "vllm sync", trigger=trigger, commit=head.commit, planned=len(placement.decisions),
         preempted=len(placement.victims), removed=len(placement.gone))
    return summary


def _place(settings: Any, db: Any, runtime: Runtime, head: Head, run: str) -> tuple[Placement, dict[str, dict]]:
    """Plan on the ledger as read, commit it by compare-and-set; plan again when someone committed first."""
    ledger, servers = Ledger(db), Servers(db)
    for _ in range(COMMIT_TRIES):
        state, docs = ledger.read(), servers.all()
        inventory, lost = capacity.gather(settings, runtime, state.claims)
        now = time.time()
        placement = plan_sync(head.servers, head.held, docs, inventory, ledger_holders=state.holders(), lost=lost,
                              now=now)
        claims = capacity.claim_docs(inventory, set(head.servers) | head.held)
        if claims == state.claims or ledger.commit(state.version, claims, writer=run):
            return placement, _record(settings, db, head, docs, placement, now)
        time.sleep(0.05)
    raise RetryableError("the GPU ledger kept changing while this placement was planned; try again")


def _record(settings: Any, db: Any, head: Head, docs: dict[str, dict], placement: Placement,
            now: float) -> dict[str, dict]:
    """Write what was decided into each server's record (the phase moves later, in :func:`observe`)."""
    servers = Servers(db)
    servers.forget(sorted(placement.gone & set(docs)))
    for key in placement.gone:
        docs.pop(key, None)
    for key, found in head.servers.items():
        fields = _spec_fields(settings, found, head.commit)
        decision = placement.decisions.get(key)
        old = docs.get(key) or {}
        if decision is not None and decision.outcome != "unchanged":
            fields.update(decision=decision.model_dump(mode="json"), reused=decision.reused, preempted_by=None,
                          hints=decision.hints)
            if fields["decision"] != old.get("decision"):  # a waiting server planned again to the same end: no write
                fields["decided_at"] = now
            if decision.outcome == "placed":
                fields["placed_at"] = now
        if key in placement.victims:
            fields.update(preempted_by=_preemptor(placement, key), hints=[])
        changed = {k: v for k, v in fields.items() if old.get(k) != v}
        if changed or key not in docs:
            servers.save(key, changed)
            docs[key] = {"_id": key, "phase": "new", "generation": 0, **old, **changed}
    return docs


def _spec_fields(settings: Any, found: ServerFile, commit: str) -> dict[str, Any]:
    spec = found.spec
    return {"namespace": found.namespace, "name": found.name, "path": found.path, "commit": commit,
            "spec": spec.model_dump(mode="json"), "digest": found.digest, "identity": spec.identity(),
            "identity_hash": identity_hash(spec), "priority": spec.priority, "model": spec.model_name,
            "served_model_name": spec.served_name, "facts_source": found.facts_source, "port": spec.port,
            "workload_namespace": workload_namespace(settings, found.namespace)}


def _preemptor(placement: Placement, victim: str) -> str | None:
    return next((d.server for d in placement.decisions.values() if any(v.server == victim for v in d.preempted)),
                None)


def _desired(settings: Any, head: Head, docs: dict[str, dict], runtime_name: str) -> list[Desired]:
    """Deployment + Service per server in Git (0 replicas unless placed); one that reuses another renders nothing."""
    out = []
    for key, found in sorted(head.servers.items()):
        doc = docs.get(key) or {}
        if doc.get("reused"):
            continue
        decision = Decision.model_validate(doc["decision"]) if holds_gpus(doc) else None
        objects = render(found.spec, decision, name=found.name, namespace=doc.get("workload_namespace") or
                         workload_namespace(settings, found.namespace), server_namespace=found.namespace,
                         placed_at=doc.get("placed_at") or 0)
        out += [Desired(for_runtime(obj, runtime_name), found.path) for obj in objects]
    return out


def for_runtime(obj: dict[str, Any], runtime_name: str) -> dict[str, Any]:
    """The local runtime keeps no Secrets (the optional HF token goes) and shares GPUs by index."""
    if runtime_name != "local" or obj.get("kind") != "Deployment":
        return obj
    template = obj["spec"]["template"]
    indices = (template["metadata"].get("annotations") or {}).get("vllmbench.dev/gpu-indices")
    for container in template["spec"]["containers"]:
        env = [e for e in container.get("env") or []
               if not ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("optional")]
        if indices:
            env.append({"name": "CUDA_VISIBLE_DEVICES", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['vllmbench.dev/gpu-indices']"}}})
        container["env"] = env
    return obj


def observe(settings: Any, db: Any, runtime: Runtime, docs: dict[str, dict], *, emit: lifecycle.Emit | None,
            live: Outcome | None = None, only: set[str] | None = None, entering: set[str] = frozenset(),
            probe: bool = True) -> dict[str, dict]:
    """Move each server's phase to what its decision and its live objects say now. ``entering``: servers
    placed by this sync, which announce the placement before anything else. Servers that reuse another
    follow it, so they go last; the /v1/models probes run side by side."""
    servers = Servers(db)
    keys = sorted(docs if only is None else only & set(docs), key=lambda k: (bool(docs[k].get("reused")), k))
    placed: list[tuple[str, Health, list[dict[str, Any]], str]] = []
    pods_by_ns: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        doc = docs[key]
        decision = doc.get("decision") or {}
        outcome = decision.get("outcome")
        if doc.get("preempted_by"):
            docs[key] = lifecycle.move(servers, doc, "pending", _victim_reason(doc), emit=emit, fields={"url": None},
                                       event=lifecycle.PREEMPTED)
        elif outcome in ("pending", "invalid"):
            docs[key] = lifecycle.move(servers, doc, "pending" if outcome == "pending" else "failed",
                                       decision.get("reason", ""), emit=emit, fields={"url": None})
        elif outcome == "placed":
            url = _url(settings, runtime, doc)
            state, pods = _health(settings, runtime, doc, live=live, pods_by_ns=pods_by_ns)
            placed.append((key, state, pods, url))
    asked = [(key, url) for key, state, _, url in placed if probe and state.state == "ready"]
    with ThreadPoolExecutor(max_workers=min(PROBES, max(len(asked), 1))) as pool:
        probes = dict(zip([k for k, _ in asked], pool.map(
            lambda item: lifecycle.probe(item[1], docs[item[0]].get("served_model_name") or ""), asked)))
    for key, state, pods, url in placed:
        doc = docs[key]
        phase, reason = lifecycle.observed_phase(doc, state, probed=probes.get(key))
        fields: dict[str, Any] = {"url": url, "pods": state.pods}
        if phase == "failed":
            hints = lifecycle.log_hints(runtime, _namespace(settings, doc), pods,
                                        util=(doc.get("decision") or {}).get("gpu_memory_utilization"))
            reason = lifecycle.with_hints(reason, hints)
            fields["log_hints"] = hints
        docs[key] = lifecycle.move(servers, doc, phase, reason, emit=emit, fields=fields, placed=key in entering)
    for key in keys:
        doc = docs[key]
        if (doc.get("decision") or {}).get("outcome") == "reused" and not doc.get("preempted_by"):
            twin = docs.get(doc.get("reused") or "") or Servers(db).get(doc.get("reused") or "") or {}
            ready = twin.get("phase") == "ready"
            docs[key] = lifecycle.move(servers, doc, "ready" if ready else "pending",
                                       f"reusing {doc.get('reused')}, which is {twin.get('phase', 'gone')}",
                                       emit=emit, fields={"url": twin.get("url") if ready else None})
    return docs


def _health(settings: Any, runtime: Runtime, doc: dict[str, Any], *, live: Outcome | None,
            pods_by_ns: dict[str, list[dict[str, Any]]]) -> tuple[Health, list[dict[str, Any]]]:
    """A placed server's Deployment and pods, in the engine's words (one pod listing per namespace)."""
    namespace = _namespace(settings, doc)
    ref = ObjectRef("apps/v1", "Deployment", namespace, doc["name"])
    obj = live.live.get(ref) if live is not None and ref in live.live else runtime.get(ref)
    if namespace not in pods_by_ns:
        pods_by_ns[namespace] = runtime.pods(namespace, owner_labels(OWNER))
    pods = pods_of(obj, pods_by_ns[namespace])
    return health(obj, pods=pods, unsupported=runtime.unsupported(obj) if obj else None), pods


def _victim_reason(doc: dict[str, Any]) -> str:
    return f"preempted by {doc.get('preempted_by')}; it returns by itself when capacity does"


def _namespace(settings: Any, doc: dict[str, Any]) -> str:
    return doc.get("workload_namespace") or workload_namespace(settings, doc["namespace"])


def _url(settings: Any, runtime: Runtime, doc: dict[str, Any]) -> str:
    """The server's base URL as this installation reaches it (the runtime's Service URL by default)."""
    namespace, port = _namespace(settings, doc), int(doc.get("port") or 8000)
    if settings.vllm_probe_url:
        return settings.vllm_probe_url.format(namespace=namespace, name=doc["name"], port=port,
                                              server_namespace=doc.get("namespace"))
    return runtime.service_url(namespace, doc["name"], port)


__all__ = ["OWNER", "observe", "sync"]
