"""The inventory of a Kubernetes cluster, from node and pod objects as the API returns them.

Nodes give the GPUs (``allocatable`` ``nvidia.com/gpu`` and ``nvidia.com/mig-*``) and
what GPU feature discovery labelled them with (``nvidia.com/gpu.product``,
``gpu.memory`` in MiB, ``gpu.count``, ``gpu.replicas`` for time-slicing,
``mig.strategy``, ``nvidia.com/mig-<profile>.memory``). Every pod bound to a node and
not finished holds what it requests, ours and everyone else's; ours carry the labels
of ``labels.py`` and so keep their server's name and priority.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from vllmbench.models.servers import GPU, MIG_RESOURCE, mig_profile
from vllmbench.placement import labels as L
from vllmbench.placement.inventory import Claim, Gpu, Inventory, MigPool, Node

MIB = 1 << 20
_GB_IN_NAME = re.compile(r"(\d+)\s*GB", re.IGNORECASE)
_TOLERATED_TAINTS = {"nvidia.com/gpu"}  # the renderer tolerates this one


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _memory(labels: dict[str, str], product: str) -> int:
    """Bytes per GPU: GFD's gpu.memory (MiB), else the GB in the product name (decimal, so never too much)."""
    mib = _int(labels.get(L.GPU_MEMORY))
    if mib:
        return mib * MIB
    found = _GB_IN_NAME.search(product)
    return int(found[1]) * 10**9 if found else 0


def _unschedulable(node: dict[str, Any]) -> str | None:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    if spec.get("unschedulable"):
        return "cordoned (spec.unschedulable)"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            return f"not Ready ({condition.get('reason') or condition.get('status')})"
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and taint.get("key") not in _TOLERATED_TAINTS:
            return f"tainted {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')}"
    return None


def node_from_kube(obj: dict[str, Any]) -> Node:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = dict(meta.get("labels") or {})
    allocatable = status.get("allocatable") or {}
    product = labels.get(L.GPU_PRODUCT, "")
    memory = _memory(labels, product)
    advertised = _int(allocatable.get(GPU))
    replicas = max(_int(labels.get(L.GPU_REPLICAS)), 1)
    # Time-slicing advertises each GPU `replicas` times; otherwise only whole, unpartitioned GPUs are allocatable
    # (GFD's gpu.count also counts the GPUs partitioned into MIG slices).
    physical = (_int(labels.get(L.GPU_COUNT)) or advertised // replicas) if replicas > 1 else advertised
    node = Node(name=meta.get("name", ""), product=product, labels=labels, shareable=replicas > 1,
                gpus=[Gpu(i, memory) for i in range(physical)])
    for resource, value in allocatable.items():
        if MIG_RESOURCE.match(resource):
            profile = resource.removeprefix("nvidia.com/")
            mib = _int(labels.get(f"nvidia.com/{profile}.memory"))
            gb = (mig_profile(resource) or (0, 0))[1]
            node.mig[resource] = MigPool(resource, _int(value), mib * MIB if mib else gb * 10**9)
    reason = _unschedulable(obj)
    node.schedulable, node.unschedulable_reason = reason is None, reason
    return node


def _requests(pod: dict[str, Any]) -> dict[str, int]:
    """Extended resources a pod holds: the larger of its containers' sum and any init container."""
    spec = pod.get("spec") or {}

    def of(container: dict[str, Any]) -> dict[str, int]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        return {k: _int(v) for k, v in merged.items() if k == GPU or MIG_RESOURCE.match(k)}

    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        for key, value in of(container).items():
            total[key] = total.get(key, 0) + value
    for container in spec.get("initContainers") or []:
        for key, value in of(container).items():
            total[key] = max(total.get(key, 0), value)
    return {k: v for k, v in total.items() if v > 0}


def _holder(pod: dict[str, Any]) -> tuple[str, int | None, float, int]:
    meta = pod.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    if L.SERVER in labels:
        namespace = labels.get(L.SERVER_NAMESPACE) or meta.get("namespace", "default")
        placed = float(notes.get(L.PLACED_AT) or 0)
        return f"{namespace}/{labels[L.SERVER]}", _int(labels.get(L.PRIORITY)), placed, _int(notes.get(L.CLAIM_BYTES))
    return f"pod {meta.get('namespace', 'default')}/{meta.get('name', '?')}", None, 0.0, 0


def from_kube(nodes: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]) -> Inventory:
    inventory = Inventory(source="kubernetes")
    for obj in nodes:
        inventory.add(node_from_kube(obj))
    add_pods(inventory, pods)
    return inventory


def add_pods(inventory: Inventory, pods: Iterable[dict[str, Any]]) -> None:
    """Claim what ``pods`` hold on the GPUs still free: the vLLM service first puts its own ledger's
    claims in (they hold before their pods exist), then everyone else's pods fill the rest in order."""
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node_name or phase in ("Succeeded", "Failed") or node_name not in inventory.nodes:
            continue
        node = inventory.nodes[node_name]
        holder, priority, placed_at, claim_bytes = _holder(pod)
        for resource, count in sorted(_requests(pod).items()):
            if resource == GPU:
                _take_gpus(inventory, node, holder, count, priority, placed_at, claim_bytes)
            elif resource in node.mig:
                for _ in range(count):
                    inventory.add_claim(node.name, Claim(holder, node.mig[resource].memory, priority, placed_at),
                                        mig=resource)


def _take_gpus(inventory: Inventory, node: Node, holder: str, count: int, priority: int | None, placed_at: float,
               claim: int) -> None:
    """The device plugin does not say which GPU a pod got: the ledger fills them in order."""
    if node.shareable:
        share = claim or (node.gpu_memory // max(_int(node.labels.get(L.GPU_REPLICAS)), 1))
        for _ in range(count):
            gpu = max(node.gpus, key=lambda g: (g.free, -g.index), default=None)
            if gpu is not None:
                inventory.add_claim(node.name, Claim(holder, share, priority, placed_at), gpu=gpu.index)
        return
    for gpu in node.free_gpus()[:count]:
        inventory.add_claim(node.name, Claim(holder, gpu.memory, priority, placed_at), gpu=gpu.index)
