"""What vLLM holds besides the weights and the KV cache, per vLLM version.

vLLM sizes its KV cache after a profile run (vllm/v1/worker/gpu_worker.py,
``Worker.determine_available_memory``): the budget ``ceil(total x
gpu_memory_utilization)`` (vllm/v1/worker/utils.py ``request_memory``) minus the
weights, the peak activation of the profile run, and the memory others than torch
allocated (NCCL, cuBLAS workspaces). Only the first of those three can be computed
from the model; the other two are measured, so they live here as constants with
their source. CUDA graphs are captured after the budget is fixed and live outside
it (the estimate is subtracted only with ``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS``),
so they count against a GPU's headroom, not against the KV cache.

The activation peak is the sampler's dummy run over ``min(max_num_seqs,
max_num_batched_tokens)`` requests x the vocabulary in fp32 (sort values and
indices, softmax, cumsum, scatter: about nine such tensors at once), or the forward
pass over ``max_num_batched_tokens`` tokens when that is larger. Fitted to llm-d's
measurements of vLLM on H100 (llm-d-benchmark config_explorer/empirical-vllm-memory-results.md:
Llama-3.1-8B 4.76 GiB, Qwen3-0.6B 5.56, Qwen3-32B 5.64, gpt-oss-20b/120b 7.38,
Llama-3.3-70B-FP8 at TP 2 4.84, all at vLLM's H100 defaults of 1024 sequences and
8192 batched tokens): 0.22 GiB + 9.3 x the fp32 logits, within 0.06 GiB of every
figure; the profile rounds up to 0.25 GiB + 9.5 x. A constant per model, as llm-d's
planner uses, cannot follow max_num_seqs, which moves this term most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class VllmProfile:
    """Overheads of one range of vLLM versions (from ``since`` up to the next profile)."""

    since: tuple[int, int]
    name: str
    activation_base_bytes: int
    sampler_fp32_copies: float
    non_torch_tp1_bytes: int
    non_torch_tp_many_bytes: int
    cudagraph_bytes: int
    default_gpu_memory_utilization: float
    source: str


PROFILES: tuple[VllmProfile, ...] = (
    VllmProfile(
        since=(0, 10), name="v1-engine",
        activation_base_bytes=GIB // 4, sampler_fp32_copies=9.5,
        # Measured 0.13 GiB at TP 1 and 0.55 GiB at TP 2 (llm-d, H100), rounded up.
        non_torch_tp1_bytes=int(0.15 * GIB), non_torch_tp_many_bytes=int(0.6 * GIB),
        # Measured -0.45 to 1.03 GiB by llm-d; the larger figure is kept as headroom.
        cudagraph_bytes=int(1.0 * GIB), default_gpu_memory_utilization=0.9,
        source="llm-d-benchmark config_explorer/empirical-vllm-memory-results.md (H100, V1 engine)",
    ),
    VllmProfile(
        since=(0, 17), name="v1-engine-0.17",
        activation_base_bytes=GIB // 4, sampler_fp32_copies=9.5,
        # FIELD-NOTES (Dec 2026): 0.15 / 0.6 GiB measured 44% low on vLLM 0.17.
        non_torch_tp1_bytes=int(0.27 * GIB), non_torch_tp_many_bytes=int(1.07 * GIB),
        cudagraph_bytes=int(1.0 * GIB), default_gpu_memory_utilization=0.92,
        source="as v1-engine; non-torch raised by the 44% measured on vLLM 0.17 (FIELD-NOTES.md)",
    ),
)
OLDEST = PROFILES[0]
NEWEST = PROFILES[-1]
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def profile_for(version: str) -> VllmProfile:
    """The profile of an image tag: ``v0.11.0`` -> v1-engine; ``latest`` or unknown tags -> the newest."""
    match = _VERSION.match(version)
    if not match:
        return NEWEST
    wanted = (int(match[1]), int(match[2]))
    chosen = OLDEST
    for profile in PROFILES:
        if profile.since <= wanted:
            chosen = profile
    return chosen


def default_max_num_batched_tokens(gpu_memory_bytes: int, product: str) -> int:
    """vLLM's API-server default (vllm/engine/arg_utils.py ``EngineArgs.get_batch_defaults``):
    8192 on GPUs of 70 GiB and more other than the A100, else 2048."""
    return 8192 if gpu_memory_bytes >= 70 * GIB and "a100" not in product.lower() else 2048
