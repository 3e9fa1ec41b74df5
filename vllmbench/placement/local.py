"""The inventory of one machine without a cluster: declared, or read from nvidia-smi.

On a machine the local runtime starts servers as processes, so GPUs are shared by
``gpu_memory_utilization`` (the runtime sets ``CUDA_VISIBLE_DEVICES``): every node
here is shareable. The adapter runs :data:`NVIDIA_SMI_QUERY` and hands its output
to :func:`from_nvidia_smi`; without nvidia-smi the declared inventory stands in.
"""

from __future__ import annotations

import json
import re

from vllmbench.errors import ValidationFailed
from vllmbench.placement.inventory import Claim, Gpu, Inventory, Node

MIB = 1 << 20
GIB = 1 << 30
DEFAULT_SIMULATED = "local=2x80GB:NVIDIA-H100-80GB-HBM3"
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.used,mig.mode.current",
                    "--format=csv,noheader,nounits"]
_ITEM = re.compile(r"^(?:(?P<node>[a-z0-9][a-z0-9.-]{0,62})=)?(?P<count>\d{1,3})x(?P<gb>\d+(?:\.\d+)?)G(?:i?B)?"
                   r"(?::(?P<product>[A-Za-z0-9._-]{1,100}))?$")


def simulated(declared: str | None = None) -> Inventory:
    """A declared inventory: ``[<node>=]<count>x<memory>GB[:<product>]``, comma separated, or a JSON list
    of ``{"name", "gpus", "memory_gib", "product"}``. The default is one node with 2 x 80 GB."""
    text = (declared or DEFAULT_SIMULATED).strip()
    inventory = Inventory(source="simulated")
    items: list[tuple[str, int, float, str]] = []
    if text.startswith("["):
        try:
            for i, entry in enumerate(json.loads(text)):
                items.append((str(entry.get("name") or f"node-{i}"), int(entry["gpus"]),
                              float(entry["memory_gib"]), str(entry.get("product") or "simulated")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _bad(text, f"JSON entries need gpus and memory_gib ({exc})") from exc
    else:
        for i, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
            match = _ITEM.match(part)
            if not match:
                raise _bad(part, "expected [<node>=]<count>x<memory>GB[:<product>], e.g. local=2x80GB:NVIDIA-H100-80GB-HBM3")
            items.append((match["node"] or f"node-{i}", int(match["count"]), float(match["gb"]),
                          match["product"] or f"simulated-{match['gb']}GB"))
    for name, count, gib, product in items:
        if name in inventory.nodes:
            raise _bad(text, f"node {name} is declared twice")
        inventory.add(Node(name=name, product=product, shareable=True, labels={"kubernetes.io/hostname": name},
                           gpus=[Gpu(i, int(gib * GIB)) for i in range(count)]))
    return inventory


def _bad(text: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"simulated GPU inventory {text!r}: {why}",
                            details=[{"loc": ["VLLMBENCH_SIMULATED_GPUS"], "msg": why, "expected": DEFAULT_SIMULATED}])


def from_nvidia_smi(output: str, *, node: str = "local", ours: dict[int, int] | None = None) -> Inventory:
    """The GPUs of ``nvidia-smi --query-gpu=index,name,memory.total,memory.used,mig.mode.current
    --format=csv,noheader,nounits``. Memory in use becomes a claim of "process", less ``ours``
    (bytes per GPU index our own servers hold, which their placements claim instead)."""
    inventory = Inventory(source="nvidia-smi")
    gpus: list[Gpu] = []
    product = ""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        index, name, total, used = int(cells[0]), cells[1], _mib(cells[2]), _mib(cells[3])
        if cells[4:] and cells[4].lower() == "enabled":
            continue  # MIG partitions are not visible as whole GPUs; the local runtime does not use them
        gpu = Gpu(index, total * MIB)
        others = used * MIB - (ours or {}).get(index, 0)
        if others > 0:
            gpu.claims.append(Claim("process", others))
        gpus.append(gpu)
        product = product or name.replace(" ", "-")
    inventory.add(Node(name=node, product=product, gpus=gpus, shareable=True, labels={"kubernetes.io/hostname": node}))
    return inventory


def _mib(cell: str) -> int:
    try:
        return int(float(cell))
    except ValueError:  # "[N/A]" on some unified-memory machines
        return 0
