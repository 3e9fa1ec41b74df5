"""Planning a reconcile: desired objects + the owner's live inventory -> actions. Pure.

Each action says what will happen to one object and why:

| op | when |
| --- | --- |
| ``create`` | in Git, not live |
| ``update`` | in Git with other content than applied (its hash changed) |
| ``drift`` | content unchanged in Git, but a field we own changed live (confirmed by a dry-run before writing) |
| ``unchanged`` | live holds what Git says: nothing is written |
| ``recreate`` | a field that cannot change in place changed (a Job's template, a Service's clusterIP, a selector) |
| ``prune`` | live and ours, no longer in Git |
| ``conflict`` | in Git, but the live object of that name is not ours: never touched |
| ``hold`` | ours and live, but its file in Git is invalid at this commit: left as it is |

Creates and updates run in dependency order (ConfigMaps before the Deployments that
read them); prunes in the reverse order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vllmbench.reconcile.drift import differences
from vllmbench.reconcile.objects import (
    APPLIED_HASH,
    COMMIT,
    IMMUTABLE_FIELDS,
    IMMUTABLE_HASH,
    SOURCE,
    annotation,
    get_path,
    order,
    ownership,
)
from vllmbench.runtimes.base import ObjectRef

Op = Literal["create", "update", "drift", "unchanged", "recreate", "prune", "conflict", "hold"]
WRITES: frozenset[str] = frozenset({"create", "update", "drift", "recreate", "prune"})


@dataclass
class Action:
    ref: ObjectRef
    op: Op
    reason: str
    source: str | None = None
    desired: dict[str, Any] | None = field(default=None, repr=False)
    live: dict[str, Any] | None = field(default=None, repr=False)
    paths: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return self.op in WRITES

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": str(self.ref), "kind": self.ref.kind, "namespace": self.ref.namespace,
                               "name": self.ref.name, "op": self.op, "reason": self.reason, "source": self.source}
        if self.paths:
            out["paths"] = self.paths[:20]
        return out


@dataclass
class Plan:
    commit: str
    actions: list[Action]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.op] = counts.get(action.op, 0) + 1
        return counts

    @property
    def writes(self) -> int:
        return sum(1 for action in self.actions if action.writes)

    def summary(self) -> dict[str, Any]:
        return {"commit": self.commit, "counts": self.counts(), "actions": [a.summary() for a in self.actions]}


def plan(desired: list[dict[str, Any]], inventory: list[dict[str, Any]], *, commit: str,
         foreign: dict[ObjectRef, dict[str, Any]] | None = None,
         held_sources: set[str] | frozenset[str] = frozenset()) -> Plan:
    """The actions that bring ``inventory`` (the owner's live objects) to ``desired``.

    ``desired`` objects are marked already (:func:`vllmbench.reconcile.objects.mark`).
    ``foreign`` holds live objects with a desired object's name that are not in the
    inventory (not ours). ``held_sources`` are files that are invalid at ``commit``:
    their live objects are kept as they are rather than pruned.
    """
    foreign = foreign or {}
    live_by_ref = {ObjectRef.of(obj): obj for obj in inventory}
    wanted: dict[ObjectRef, dict[str, Any]] = {}
    for obj in desired:
        ref = ObjectRef.of(obj)
        if ref in wanted:
            raise ValueError(f"{ref} is defined twice: in {annotation(wanted[ref], SOURCE)} and {annotation(obj, SOURCE)}")
        wanted[ref] = obj

    applies: list[Action] = []
    for ref, obj in wanted.items():
        source = annotation(obj, SOURCE)
        live = live_by_ref.get(ref)
        if live is None:
            other = foreign.get(ref)
            if other is not None:
                applies.append(Action(ref, "conflict", f"exists, not ours: {ownership(other)}; left alone",
                                      source, obj, other))
            else:
                applies.append(Action(ref, "create", f"new in Git ({source})", source, obj))
            continue
        applies.append(_compare(ref, obj, live, source))

    prunes: list[Action] = []
    for ref, live in live_by_ref.items():
        if ref in wanted:
            continue
        source = annotation(live, SOURCE)
        if source in held_sources:
            prunes.append(Action(ref, "hold", f"{source} is invalid at {commit[:12]}: left as applied from "
                                 f"{(annotation(live, COMMIT) or '?')[:12]}", source, None, live))
        else:
            where = f"{source} no longer defines it" if source else "not in Git"
            prunes.append(Action(ref, "prune", f"left Git: {where} at {commit[:12]}", source, None, live))

    applies.sort(key=lambda a: (order(a.ref.kind), a.ref))
    prunes.sort(key=lambda a: (-order(a.ref.kind), a.ref))
    return Plan(commit, applies + prunes)


def _compare(ref: ObjectRef, obj: dict[str, Any], live: dict[str, Any], source: str | None) -> Action:
    wanted_immutable, live_immutable = annotation(obj, IMMUTABLE_HASH), annotation(live, IMMUTABLE_HASH)
    if wanted_immutable is not None and wanted_immutable != live_immutable:
        changed = [p for p in IMMUTABLE_FIELDS.get(ref.kind, ()) if get_path(obj, p) is not None] or ["spec"]
        return Action(ref, "recreate", f"{', '.join(changed)} of a {ref.kind} cannot change in place: "
                      "deleted and created again", source, obj, live, changed)
    if annotation(obj, APPLIED_HASH) != annotation(live, APPLIED_HASH):
        commit = annotation(obj, COMMIT) or "?"
        return Action(ref, "update", f"changed in Git at {commit[:12]}", source, obj, live)
    # Same content: it still shows the commit that last changed it (no rewrite for a new head).
    live_commit = annotation(live, COMMIT)
    if live_commit:
        obj["metadata"]["annotations"][COMMIT] = live_commit
    drifted = differences(obj, live)
    if drifted:
        return Action(ref, "drift", "changed in the cluster, not in Git: " + ", ".join(drifted[:5]),
                      source, obj, live, drifted)
    return Action(ref, "unchanged", "live matches Git", source, obj, live)
