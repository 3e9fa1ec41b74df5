"""What the planner knows is there: nodes, their GPUs and MIG slices, and who holds them.

A value, built by ``cluster.from_kube`` (nodes and pods as the Kubernetes API returns
them) or ``local.simulated`` / ``local.from_nvidia_smi`` (the machine without a
cluster), then updated by the decisions applied to it. Each physical GPU keeps a
ledger of claims in bytes: a whole-GPU request claims all of it; servers sharing a
GPU by ``gpu_memory_utilization`` (the local runtime, time-sliced nodes) claim their
budget plus their CUDA graphs, as vLLM checks free memory >= its budget at start.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable



@lru_cache(maxsize=4096)
def _matches(product: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(product, pattern)


@dataclass
class Claim:
    holder: str  # "<ns>/<server>" for ours, "pod <ns>/<name>" or "process" for the rest
    bytes: int
    priority: int | None = None  # None: not ours
    placed_at: float = 0.0

    @property
    def ours(self) -> bool:
        return self.priority is not None


@dataclass(eq=False)
class Gpu:
    index: int
    memory: int
    claims: list[Claim] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(c.bytes for c in self.claims)

    @property
    def free(self) -> int:
        return max(self.memory - self.used, 0)


@dataclass(eq=False)
class MigPool:
    """One MIG profile on one node (NVIDIA device plugin, mixed strategy)."""

    resource: str
    allocatable: int
    memory: int
    claims: list[Claim] = field(default_factory=list)

    @property
    def free(self) -> int:
        return max(self.allocatable - len(self.claims), 0)


@dataclass(eq=False)
class Node:
    name: str
    product: str = ""
    gpus: list[Gpu] = field(default_factory=list)
    mig: dict[str, MigPool] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    shareable: bool = False  # GPUs may be shared by gpu_memory_utilization
    schedulable: bool = True
    unschedulable_reason: str | None = None
    _idle: list[int] | None = field(default=None, repr=False)  # cache of idle_gpus(), reset by the ledger

    def idle_gpus(self) -> list[int]:
        """Indices of the GPUs nobody claims (cached until a claim on this node changes)."""
        if self._idle is None:
            self._idle = [g.index for g in self.gpus if not g.claims]
        return self._idle

    @property
    def gpu_memory(self) -> int:
        return self.gpus[0].memory if self.gpus else 0

    def free_gpus(self, *, ignoring: str | None = None) -> list[Gpu]:
        """GPUs nobody claims (claims of ``ignoring`` do not count: a server replacing itself)."""
        return [g for g in self.gpus if all(c.holder == ignoring for c in g.claims)]

    def accepts(self, patterns: Iterable[str]) -> bool:
        wanted = list(patterns)
        return not wanted or any(_matches(self.product, p) for p in wanted)

    def matches(self, selector: dict[str, str]) -> bool:
        return not selector or all(self.labels.get(k) == v for k, v in selector.items())


@dataclass
class Holding:
    """Where one replica of a server sits: GPU indices with bytes each, or one MIG slice."""

    holder: str
    node: str
    gpus: tuple[int, ...] = ()
    bytes_per_gpu: int = 0
    mig: str | None = None
    priority: int | None = None
    placed_at: float = 0.0


@dataclass(eq=False)
class Inventory:
    nodes: dict[str, Node] = field(default_factory=dict)
    source: str = "declared"
    _where: dict[str, set[str]] | None = field(default=None, repr=False)  # holder -> nodes, built when first needed

    def add(self, node: Node) -> None:
        self.nodes[node.name] = node

    def add_claim(self, node: str, claim: Claim, *, gpu: int | None = None, mig: str | None = None) -> None:
        """The one way claims enter the ledger, so that the index of holders stays right."""
        target = self.nodes[node]
        target._idle = None
        if mig is not None:
            target.mig[mig].claims.append(claim)
        else:
            next(g for g in target.gpus if g.index == gpu).claims.append(claim)
        if self._where is not None:
            self._where.setdefault(claim.holder, set()).add(node)

    def hold(self, holding: Holding) -> None:
        """Claim what ``holding`` says; ``bytes_per_gpu`` 0 means whole GPUs."""
        node = self.nodes[holding.node]
        if holding.mig:
            claim = Claim(holding.holder, node.mig[holding.mig].memory, holding.priority, holding.placed_at)
            self.add_claim(holding.node, claim, mig=holding.mig)
            return
        memory = {g.index: g.memory for g in node.gpus}
        for index in holding.gpus:
            size = min(holding.bytes_per_gpu, memory[index]) or memory[index]
            self.add_claim(holding.node, Claim(holding.holder, size, holding.priority, holding.placed_at), gpu=index)

    def nodes_of(self, holders: Iterable[str]) -> set[str]:
        index = self._index()
        return {n for h in holders for n in index.get(h, ())}

    def _index(self) -> dict[str, set[str]]:
        if self._where is None:
            where: dict[str, set[str]] = {}
            for node in self.nodes.values():
                for claim in [c for g in node.gpus for c in g.claims] + [c for m in node.mig.values() for c in m.claims]:
                    where.setdefault(claim.holder, set()).add(node.name)
            self._where = where
        return self._where

    def release(self, holder: str) -> int:
        """Drop every claim of ``holder``; answers how many GPUs or slices it held."""
        freed = 0
        for name in self._index().pop(holder, set()):
            node = self.nodes[name]
            node._idle = None
            for gpu in node.gpus:
                before = len(gpu.claims)
                gpu.claims = [c for c in gpu.claims if c.holder != holder]
                freed += before - len(gpu.claims)
            for pool in node.mig.values():
                before = len(pool.claims)
                pool.claims = [c for c in pool.claims if c.holder != holder]
                freed += before - len(pool.claims)
        return freed

    def holders(self) -> dict[str, list[str]]:
        """Each holder and the nodes it sits on."""
        return {k: sorted(v) for k, v in self._index().items() if v}

    def copy(self) -> "Inventory":
        nodes = {}
        for name, node in self.nodes.items():
            nodes[name] = Node(
                name=node.name, product=node.product, labels=node.labels, shareable=node.shareable,
                schedulable=node.schedulable, unschedulable_reason=node.unschedulable_reason,
                gpus=[Gpu(g.index, g.memory, list(g.claims)) for g in node.gpus],
                mig={r: MigPool(p.resource, p.allocatable, p.memory, list(p.claims)) for r, p in node.mig.items()})
        where = {k: set(v) for k, v in self._where.items()} if self._where is not None else None
        return Inventory(nodes, self.source, where)

    def summary(self) -> dict[str, object]:
        """What ``GET /inventory`` shows: per node, its GPUs, what is free and who holds the rest."""
        out = []
        for node in sorted(self.nodes.values(), key=lambda n: n.name):
            out.append({
                "node": node.name, "product": node.product, "schedulable": node.schedulable,
                "reason": node.unschedulable_reason, "shareable": node.shareable,
                "gpus": [{"index": g.index, "memory_gib": round(g.memory / (1 << 30), 2),
                          "free_gib": round(g.free / (1 << 30), 2),
                          "held_by": [{"holder": c.holder, "gib": round(c.bytes / (1 << 30), 2),
                                       "priority": c.priority} for c in g.claims]} for g in node.gpus],
                "mig": [{"resource": p.resource, "allocatable": p.allocatable, "free": p.free,
                         "memory_gib": round(p.memory / (1 << 30), 2),
                         "held_by": [c.holder for c in p.claims]} for p in node.mig.values()],
            })
        return {"source": self.source, "nodes": out}
