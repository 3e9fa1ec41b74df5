"""GPU placement for vLLM servers: pure values in, a decision with its reasons out.

- ``facts`` / ``catalog``: a model's architecture facts (spec, config.json, the shipped catalog)
- ``memory`` / ``profiles``: memory per GPU the way vLLM computes it, overheads per vLLM version
- ``inventory`` / ``cluster`` / ``local``: what is free (Kubernetes objects, nvidia-smi, a declared inventory)
- ``planner`` / ``fit`` / ``advice`` / ``replan``: conflicts, the resolution order, the shortfall in numbers
- ``render``: the Deployment and Service of a placed server; ``hints``: vLLM's start-up errors read back
"""

from vllmbench.placement.cluster import from_kube
from vllmbench.placement.decision import Conflict, Decision, ReplicaPlacement, Step, Victim
from vllmbench.placement.facts import from_config, resolve
from vllmbench.placement.hints import Hint, from_log
from vllmbench.placement.inventory import Claim, Gpu, Holding, Inventory, MigPool, Node
from vllmbench.placement.local import from_nvidia_smi, simulated
from vllmbench.placement.memory import MemoryReport, per_gpu
from vllmbench.placement.planner import RunningServer, apply, plan
from vllmbench.placement.render import render, serve_args
from vllmbench.placement.replan import Wanted, plan_all

__all__ = [
    "Claim", "Conflict", "Decision", "Gpu", "Hint", "Holding", "Inventory", "MemoryReport", "MigPool", "Node",
    "ReplicaPlacement", "RunningServer", "Step", "Victim", "Wanted", "apply", "from_config", "from_kube",
    "from_log", "from_nvidia_smi", "per_gpu", "plan", "plan_all", "render", "resolve", "serve_args", "simulated",
]
