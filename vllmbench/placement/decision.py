"""What the planner answers: a decision, each step it took, the conflicts it saw, the numbers.

Shared by ``POST /plan`` (a dry run), the deploy path, the store and the events, so
that what a user reads is exactly what was decided.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field

from vllmbench.models.base import Strict

Outcome = Literal["placed", "reused", "unchanged", "pending", "invalid"]
StepName = Literal["validate", "reuse", "place", "other_accelerator", "shrink", "preempt", "pending"]
StepOutcome = Literal["chosen", "failed", "skipped"]
ConflictKind = Literal[
    "tp_not_dividing_heads", "no_such_resource", "too_many_gpus_for_one_node", "no_free_gpus",
    "wrong_accelerator", "memory_does_not_fit", "mig_profile_too_small", "rolling_update_deadlock",
    "duplicate_server", "identical_server_not_ready", "no_schedulable_node",
]


class Step(Strict):
    step: StepName
    outcome: StepOutcome
    message: str
    numbers: dict[str, Any] = Field(default_factory=dict)


class Conflict(Strict):
    kind: ConflictKind
    message: str
    resolution: str | None = None


class ReplicaPlacement(Strict):
    replica: int
    node: str
    accelerator: str
    resource: str
    count: int = Field(ge=0)
    gpus: list[int] = Field(default_factory=list, description="GPU indices (the local runtime's CUDA_VISIBLE_DEVICES).")
    bytes_per_gpu: int = Field(0, ge=0, description="The claim on each GPU when shared; 0 for whole GPUs.")


class Victim(Strict):
    server: str
    priority: int
    nodes: list[str]
    reason: str


class Decision(Strict):
    server: str
    outcome: Outcome
    reason: str
    replicas: list[ReplicaPlacement] = Field(default_factory=list)
    reused: str | None = Field(None, description="The running server that serves this one.")
    max_model_len: int | None = None
    gpu_memory_utilization: float
    strategy: Literal["Recreate"] = "Recreate"
    memory: dict[str, Any] | None = Field(None, description="The per-GPU breakdown on the chosen (or best) GPU.")
    preempted: list[Victim] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    shortfall: dict[str, Any] | None = None
    hints: list[str] = Field(default_factory=list)
    facts_source: str = "catalog"
    priority: int = 0

    @property
    def node(self) -> str | None:
        return self.replicas[0].node if self.replicas else None

    @property
    def accelerator(self) -> str | None:
        return self.replicas[0].accelerator if self.replicas else None


def memory_dict(report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    return report.as_dict() if hasattr(report, "as_dict") else dataclasses.asdict(report)
