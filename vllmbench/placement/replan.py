"""Planning many servers at once: a full re-plan, and the return of preempted ones.

Servers are planned by priority (highest first, then name) against one working copy
of the inventory, each placed decision applied before the next, so that two servers
never get the same GPUs. A full re-plan starts from the inventory without our own
servers (everything else's pods stay); ``pending_first`` re-plans only what waits,
which is how preempted and pending servers come back once capacity returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from vllmbench.models.servers import ModelFacts, ModelServerSpec
from vllmbench.placement.decision import Decision
from vllmbench.placement.inventory import Inventory
from vllmbench.placement.planner import RunningServer, apply, plan


@dataclass(frozen=True)
class Wanted:
    key: str
    spec: ModelServerSpec
    facts: ModelFacts
    facts_source: str = "catalog"


def plan_all(wanted: Iterable[Wanted], inventory: Inventory, *, running: Sequence[RunningServer] = (),
             fresh: bool = True) -> list[Decision]:
    """Decisions for every wanted server; ``fresh`` releases our servers' GPUs first (a full re-plan)."""
    work = inventory.copy()
    items = sorted(wanted, key=lambda w: (-w.spec.priority, w.key))
    seen: set[str] = set()
    if fresh:
        for item in items:
            work.release(item.key)
        running = ()
    decisions = []
    for item in items:
        if item.key in seen:
            continue  # the same server twice in one batch: the first file wins; the caller reports the rest
        seen.add(item.key)
        decision = plan(item.spec, key=item.key, facts=item.facts, inventory=work, running=running,
                        facts_source=item.facts_source)
        apply(work, decision)
        decisions.append(decision)
    return decisions
