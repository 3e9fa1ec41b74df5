"""The planner: one ModelServer, its facts, the inventory and what runs in; a decision out.

Conflicts are found before anything is applied, and resolved in a fixed order, each
step recorded with its numbers: reuse an identical healthy server -> place on a node
that fits (packing, to keep whole nodes free) -> another accepted accelerator ->
shrink within what the spec allows -> preempt servers of lower priority (the smallest
set) -> Pending with the shortfall in numbers. Nothing here does I/O; the caller
applies the decision (``Inventory.hold``, ``apply``) and renders it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from vllmbench.models.servers import CPU, ModelFacts, ModelServerSpec, mig_profile, parallelism_problem
from vllmbench.placement import advice
from vllmbench.placement.decision import Conflict, Decision, ReplicaPlacement, Step, Victim, memory_dict
from vllmbench.placement.fit import ReportFor, Slot, View, best_slot, preempting_slot
from vllmbench.placement.inventory import Holding, Inventory, Node
from vllmbench.placement.memory import MemoryReport, per_gpu
from vllmbench.placement.reuse import RunningServer, reuse, rolling_update


@dataclass
class _Plan:
    spec: ModelServerSpec
    key: str
    facts: ModelFacts
    inventory: Inventory
    steps: list[Step] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    cache: dict[tuple, MemoryReport] = field(default_factory=dict)
    by_node: dict[tuple[str, str | None], MemoryReport] = field(default_factory=dict)

    def step(self, step: str, outcome: str, message: str, **numbers: Any) -> None:
        self.steps.append(Step(step=step, outcome=outcome, message=message, numbers=numbers))  # type: ignore[arg-type]

    def conflict(self, kind: str, message: str, resolution: str | None = None) -> None:
        self.conflicts.append(Conflict(kind=kind, message=message, resolution=resolution))  # type: ignore[arg-type]

    def report(self, memory: int, product: str, util: float | None = None, length: int | None = None) -> MemoryReport:
        key = (memory, product, util, length)
        if key not in self.cache:
            self.cache[key] = per_gpu(self.spec, self.facts, gpu_memory=memory, product=product,
                                      gpu_memory_utilization=util, max_model_len=length)
        return self.cache[key]

    def for_node(self, node: Node, mig: str | None) -> MemoryReport:
        found = self.by_node.get((node.name, mig))
        if found is None:
            found = self.report(node.mig[mig].memory if mig else node.gpu_memory, node.product)
            self.by_node[(node.name, mig)] = found
        return found


def plan(spec: ModelServerSpec, *, key: str, facts: ModelFacts, inventory: Inventory,
         running: Sequence[RunningServer] = (), facts_source: str = "catalog") -> Decision:
    p = _Plan(spec, key, facts, inventory)
    gpus = spec.gpus_per_replica
    mig = spec.gpu_resource_type if mig_profile(spec.gpu_resource_type) else None

    def decide(outcome: str, reason: str, **extra: Any) -> Decision:
        return Decision(server=key, outcome=outcome, reason=reason, steps=p.steps, conflicts=p.conflicts,  # type: ignore[arg-type]
                        gpu_memory_utilization=extra.pop("util", spec.gpu_memory_utilization),
                        facts_source=facts_source, priority=spec.priority, **extra)

    problem = parallelism_problem(facts, spec.tensor_parallel_size, spec.pipeline_parallel_size)
    if problem:
        p.conflict("tp_not_dividing_heads", f"{problem[0]} {problem[1]}")
        p.step("validate", "failed", f"{problem[0]} {problem[1]}")
        return decide("invalid", f"{problem[0]} {problem[1]}")
    nodes = [n for n in inventory.nodes.values() if n.schedulable and n.matches(spec.node_selector)]
    p.step("validate", "chosen", f"{gpus} {spec.gpu_resource_type} per replica x {spec.replicas} replicas",
           gpus_per_replica=gpus, replicas=spec.replicas, schedulable_nodes=len(nodes))

    reused = reuse(p, running)
    if reused is not None:
        return reused
    if spec.replicas == 0:
        return decide("placed", "replicas: 0, nothing to place")
    if spec.gpu_resource_type == CPU:
        if not nodes:
            p.conflict("no_schedulable_node", "no schedulable node matches the node selector")
            return decide("pending", "no schedulable node for a CPU server")
        chosen = sorted(nodes, key=lambda n: (bool(n.gpus), n.name))[0]
        replicas = [ReplicaPlacement(replica=i, node=chosen.name, accelerator="cpu", resource=CPU, count=0)
                    for i in range(spec.replicas)]
        p.step("place", "chosen", f"CPU server on {chosen.name}: no GPU to plan", node=chosen.name)
        return decide("placed", f"placed on {chosen.name} (CPU)", replicas=replicas, max_model_len=_length(spec, facts))

    offering = [n for n in nodes if (mig in n.mig if mig else n.gpus)]
    if not offering:
        what = mig or "GPUs"
        p.conflict("no_such_resource", f"no schedulable node offers {what}")
    elif not mig and gpus > max(len(n.gpus) for n in offering):
        largest = max(len(n.gpus) for n in offering)
        p.conflict("too_many_gpus_for_one_node", f"needs {gpus} GPUs on one node; the largest node has {largest}")
    groups = _accelerator_groups(spec, offering)
    accepted = [n for _, group in groups for n in group]
    accepted_names = {n.name for n in accepted}
    foreign = sorted({n.product for n in offering if n.name not in accepted_names and n.product})
    if foreign:
        p.conflict("wrong_accelerator", f"nodes with {', '.join(foreign)} are not among the accepted "
                   f"accelerators {spec.accelerators}", "not used: add them to accelerators to allow them")
    base = View(inventory, {key})
    if any(r.key == key for r in running):
        rolling_update(p, inventory, key, gpus)

    for index, (label, group) in enumerate(groups):
        name = "place" if index == 0 else "other_accelerator"
        slots = _place_all(base, group, spec.replicas, gpus, mig, p.for_node)
        if slots:
            p.step(name, "chosen", f"{label}: {_where(slots)}", nodes_considered=len(group))
            if index:
                _resolve(p, f"placed on {label} instead")
            return decide("placed", f"placed on {_where(slots)}", **_placed(p, slots, inventory))
        _memory_conflicts(p, group, mig)
        why = advice.why_not(p, base, group, gpus, mig)
        if any(p.for_node(n, mig).fits for n in group):
            p.conflict("no_free_gpus", f"{label}: {why}")
        p.step(name, "failed", f"{label}: {why}", nodes_considered=len(group))
    if len(groups) <= 1:
        p.step("other_accelerator", "skipped", "no other accelerator is accepted" if spec.accelerators
               else "any accelerator was accepted at the first step")

    shrink = _shrinking(p)
    if shrink is None:
        p.step("shrink", "skipped", "the spec allows no shrinking (shrink: max_model_len_min, "
               "gpu_memory_utilization_min)")
    else:
        slots = _place_all(base, accepted, spec.replicas, gpus, mig, shrink)
        if slots:
            report = slots[0].report
            p.step("shrink", "chosen", f"max_model_len {report.max_model_len}, gpu_memory_utilization "
                   f"{report.gpu_memory_utilization} on {_where(slots)}",
                   max_model_len=report.max_model_len, gpu_memory_utilization=report.gpu_memory_utilization)
            _resolve(p, f"shrunk to max_model_len {report.max_model_len}, gpu_memory_utilization "
                     f"{report.gpu_memory_utilization}")
            return decide("placed", f"placed on {_where(slots)} after shrinking", **_placed(p, slots, inventory))
        p.step("shrink", "failed", "nothing within the spec's shrink limits fits")

    report_for: ReportFor = shrink or p.for_node
    if spec.preemption_policy == "Never":
        p.step("preempt", "skipped", "preemption_policy: Never")
    else:
        slots = _place_all(base, accepted, spec.replicas, gpus, mig, report_for, preempt=spec.priority)
        if slots:
            victims = _victims(slots, inventory, key, spec, running)
            names = ", ".join(f"{v.server} (priority {v.priority})" for v in victims)
            p.step("preempt", "chosen", f"preempting {names}", victims=[v.server for v in victims])
            _resolve(p, f"preempted {names}")
            return decide("placed", f"placed on {_where(slots)} by preempting {names}",
                          preempted=victims, **_placed(p, slots, inventory))
        p.step("preempt", "failed", f"no set of servers of priority below {spec.priority} frees enough")

    shortfall = advice.shortfall(p, base, accepted, gpus, mig)
    p.step("pending", "chosen", shortfall["message"], **{k: v for k, v in shortfall.items() if k != "message"})
    best = advice.best_report(p, accepted, mig)
    return decide("pending", shortfall["message"], shortfall=shortfall, memory=memory_dict(best),
                  hints=advice.hints(p, best), max_model_len=best.max_model_len if best else None)


def _length(spec: ModelServerSpec, facts: ModelFacts) -> int:
    return spec.max_model_len if isinstance(spec.max_model_len, int) else facts.max_position_embeddings


def _accelerator_groups(spec: ModelServerSpec, nodes: list[Node]) -> list[tuple[str, list[Node]]]:
    if not spec.accelerators:
        return [("any accelerator", nodes)]
    groups, seen = [], set()
    for pattern in spec.accelerators:
        group = [n for n in nodes if n.name not in seen and n.accepts([pattern])]
        seen.update(n.name for n in group)
        groups.append((pattern, group))
    return groups


def _place_all(view: View, nodes: list[Node], replicas: int, gpus: int, mig: str | None,
               report_for: ReportFor, *, preempt: int | None = None) -> list[Slot] | None:
    """All replicas or none: each on the best node left after the ones before it."""
    view = View(view.inventory, set(view.ignoring), dict(view.taken), dict(view.mig_taken))
    slots: list[Slot] = []
    for _ in range(replicas):
        slot = best_slot(view, nodes, gpus=gpus, mig=mig, report_for=report_for)
        if slot is None and preempt is not None:
            slot = preempting_slot(view, nodes, gpus=gpus, mig=mig, priority=preempt, report_for=report_for)
            if slot is not None:
                view = view.with_ignored(slot.victims)
        if slot is None:
            return None
        view.take(slot)
        slots.append(slot)
    return slots


def _placed(p: _Plan, slots: list[Slot], inventory: Inventory) -> dict[str, Any]:
    report = slots[0].report
    assert report is not None
    replicas = [ReplicaPlacement(replica=i, node=s.node, accelerator=inventory.nodes[s.node].product,
                                 resource=p.spec.gpu_resource_type, count=max(len(s.gpus), 1 if s.mig else 0),
                                 gpus=list(s.gpus), bytes_per_gpu=s.bytes_per_gpu) for i, s in enumerate(slots)]
    return {"replicas": replicas, "memory": memory_dict(report), "max_model_len": report.max_model_len,
            "util": report.gpu_memory_utilization}


def _where(slots: list[Slot]) -> str:
    """``node-a[0,1], node-b[3]``: each replica's node and GPUs (or MIG slice)."""
    return ", ".join(f"{s.node}[{','.join(map(str, s.gpus)) or s.mig}]" for s in slots)


