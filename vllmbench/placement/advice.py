"""What the planner says when something does not fit: why, the shortfall in numbers, what to try.

llm-d's capacity planner lists fixes (a bigger GPU, more TP or PP, a shorter
max_model_len); here each fix is checked against the same memory math before it is
suggested, and the cluster's free capacity is part of the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from vllmbench.models.servers import ModelFacts, ModelServerSpec, divisors, mig_profile, parallelism_problem
from vllmbench.placement.fit import View
from vllmbench.placement.inventory import Node
from vllmbench.placement.memory import MemoryReport, per_gpu
from vllmbench.placement.profiles import GIB

if TYPE_CHECKING:
    from vllmbench.placement.planner import _Plan


def gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def memory_message(report: MemoryReport, product: str, mig: str | None) -> str:
    where = f"{mig} ({gib(report.gpu_memory)})" if mig else f"{product or 'the GPU'} ({gib(report.gpu_memory)})"
    if report.problem == "no_kv_memory":
        return (f"does not fit on {where}: budget {gib(report.requested)} (gpu_memory_utilization "
                f"{report.gpu_memory_utilization}) < weights {gib(report.weights)} + activation "
                f"{gib(report.activation)} + non-torch {gib(report.non_torch)} per GPU: no memory for the KV cache")
    if report.problem == "max_model_len_too_long":
        return (f"max_model_len {report.max_model_len} needs {gib(report.kv_needed_for_one_request)} of KV cache "
                f"per GPU, {where} leaves {gib(report.kv_available)}: the largest max_model_len that fits is "
                f"{report.largest_max_model_len}")
    if report.problem == "max_model_len_above_model":
        return f"max_model_len {report.max_model_len} is above the model's {report.model_max_len}"
    return f"fits on {where}"


def smallest_mig_profile(spec: ModelServerSpec, facts: ModelFacts,
                         profiles: Iterable[tuple[str, int]]) -> tuple[str, MemoryReport] | None:
    """The MIG profile with the least memory on which the server fits (slices of more compute first on ties)."""
    ordered = sorted(set(profiles), key=lambda item: (item[1], -(mig_profile(item[0]) or (0, 0))[0], item[0]))
    for resource, memory in ordered:
        report = per_gpu(spec, facts, gpu_memory=memory)
        if report.fits:
            return resource, report
    return None


def _free_count(view: View, node: Node, mig: str | None, claim: int) -> int:
    if mig:
        return view.mig_free(node, mig)
    if node.shareable:
        return sum(1 for g in node.gpus if view.gpu_free(node, g.index, g.memory, g.claims) >= claim)
    return len(view.whole_free(node))


def why_not(p: "_Plan", view: View, group: list[Node], gpus: int, mig: str | None) -> str:
    if not group:
        return "no schedulable node has it"
    fitting = [n for n in group if p.for_node(n, mig).fits]
    if not fitting:
        node = max(group, key=lambda n: n.mig[mig].memory if mig else n.gpu_memory)
        return memory_message(p.for_node(node, mig), node.product, mig)
    best = max(fitting, key=lambda n: (_free_count(view, n, mig, p.for_node(n, mig).claim), n.name))
    free = _free_count(view, best, mig, p.for_node(best, mig).claim)
    return f"{len(fitting)} nodes fit the memory; the best, {best.name}, has {free} free of the {gpus} needed"


def best_report(p: "_Plan", accepted: list[Node], mig: str | None) -> MemoryReport | None:
    if not accepted:
        return None
    node = max(accepted, key=lambda n: (n.mig[mig].memory if mig else n.gpu_memory, n.name))
    return p.for_node(node, mig)


def shortfall(p: "_Plan", view: View, accepted: list[Node], gpus: int, mig: str | None) -> dict[str, Any]:
    spec = p.spec
    resource = mig or spec.gpu_resource_type
    if not accepted:
        wanted = f" of {', '.join(spec.accelerators)}" if spec.accelerators else ""
        return {"message": f"no schedulable node offers {resource}{wanted}", "needed": gpus, "resource": resource}
    fitting = [n for n in accepted if p.for_node(n, mig).fits]
    if not fitting:
        report = best_report(p, accepted, mig)
        assert report is not None
        node = max(accepted, key=lambda n: n.mig[mig].memory if mig else n.gpu_memory)
        return {"message": memory_message(report, node.product, mig), "needed_gib_per_gpu":
                round((report.weights + report.activation + report.non_torch + report.kv_needed_for_one_request)
                      / report.gpu_memory_utilization / GIB, 1), "largest_gpu_gib": round(report.gpu_memory / GIB, 1)}
    counts = {n.name: _free_count(view, n, mig, p.for_node(n, mig).claim) for n in fitting}
    best = max(fitting, key=lambda n: (counts[n.name], n.name))
    keep = spec.priority if spec.preemption_policy != "Never" else -1
    ours: dict[str, int] = {}
    others: set[str] = set()
    for node in fitting:
        claims = node.mig[mig].claims if mig else [c for g in node.gpus for c in g.claims]
        for claim in claims:
            if claim.holder in view.ignoring:
                continue
            if claim.priority is None:
                others.add(claim.holder)
            elif claim.priority >= keep:
                ours[claim.holder] = claim.priority
    unit = mig or f"{best.product or 'GPU'} ({gib(best.gpu_memory)})"
    needed = f"{gpus} x {unit} on one node" + (f", {spec.replicas} times" if spec.replicas > 1 else "")
    message = f"needs {needed}; the best node {best.name} has {counts[best.name]} free"
    if ours:
        message += (f"; {len(ours)} servers of priority >= {min(ours.values())} hold the rest"
                    if spec.preemption_policy != "Never" else f"; {len(ours)} servers hold the rest")
    if others:
        message += f"; {len(others)} other workloads hold GPUs"
    return {"message": message, "needed": gpus, "replicas": spec.replicas, "resource": resource,
            "best_node": best.name, "best_node_free": counts[best.name],
            "holding_servers": sorted(ours), "other_holders": len(others)}


def hints(p: "_Plan", report: MemoryReport | None) -> list[str]:
    """Fixes that the memory math says would work."""
    if report is None or report.fits:
        return ["wait: the server is placed by itself when GPUs free up",
                "or raise its priority above the servers holding the GPUs"] if report else []
    spec, facts, found = p.spec, p.facts, []
    for tp in divisors(facts.num_attention_heads):
        if tp <= spec.tensor_parallel_size or parallelism_problem(facts, tp, spec.pipeline_parallel_size):
            continue
        trial = spec.model_copy(update={"tensor_parallel_size": tp, "gpu_resource_count": None})
        if per_gpu(trial, facts, gpu_memory=report.gpu_memory).fits:
            found.append(f"tensor_parallel_size: {tp} fits ({tp} GPUs per replica)")
            break
    if report.problem == "max_model_len_too_long" and report.largest_max_model_len > 0:
        found.append(f"max_model_len: {report.largest_max_model_len} fits (or shrink.max_model_len_min)")
    if spec.kv_cache_dtype == "auto" and report.kv_dtype_bytes > 1:
        trial = spec.model_copy(update={"kv_cache_dtype": "fp8"})
        if per_gpu(trial, facts, gpu_memory=report.gpu_memory).fits:
            found.append("kv_cache_dtype: fp8 fits (half the KV cache)")
    if spec.gpu_memory_utilization < 0.95:
        trial = spec.model_copy(update={"gpu_memory_utilization": 0.95})
        if per_gpu(trial, facts, gpu_memory=report.gpu_memory).fits:
            found.append("gpu_memory_utilization: 0.95 fits")
    if not found:
        found.append("a larger GPU, a quantized checkpoint (fp8, awq) or more tensor_parallel_size")
    return found
