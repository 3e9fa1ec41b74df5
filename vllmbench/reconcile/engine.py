"""The reconcile engine: desired objects of one commit -> live objects of one owner.

One engine, several owners (DESIGN.md "Reconcile"): the deployer (``deployments/``),
the vLLM service (``models/``, rendered after placement) and the evaluations (Jobs,
PingSources). A run is a list of small steps, Flux style, each with its own method:

    lease -> mark -> inventory -> plan (pure) -> confirm drift -> apply -> observe -> record

- Only one run of an owner (and partition) at a time: a lease in the store.
- Nothing is written to the runtime for an unchanged object; drift found by the pure
  comparison is confirmed by a server-side dry-run before anything is written.
- One object that the API refuses does not stop the others: its error is recorded.
  A runtime that cannot be reached stops the run (503 + Retry-After); the next run
  plans again from the live state and finishes the work, whatever was done before.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from vllmbench.errors import Forbidden, RetryableError, UserError, ValidationFailed
from vllmbench.logs import get_logger, info
from vllmbench.jobs import last_lines
from vllmbench.reconcile.drift import same_live
from vllmbench.reconcile.health import Health, health
from vllmbench.reconcile.objects import Desired, mark, owner_labels
from vllmbench.reconcile.plan import Action, Plan, plan
from vllmbench.runtimes.base import Kind, ObjectRef, Runtime
from vllmbench.store.leases import Leases
from vllmbench.store.reconcile import ReconcileStore

log = get_logger("vllmbench.reconcile")
LEASE_TTL_S = 120.0
RECREATE_WAIT_S = 60.0
TRIM_SHARE = 0.05  # one run in twenty also drops old run records
_POD_OWNERS = {"Deployment", "Job", "StatefulSet"}


@dataclass
class Outcome:
    run_id: str
    owner: str
    commit: str
    plan: Plan
    results: list[dict[str, Any]] = field(default_factory=list)
    health: dict[ObjectRef, Health] = field(default_factory=dict)
    writes: int = 0
    duration_ms: float = 0.0
    dry_run: bool = False
    live: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("error")]

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "owner": self.owner, "commit": self.commit, "dry_run": self.dry_run,
                "counts": self.plan.counts(), "writes": self.writes, "duration_ms": self.duration_ms,
                "errors": self.errors, "actions": self.results or [a.summary() for a in self.plan.actions]}


class Reconciler:
    """Reconciles one owner's objects in ``namespaces`` through ``runtime``, recording in ``db``."""

    def __init__(self, runtime: Runtime, db: Any, *, owner: str, namespaces: list[str], kinds: list[Kind],
                 partition: str | None = None, lease_wait_s: float = 0.0) -> None:
        self.runtime = runtime
        self.owner = owner
        self.partition = partition
        self.namespaces = namespaces
        self.kinds = kinds
        self.field_manager = f"vllmbench-{owner}"
        self.store = ReconcileStore(db, owner, partition)
        self.leases = Leases(db)
        self.lease_wait_s = lease_wait_s

    # -- the run ----------------------------------------------------------------------
    def reconcile(self, desired: list[Desired], *, commit: str, trigger: str = "manual",
                  held_sources: set[str] | frozenset[str] = frozenset(), dry_run: bool = False) -> Outcome:
        started = time.perf_counter()
        run_id = uuid.uuid4().hex
        lease = f"reconcile:{self.store.key}"
        taken = self.leases.acquire(lease, run_id, ttl_s=LEASE_TTL_S, wait_s=self.lease_wait_s,
                                    what=f"a reconcile of {self.store.key}")
        try:
            if not dry_run:
                self.store.start(run_id, commit=commit, trigger=trigger, took_over=taken == "expired")
            marked = self._mark(desired, commit)
            inventory = self._inventory()
            the_plan = plan(marked, inventory, commit=commit, foreign=self._foreign(marked, inventory),
                            held_sources=held_sources)
            self._confirm_drift(the_plan)
            outcome = Outcome(run_id, self.store.key, commit, the_plan, dry_run=dry_run,
                              live={ObjectRef.of(obj): obj for obj in inventory})
            if dry_run:
                outcome.results = [a.summary() for a in the_plan.actions]
                outcome.duration_ms = _ms(started)
                return outcome
            try:
                self._apply(outcome, lease)
            except RetryableError as exc:
                outcome.duration_ms = _ms(started)
                self.store.finish(run_id, state="failed", results=outcome.results, writes=outcome.writes,
                                  duration_ms=outcome.duration_ms, counts=the_plan.counts(), error=exc.message)
                self.store.set_state(desired_commit=commit, last_error=exc.message)
                raise
            self._observe(outcome)
            outcome.duration_ms = _ms(started)
            self._record(outcome, desired_commit=commit)
            info(log, "reconciled", owner=self.store.key, commit=commit, writes=outcome.writes,
                 errors=len(outcome.errors), ms=outcome.duration_ms, **the_plan.counts())
            return outcome
        finally:
            self.leases.release(lease, run_id)

    # -- steps --------------------------------------------------------------------------
    def _mark(self, desired: list[Desired], commit: str) -> list[dict[str, Any]]:
        return [mark(d.obj, owner=self.owner, source=d.source, commit=commit, partition=self.partition)
                for d in desired]

    def _inventory(self) -> list[dict[str, Any]]:
        """What carries our labels. A namespace we may not read is skipped (its objects then fail to
        apply one by one, each with the API's reason; nothing there is pruned)."""
        labels = owner_labels(self.owner, self.partition)
        found: list[dict[str, Any]] = []
        for kind in self.kinds:
            for namespace in self.namespaces if kind.namespaced else [None]:
                try:
                    found += self.runtime.list(kind, namespace=namespace, labels=labels)
                except Forbidden as exc:
                    log.warning("cannot list %s in %s: %s", kind.plural, namespace, exc.message)
        return found

    def _foreign(self, marked: list[dict[str, Any]], inventory: list[dict[str, Any]]) -> dict[ObjectRef, dict[str, Any]]:
        """Live objects that share a desired object's name but are not in our inventory."""
        ours = {ObjectRef.of(obj) for obj in inventory}
        foreign = {}
        for obj in marked:
            ref = ObjectRef.of(obj)
            if ref not in ours:
                try:
                    live = self.runtime.get(ref)
                except Forbidden:
                    continue  # the apply will say it is forbidden
                if live is not None:
                    foreign[ref] = live
        return foreign

    def _confirm_drift(self, the_plan: Plan) -> None:
        """A dry-run apply tells a real change from a value the server only normalised."""
        for action in the_plan.actions:
            if action.op != "drift" or action.desired is None or action.live is None:
                continue
            try:
                would_be = self.runtime.apply(action.desired, field_manager=self.field_manager, dry_run=True)
            except UserError:
                continue  # the real apply will say what is wrong
            if same_live(would_be, action.live):
                action.op, action.reason = "unchanged", "live matches Git (values normalised by the server)"

    def _apply(self, outcome: Outcome, lease: str) -> None:
        renewed = time.monotonic()
        for action in outcome.plan.actions:
            if time.monotonic() - renewed > LEASE_TTL_S / 4:
                self.leases.renew(lease, outcome.run_id, ttl_s=LEASE_TTL_S)
                renewed = time.monotonic()
            result = action.summary()
            if action.writes:
                try:
                    now_live = self._do(action)
                    if now_live is not None:
                        outcome.live[action.ref] = now_live
                    outcome.writes += 1 if action.op != "recreate" else 2
                    result["op"] = action.op  # an update may have become a recreate
                    result["reason"] = action.reason
                except UserError as exc:
                    result["error"] = exc.message
                    log.warning("%s %s failed: %s", action.op, action.ref, exc.message)
            outcome.results.append(result)

    def _do(self, action: Action) -> dict[str, Any] | None:
        """Carry out one writing action; returns the object as it is live now (None: pruned)."""
        if action.op == "prune":
            self.runtime.delete(action.ref)
            return None
        assert action.desired is not None
        if action.op == "recreate":
            self.runtime.delete(action.ref, wait_s=RECREATE_WAIT_S)
            return self.runtime.apply(action.desired, field_manager=self.field_manager)
        try:
            return self.runtime.apply(action.desired, field_manager=self.field_manager)
        except ValidationFailed as exc:
            if "immutable" not in exc.message:
                raise
            action.op = "recreate"
            action.reason = f"the API refused the change in place ({exc.message}): deleted and created again"
            self.runtime.delete(action.ref, wait_s=RECREATE_WAIT_S)
            return self.runtime.apply(action.desired, field_manager=self.field_manager)

    def _observe(self, outcome: Outcome) -> None:
        """Health of every object now in Git: its live state, its pods, their reasons."""
        refs = [a.ref for a in outcome.plan.actions if a.op not in ("prune", "conflict")]
        labels = owner_labels(self.owner, self.partition)
        pods_by_ns: dict[str, list[dict[str, Any]]] = {}
        for ns in sorted({r.namespace for r in refs if r.namespace}):
            try:
                pods_by_ns[ns] = self.runtime.pods(ns, labels)
            except Forbidden:
                pods_by_ns[ns] = []
        for ref in refs:
            live = outcome.live.get(ref)
            pods = pods_of(live, pods_by_ns.get(ref.namespace, []))
            result = health(live, pods=pods, unsupported=self.runtime.unsupported(live) if live else None)
            if result.state in ("failed", "pending") and pods:
                result = health(live, pods=pods, logs=last_lines(self.runtime, ref.namespace, pods),
                                unsupported=self.runtime.unsupported(live) if live else None)
            outcome.health[ref] = result

    def _record(self, outcome: Outcome, *, desired_commit: str) -> None:
        docs, forget = [], []
        by_ref = {a.ref: a for a in outcome.plan.actions}
        errors = {r["object"]: r["error"] for r in outcome.results if r.get("error")}
        for ref, action in by_ref.items():
            key = f"{self.store.key}|{ref.api_version}|{ref.kind}|{ref.namespace}|{ref.name}"
            if action.op == "prune" and str(ref) not in errors:
                forget.append(key)
                continue
            state = outcome.health.get(ref)
            docs.append({
                "_id": key, "api_version": ref.api_version, "kind": ref.kind, "namespace": ref.namespace,
                "name": ref.name, "source": action.source, "op": action.op, "reason": action.reason,
                "commit": _commit_of(action), "error": errors.get(str(ref)),
                "health": state.to_dict() if state else None,
            })
        self.store.save_objects(docs, forget=forget)
        state = "failed" if outcome.errors else "done"
        self.store.finish(outcome.run_id, state=state, results=outcome.results, writes=outcome.writes,
                          duration_ms=outcome.duration_ms, counts=outcome.plan.counts(),
                          error="; ".join(f"{e['object']}: {e['error']}" for e in outcome.errors[:5]) or None)
        self.store.set_state(desired_commit=desired_commit, applied_commit=desired_commit,
                             last_reconcile=outcome.run_id, last_error=None if not outcome.errors else state,
                             counts=outcome.plan.counts())
        if random.random() < TRIM_SHARE:
            self.store.trim()


def pods_of(obj: dict[str, Any] | None, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not obj or obj.get("kind") not in _POD_OWNERS:
        return []
    name = obj["metadata"]["name"]
    if obj["kind"] == "Job":
        return [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return []
    return [p for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]


def _commit_of(action: Action) -> str | None:
    obj = action.desired or action.live
    return ((obj or {}).get("metadata") or {}).get("annotations", {}).get("vllmbench.dev/commit")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