def _memory_conflicts(p: _Plan, group: list[Node], mig: str | None) -> None:
    products = {(n.mig[mig].memory if mig else n.gpu_memory, n.product) for n in group}
    for memory, product in sorted(products):
        report = p.report(memory, product)
        if report.fits:
            continue
        kind = "mig_profile_too_small" if mig else "memory_does_not_fit"
        message = advice.memory_message(report, product, mig)
        if mig:
            pools = {(r, pool.memory) for n in p.inventory.nodes.values() for r, pool in n.mig.items()}
            larger = advice.smallest_mig_profile(p.spec, p.facts, pools)
            message += f"; the smallest profile here that fits is {larger[0]}" if larger else (
                "; no MIG profile here fits")
        if not any(c.kind == kind and c.message == message for c in p.conflicts):
            p.conflict(kind, message)


def _shrinking(p: _Plan) -> ReportFor | None:
    floor_len, floor_util = p.spec.shrink.max_model_len_min, p.spec.shrink.gpu_memory_utilization_min
    if floor_len is None and floor_util is None:
        return None

    def report_for(node: Node, mig: str | None) -> MemoryReport:
        memory = node.mig[mig].memory if mig else node.gpu_memory
        util = p.spec.gpu_memory_utilization
        if floor_util is not None and node.shareable and not mig:
            best_free = max((g.free for g in node.gpus), default=0)
            fits_util = math.floor((best_free - p.report(memory, node.product).cudagraph_headroom) / memory * 100) / 100
            util = max(min(util, fits_util), floor_util)
        report = p.report(memory, node.product, util)
        if report.problem == "max_model_len_too_long" and floor_len and report.largest_max_model_len >= floor_len:
            report = p.report(memory, node.product, util, report.largest_max_model_len)
        return report

    return report_for


