"""Reuse of what runs: an identical healthy server serves a new one, the same server twice changes nothing.

Identity is ``ModelServerSpec.identity()``: model, revision, dtype, quantization, TP/PP,
max_model_len, KV dtype, image and args, and the original service's remaining fields.
A server whose spec changed replaces itself; when it holds the GPUs its new pods would
need, a rolling update would wait forever, which is why servers render as Recreate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from vllmbench.placement.decision import Decision
from vllmbench.placement.inventory import Inventory

if TYPE_CHECKING:
    from vllmbench.placement.planner import _Plan


@dataclass(frozen=True)
class RunningServer:
    """A server the caller knows is placed (from the store): enough to reuse or preempt it."""

    key: str
    identity: dict[str, Any]
    priority: int = 0
    ready: bool = False
    phase: str = "starting"
    placed_at: float = 0.0


def reuse(p: "_Plan", running: Sequence[RunningServer]) -> Decision | None:
    identity = p.spec.identity()
    same = next((r for r in running if r.key == p.key), None)
    if same is not None and same.identity == identity:
        p.conflict("duplicate_server", f"{p.key} is already placed with this spec ({same.phase})",
                   "nothing changes: the running server stays")
        p.step("reuse", "chosen", f"{p.key} already runs this spec ({same.phase})")
        return Decision(server=p.key, outcome="unchanged", reason=f"already placed ({same.phase})", steps=p.steps,
                        conflicts=p.conflicts, gpu_memory_utilization=p.spec.gpu_memory_utilization,
                        priority=p.spec.priority)
    twins = [r for r in running if r.key != p.key and r.identity == identity]
    healthy = next((r for r in sorted(twins, key=lambda r: r.key) if r.ready), None)
    if healthy is not None:
        p.step("reuse", "chosen", f"{healthy.key} is identical (model, revision, dtype, quantization, TP/PP, "
               "max_model_len, KV dtype, image, args) and ready: it serves this one too", reused=healthy.key)
        return Decision(server=p.key, outcome="reused", reason=f"reusing {healthy.key}", reused=healthy.key,
                        steps=p.steps, conflicts=p.conflicts, gpu_memory_utilization=p.spec.gpu_memory_utilization,
                        priority=p.spec.priority)
    for twin in twins:
        p.conflict("identical_server_not_ready", f"{twin.key} is identical but {twin.phase}",
                   "not reused: this server is placed on its own")
    p.step("reuse", "skipped", "no identical healthy server runs" + (
        f" ({len(twins)} identical, none ready)" if twins else ""))
    return None


def rolling_update(p: "_Plan", inventory: Inventory, key: str, gpus: int) -> None:
    nodes = inventory.holders().get(key, [])
    full = [n for n in nodes if len(inventory.nodes[n].free_gpus()) < gpus]
    if full:
        p.conflict("rolling_update_deadlock", f"{key} changes while it holds the GPUs of {', '.join(full)}: a "
                   "rolling update's new pod would wait forever for them",
                   "rendered with strategy Recreate: the old pods stop before the new ones start")
