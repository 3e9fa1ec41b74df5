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
from typing import Iterable

FOREIGN_PRIORITY = None  # holders that are not ours are never preempted


@dataclass
class Claim:
    holder: str  # "<ns>/<server>" for ours, "pod <ns>/<name>" or "process" for the rest
    bytes: int
    priority: int | None = None  # None: not ours
    placed_at: float = 0.0

    @property
    def ours(self) -> bool:
        return self.priority is not None


@dataclass
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


@dataclass
class MigPool:
    """One MIG profile on one node (NVIDIA device plugin, mixed strategy)."""

    resource: str
    allocatable: int
    memory: int
    claims: list[Claim] = field(default_factory=list)

    @property
    def free(self) -> int:
        return max(self.allocatable - len(self.claims), 0)


@dataclass
class Node:
    name: str
    product: str = ""
    gpus: list[Gpu] = field(default_factory=list)
    mig: dict[str, MigPool] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    shareable: bool = False  # GPUs may be shared by gpu_memory_utilization
    schedulable: bool = True
    unschedulable_reason: str | None = None

    @property
    def gpu_memory(self) -> int:
        return self.gpus[0].memory if self.gpus else 0

    def free_gpus(self, *, ignoring: str | None = None) -> list[Gpu]:
        """GPUs nobody claims (claims of ``ignoring`` do not count: a server replacing itself)."""
        return [g for g in self.gpus if all(c.holder == ignoring for c in g.claims)]

    def accepts(self, patterns: Iterable[str]) -> bool:
        wanted = list(patterns)
        return not wanted or any(fnmatch.fnmatchcase(self.product, p) for p in wanted)

    def matches(self, selector: dict[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())


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


@dataclass
class Inventory:
    nodes: dict[str, Node] = field(default_factory=dict)
    source: str = "declared"

    def add(self, node: Node) -> None:
        self.nodes[node.name] = node

    def hold(self, holding: Holding) -> None:
        node = self.nodes[holding.node]
        claim = Claim(holding.holder, holding.bytes_per_gpu, holding.priority, holding.placed_at)
        if holding.mig:
            pool = node.mig[holding.mig]
            pool.claims.append(Claim(holding.holder, pool.memory, holding.priority, holding.placed_at))
            return
        by_index = {g.index: g for g in node.gpus}
        for index in holding.gpus:
            gpu = by_index[index]
            gpu.claims.append(Claim(claim.holder, min(holding.bytes_per_gpu, gpu.memory) or gpu.memory,
                                    claim.priority, claim.placed_at))

    def release(self, holder: str) -> int:
        """Drop every claim of ``holder``; answers how many GPUs or slices it held."""
        freed = 0
        for node in self.nodes.values():
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
        found: dict[str, set[str]] = {}
        for node in self.nodes.values():
            for gpu in node.gpus:
                for claim in gpu.claims:
                    found.setdefault(claim.holder, set()).add(node.name)
            for pool in node.mig.values():
                for claim in pool.claims:
                    found.setdefault(claim.holder, set()).add(node.name)
        return {k: sorted(v) for k, v in found.items()}

    def copy(self) -> "Inventory":
        nodes = {}
        for name, node in self.nodes.items():
            nodes[name] = Node(
                name=node.name, product=node.product, labels=node.labels, shareable=node.shareable,
                schedulable=node.schedulable, unschedulable_reason=node.unschedulable_reason,
                gpus=[Gpu(g.index, g.memory, list(g.claims)) for g in node.gpus],
                mig={r: MigPool(p.resource, p.allocatable, p.memory, list(p.claims)) for r, p in node.mig.items()})
        return Inventory(nodes, self.source)

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
