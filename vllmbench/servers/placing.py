"""Which servers to plan at a sync, and planning them. Pure: the folder, the records, the inventory in.

A sync plans, on one working copy of the inventory (our ledger's claims in it):

1. servers that left Git give their GPUs back;
2. new and changed servers, and those whose node left, by priority (a changed server
   replaces itself on its own GPUs; one that no longer fits stops holding any);
3. the servers that wait (pending, preempted, or reusing a twin that is gone or not
   ready): ``placement.replan.plan_all(..., fresh=False)``, so that preempted servers come
   back by themselves once capacity returns (a deletion, a node added, a tick).

Victims of a preemption in this sync wait from now on; what they held is free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vllmbench.placement.decision import Decision, Victim
from vllmbench.placement.inventory import Inventory
from vllmbench.placement.planner import RunningServer, apply, plan
from vllmbench.placement.replan import Wanted, plan_all
from vllmbench.servers.folder import ServerFile



@dataclass
class Placement:
    decisions: dict[str, Decision] = field(default_factory=dict)  # newly decided, by key
    why: dict[str, str] = field(default_factory=dict)  # why each was planned
    victims: dict[str, Victim] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # left Git: their records go
    kept: set[str] = field(default_factory=set)  # planned again, nothing changed (``unchanged``)


def holds_gpus(doc: dict[str, Any]) -> bool:
    """Placed on GPUs of its own, and not preempted since."""
    return (doc.get("decision") or {}).get("outcome") == "placed" and not doc.get("preempted_by")


def running(docs: dict[str, dict[str, Any]]) -> list[RunningServer]:
    """Servers placed on GPUs of their own (reuse and preemption read these)."""
    return [RunningServer(key, doc.get("identity") or {}, int(doc.get("priority") or 0),
                          ready=doc.get("phase") == "ready", phase=str(doc.get("phase")),
                          placed_at=float(doc.get("placed_at") or 0))
            for key, doc in sorted(docs.items()) if holds_gpus(doc)]


def waiting(key: str, doc: dict[str, Any], docs: dict[str, dict[str, Any]],
            changing: set[str] | frozenset[str] = frozenset()) -> str | None:
    """Why a recorded server should be planned again now, or None (``changing``: servers planned anew now)."""
    decision = doc.get("decision") or {}
    if doc.get("preempted_by"):
        return f"preempted by {doc['preempted_by']}"
    if doc.get("phase") == "pending" or decision.get("outcome") == "pending":
        return "waiting for capacity"
    twin = doc.get("reused")
    if twin:
        found = docs.get(twin)
        if twin in changing:
            return f"the server it reused, {twin}, is being placed again"
        if found is None or found.get("phase") != "ready" or found.get("reused"):
            return f"the server it reused, {twin}, is {'gone' if found is None else found.get('phase')}"
    return None


def plan_sync(files: dict[str, ServerFile], held: set[str], docs: dict[str, dict[str, Any]],
              inventory: Inventory, *, ledger_holders: set[str], lost: set[str], now: float) -> Placement:
    """Decide what this sync changes; ``inventory`` is updated in place to what the ledger will hold."""
    out = Placement()
    keep = set(files) | held
    for holder in sorted((ledger_holders | set(docs)) - keep):
        inventory.release(holder)
        out.gone.add(holder)
    first: dict[str, str] = {}
    for key, found in files.items():
        doc = docs.get(key)
        if key in lost:
            first[key] = "its node (or GPU) left the cluster"
        elif doc is None:
            first[key] = "new in Git"
        elif doc.get("digest") != found.digest:
            first[key] = "its spec changed in Git"
        elif not doc.get("decision"):
            first[key] = "not placed yet"
    others = [r for r in running(docs) if r.key in keep and r.key not in lost]
    for key in lost:
        inventory.release(key)
    for key in sorted(first, key=lambda k: (-files[k].spec.priority, k)):
        found = files[key]
        decision = plan(found.spec, key=key, facts=found.facts, inventory=inventory, running=others,
                        facts_source=found.facts_source)
        _take(out, inventory, decision, now)
        out.why[key] = first[key]
        if decision.outcome == "unchanged":
            out.kept.add(key)
            _reprioritise(inventory, key, found.spec.priority)
        elif decision.outcome == "placed":
            gone_now = {key} | {v.server for v in decision.preempted}
            others = [r for r in others if r.key not in gone_now] + [
                RunningServer(key, found.spec.identity(), found.spec.priority, ready=False, phase="placed",
                              placed_at=now)]
        else:
            others = [r for r in others if r.key != key]
    alive = {key: doc for key, doc in docs.items() if key in keep}
    later = {key: why for key, doc in alive.items() if key in files and key not in first
             and (why := waiting(key, doc, alive, set(first)))}
    wanted = [Wanted(key, files[key].spec, files[key].facts, files[key].facts_source) for key in later]
    for decision in plan_all(wanted, inventory, running=others, fresh=False):
        _take(out, inventory, decision, now)
        out.why[decision.server] = later[decision.server]
    return out


def _take(out: Placement, inventory: Inventory, decision: Decision, now: float) -> None:
    """Record ``decision`` and carry it into ``inventory`` (a server that is not placed holds nothing)."""
    if decision.outcome == "placed":
        apply(inventory, decision, placed_at=now)
        for victim in decision.preempted:
            out.victims[victim.server] = victim
            out.decisions.pop(victim.server, None)
    elif decision.outcome != "unchanged":
        inventory.release(decision.server)
    out.victims.pop(decision.server, None)
    out.decisions[decision.server] = decision


def _reprioritise(inventory: Inventory, holder: str, priority: int) -> None:
    """A changed priority with the same identity: the claims carry the new one (preemption reads them)."""
    for name in inventory.nodes_of([holder]):
        node = inventory.nodes[name]
        for claim in [c for g in node.gpus for c in g.claims] + [c for m in node.mig.values() for c in m.claims]:
            if claim.holder == holder:
                claim.priority = priority
