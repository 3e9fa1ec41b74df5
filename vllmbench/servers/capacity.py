"""What is free: the runtime's GPUs and everyone's pods, with our own ledger's claims laid in first.

- kube: every node (cluster-scoped) and the pods of every namespace the service account
  may read (the manifests give benchmark-vllm a ClusterRole for nodes and pods; without
  it, the workload namespaces only). Our claims come from the ledger, not from our pods:
  a placement holds its GPUs from the moment it is committed, before its pods exist.
  The device plugin does not say which GPU a pod got, so our claims keep their indices
  and the other pods fill the GPUs left, in order.
- local: ``nvidia-smi`` where present (memory other processes hold becomes a claim;
  what our servers hold is our ledger's), else the declared simulated inventory
  (``VLLMBENCH_SIMULATED_GPUS``, default one node with 2 x 80 GB).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

from vllmbench.errors import Forbidden
from vllmbench.logs import get_logger
from vllmbench.placement import labels as L
from vllmbench.placement.cluster import add_pods, from_kube
from vllmbench.placement.inventory import Claim, Inventory
from vllmbench.placement.local import NVIDIA_SMI_QUERY, from_nvidia_smi, simulated
from vllmbench.runtimes.base import KINDS, Runtime

log = get_logger("vllmbench.vllm")
NODE = KINDS[("v1", "Node")]
POD = KINDS[("v1", "Pod")]
_SMI_TTL_S = 5.0
_smi_cache: tuple[float, str] | None = None


def claim_docs(inventory: Inventory, holders: set[str]) -> list[dict[str, Any]]:
    """The ledger's content: every claim of ``holders`` in ``inventory``, per GPU or MIG profile."""
    found = []
    for node in sorted(inventory.nodes.values(), key=lambda n: n.name):
        for gpu in node.gpus:
            found += [{"holder": c.holder, "node": node.name, "gpu": gpu.index, "mig": None, "bytes": c.bytes,
                       "priority": c.priority, "placed_at": c.placed_at} for c in gpu.claims if c.holder in holders]
        for resource, pool in sorted(node.mig.items()):
            found += [{"holder": c.holder, "node": node.name, "gpu": None, "mig": resource, "bytes": c.bytes,
                       "priority": c.priority, "placed_at": c.placed_at} for c in pool.claims if c.holder in holders]
    return found


def lay_claims(inventory: Inventory, claims: list[dict[str, Any]]) -> set[str]:
    """Put the ledger's claims into ``inventory``; returns the holders with a claim the runtime no longer
    has room for (their node, GPU or MIG profile is gone): those servers are placed again."""
    lost: set[str] = set()
    for claim in claims:
        node = inventory.nodes.get(claim["node"])
        entry = Claim(claim["holder"], int(claim["bytes"]), claim.get("priority"), float(claim.get("placed_at") or 0))
        if node is None:
            lost.add(claim["holder"])
        elif claim.get("mig"):
            if claim["mig"] in node.mig:
                inventory.add_claim(node.name, entry, mig=claim["mig"])
            else:
                lost.add(claim["holder"])
        elif any(g.index == claim["gpu"] for g in node.gpus):
            inventory.add_claim(node.name, entry, gpu=claim["gpu"])
        else:
            lost.add(claim["holder"])
    return lost


def _holder_of(pod: dict[str, Any]) -> str | None:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if L.SERVER not in labels:
        return None
    return f"{labels.get(L.SERVER_NAMESPACE) or meta.get('namespace', 'default')}/{labels[L.SERVER]}"


def gather(settings: Any, runtime: Runtime, claims: list[dict[str, Any]]) -> tuple[Inventory, set[str]]:
    """The inventory with the ledger's ``claims`` in it, and the holders whose claims were lost."""
    if runtime.name == "kube":
        return _kube(settings, runtime, claims)
    inventory = _local(settings, claims)
    return inventory, lay_claims(inventory, claims)


def _kube(settings: Any, runtime: Runtime, claims: list[dict[str, Any]]) -> tuple[Inventory, set[str]]:
    nodes = runtime.list(NODE, namespace=None)
    try:
        pods = runtime.list(POD, namespace=None)
    except Forbidden as exc:  # no ClusterRole: the namespaces we manage are what we can see
        log.warning("cannot list pods cluster-wide (%s): counting the workload namespaces' only", exc.message)
        pods = [p for ns in settings.workload_namespaces for p in runtime.list(POD, namespace=ns)]
    inventory = from_kube(nodes, [])
    lost = lay_claims(inventory, claims)
    ledgered = {c["holder"] for c in claims}
    # Our pods whose server the ledger does not hold (deleted, still stopping) hold their GPUs until gone.
    add_pods(inventory, [p for p in pods if _holder_of(p) not in ledgered])
    return inventory, lost


def _local(settings: Any, claims: list[dict[str, Any]]) -> Inventory:
    output = _nvidia_smi() if settings.local_gpus in ("auto", "nvidia-smi") else None
    if output is None:
        if settings.local_gpus == "nvidia-smi":
            log.warning("VLLMBENCH_LOCAL_GPUS=nvidia-smi but nvidia-smi did not answer: using the simulated GPUs")
        return simulated(settings.simulated_gpus or None)
    ours: dict[int, int] = {}
    for claim in claims:
        if claim.get("gpu") is not None:
            ours[int(claim["gpu"])] = ours.get(int(claim["gpu"]), 0) + int(claim["bytes"])
    return from_nvidia_smi(output, ours=ours)


def _nvidia_smi() -> str | None:
    """nvidia-smi's answer (cached a few seconds: a deploy reads the inventory more than once)."""
    global _smi_cache
    if _smi_cache is not None and time.monotonic() - _smi_cache[0] < _SMI_TTL_S:
        return _smi_cache[1]
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return None
    try:
        done = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed: %s", exc)
        return None
    _smi_cache = (time.monotonic(), done.stdout)
    return done.stdout