def _victims(slots: list[Slot], inventory: Inventory, key: str, spec: ModelServerSpec,
             running: Sequence[RunningServer]) -> list[Victim]:
    priorities = {r.key: r.priority for r in running}
    holders = inventory.holders()
    found: dict[str, Victim] = {}
    for slot in slots:
        for victim in slot.victims:
            priority = priorities.get(victim, _claim_priority(inventory, victim))
            found[victim] = Victim(server=victim, priority=priority, nodes=holders.get(victim, []),
                                   reason=f"preempted by {key} (priority {spec.priority} > {priority}); "
                                          "it returns by itself when capacity does")
    return list(found.values())


def _claim_priority(inventory: Inventory, holder: str) -> int:
    for node in inventory.nodes.values():
        for claim in [c for g in node.gpus for c in g.claims] + [c for m in node.mig.values() for c in m.claims]:
            if claim.holder == holder and claim.priority is not None:
                return claim.priority
    return 0


def _resolve(p: _Plan, resolution: str) -> None:
    """Mark the capacity and memory conflicts found so far as resolved by the step that placed the server."""
    for i, conflict in enumerate(p.conflicts):
        if conflict.resolution is None and conflict.kind in ("no_free_gpus", "memory_does_not_fit",
                                                             "mig_profile_too_small"):
            p.conflicts[i] = conflict.model_copy(update={"resolution": resolution})


def apply(inventory: Inventory, decision: Decision, *, placed_at: float = 0.0) -> None:
    """Record a placed decision's claims (and release its victims and its former self) in ``inventory``."""
    if decision.outcome != "placed":
        return
    for victim in decision.preempted:
        inventory.release(victim.server)
    inventory.release(decision.server)
    for replica in decision.replicas:
        if replica.resource == CPU:
            continue
        mig = replica.resource if mig_profile(replica.resource) else None
        inventory.hold(Holding(decision.server, replica.node, tuple(replica.gpus), replica.bytes_per_gpu, mig,
                               decision.priority, placed_at))


__all__ = ["RunningServer", "apply", "plan"]
