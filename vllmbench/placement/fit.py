"""Fitting replicas onto nodes: what is free, where a replica goes, whom to preempt.

A :class:`View` looks at an inventory as if some holders were gone (the server being
replaced by its new version, the victims of a preemption) and some GPUs already taken
(the replicas placed so far in this decision), without changing the inventory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from vllmbench.placement.inventory import Inventory, Node
from vllmbench.placement.memory import MemoryReport

ReportFor = Callable[[Node, str | None], MemoryReport]  # (node, MIG resource or None) -> memory of one GPU


@dataclass
class Slot:
    node: str
    gpus: tuple[int, ...] = ()
    bytes_per_gpu: int = 0  # 0: whole GPUs
    mig: str | None = None
    report: MemoryReport | None = None
    victims: tuple[str, ...] = ()


@dataclass
class View:
    inventory: Inventory
    ignoring: set[str] = field(default_factory=set)
    taken: dict[tuple[str, int], int] = field(default_factory=dict)  # (node, gpu) -> bytes taken, -1 whole
    mig_taken: dict[tuple[str, str], int] = field(default_factory=dict)
    _whole: dict[str, list[int]] = field(default_factory=dict, repr=False)  # per node, until a take there
    _touched: set[str] | None = field(default=None, repr=False)  # nodes where an ignored holder sits

    def with_ignored(self, holders: Iterable[str]) -> "View":
        return View(self.inventory, self.ignoring | set(holders), dict(self.taken), dict(self.mig_taken))

    def gpu_free(self, node: Node, index: int, memory: int, claims: list) -> int:
        taken = self.taken.get((node.name, index), 0)
        if taken < 0:
            return 0
        used = sum(c.bytes for c in claims if c.holder not in self.ignoring)
        return max(memory - used - taken, 0)

    def whole_free(self, node: Node) -> list[int]:
        found = self._whole.get(node.name)
        if found is None:
            if self._touched is None:
                self._touched = self.inventory.nodes_of(self.ignoring)
            ignoring, taken, name = self.ignoring, self.taken, node.name
            if name in self._touched:
                found = [g.index for g in node.gpus if all(c.holder in ignoring for c in g.claims)]
            else:
                found = node.idle_gpus()
            if taken:
                found = [i for i in found if (name, i) not in taken]
            self._whole[node.name] = found
        return found

    def mig_free(self, node: Node, resource: str) -> int:
        pool = node.mig.get(resource)
        if pool is None:
            return 0
        held = sum(1 for c in pool.claims if c.holder not in self.ignoring)
        return max(pool.allocatable - held - self.mig_taken.get((node.name, resource), 0), 0)

    def take(self, slot: Slot) -> None:
        self._whole.pop(slot.node, None)
        if slot.mig:
            key = (slot.node, slot.mig)
            self.mig_taken[key] = self.mig_taken.get(key, 0) + 1
            return
        for index in slot.gpus:
            key = (slot.node, index)
            self.taken[key] = -1 if slot.bytes_per_gpu == 0 else self.taken.get(key, 0) + slot.bytes_per_gpu


def slot_on(view: View, node: Node, *, gpus: int, mig: str | None, report: MemoryReport) -> tuple[Slot, tuple] | None:
    """A slot for one replica on ``node`` and its packing score (lower is better), or ``None``."""
    if mig:
        free = view.mig_free(node, mig)
        return (Slot(node.name, mig=mig, report=report), (free - 1, node.name)) if free >= 1 else None
    if node.shareable:
        need = report.claim
        fitting = []
        for gpu in node.gpus:
            free = view.gpu_free(node, gpu.index, gpu.memory, gpu.claims)
            if free >= need:
                fresh = free == gpu.memory
                fitting.append((fresh, free - need, gpu.index))
        if len(fitting) < gpus:
            return None
        chosen = sorted(fitting)[:gpus]  # best fit: GPUs already in use first, then the least left over
        score = (sum(1 for c in chosen if c[0]), sum(c[1] for c in chosen), node.name)
        return Slot(node.name, tuple(sorted(c[2] for c in chosen)), need, report=report), score
    free = view.whole_free(node)
    if len(free) < gpus:
        return None
    fresh_node = len(free) == len(node.gpus)
    return Slot(node.name, tuple(free[:gpus]), 0, report=report), (len(free) - gpus, fresh_node, node.name)


def best_slot(view: View, nodes: list[Node], *, gpus: int, mig: str | None, report_for: ReportFor) -> Slot | None:
    """Packing: the node left with the least free after this replica, so that whole nodes stay free."""
    best: tuple[tuple, Slot] | None = None
    for node in nodes:
        if not mig and not node.shareable and len(view.whole_free(node)) < gpus:
            continue  # cheaper than the memory report
        report = report_for(node, mig)
        if not report.fits:
            continue
        found = slot_on(view, node, gpus=gpus, mig=mig, report=report)
        if found and (best is None or found[1] < best[0]):
            best = (found[1], found[0])
    return best[1] if best else None


def _preemptible(view: View, node: Node, mig: str | None, priority: int) -> tuple[list[str], dict[str, tuple]]:
    """Our holders on ``node`` of lower priority, ordered as victims: lowest priority, most recent first."""
    claims = node.mig[mig].claims if mig and mig in node.mig else [c for g in node.gpus for c in g.claims]
    order: dict[str, tuple] = {}
    for claim in claims:
        if claim.holder in view.ignoring or claim.priority is None or claim.priority >= priority:
            continue
        order[claim.holder] = (claim.priority, -claim.placed_at, claim.holder)
    return sorted(order, key=order.__getitem__), order


def preempting_slot(view: View, nodes: list[Node], *, gpus: int, mig: str | None, priority: int,
                    report_for: ReportFor) -> Slot | None:
    """The node where the fewest victims of lower priority free enough, after trimming the set."""
    best: tuple[tuple, Slot] | None = None
    for node in nodes:
        report = report_for(node, mig)
        if not report.fits:
            continue
        candidates, order = _preemptible(view, node, mig, priority)
        chosen: list[str] = []
        found = None
        for victim in candidates:
            chosen.append(victim)
            found = slot_on(view.with_ignored(chosen), node, gpus=gpus, mig=mig, report=report)
            if found:
                break
        if not found:
            continue
        for victim in reversed(chosen[:-1]):  # trim: drop anyone not needed, the highest priority first
            rest = [v for v in chosen if v != victim]
            if slot_on(view.with_ignored(rest), node, gpus=gpus, mig=mig, report=report):
                chosen = rest
        found = slot_on(view.with_ignored(chosen), node, gpus=gpus, mig=mig, report=report)
        if found is None:
            continue
        slot, packing = found
        slot.victims = tuple(chosen)
        score = (len(chosen), max(order[v][0] for v in chosen), sum(order[v][0] for v in chosen), packing)
        if best is None or score < best[0]:
            best = (score, slot)
    return best[1] if best else None
