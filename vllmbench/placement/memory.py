"""Memory per GPU, computed the way vLLM computes it.

- Budget: ``ceil(total x gpu_memory_utilization)`` (vllm/v1/worker/utils.py ``request_memory``).
- KV memory: budget - weights - peak activation - non-torch memory
  (vllm/v1/worker/gpu_worker.py ``Worker.determine_available_memory``); the last two
  come from the version's profile (``profiles.py``).
- Page: ``2 x block_size x kv_heads_per_rank x head_size x dtype bytes`` per layer,
  without the 2 for MLA, which caches one latent of ``kv_lora_rank + qk_rope_head_dim``
  (vllm/v1/kv_cache_interface.py ``AttentionSpec.real_page_size_bytes``,
  ``MLAAttentionSpec.real_page_size_bytes``); ``kv_heads_per_rank = max(1, kv_heads // TP)``
  (vllm/config/model.py ``ModelConfig.get_num_kv_heads``).
- Blocks: ``available // page // layers`` (vllm/v1/core/kv_cache_utils.py ``get_num_blocks``);
  KV tokens = blocks x block_size (``_report_kv_cache_config``); a request needs
  ``ceil(max_model_len / block_size)`` blocks (``FullAttentionSpec.max_memory_usage_bytes``);
  max concurrency = blocks / that (``get_max_concurrency_for_kv_cache_config``); the largest
  max_model_len is what ``estimate_max_model_len``'s binary search finds, blocks x block_size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vllmbench.models.servers import ModelFacts, ModelServerSpec
from vllmbench.placement.profiles import GIB, VllmProfile, default_max_num_batched_tokens, profile_for

DTYPE_BYTES = {"F64": 8.0, "F32": 4.0, "BF16": 2.0, "F16": 2.0, "F8_E4M3": 1.0, "F8_E5M2": 1.0, "I64": 8.0,
               "I32": 4.0, "I16": 2.0, "I8": 1.0, "U8": 1.0, "BOOL": 1.0, "F4": 0.5, "U4": 0.5, "I4": 0.5}
_FLOATS = {"F32", "BF16", "F16"}
# Quantization vLLM applies while loading an unquantized checkpoint: bytes per linear weight.
ON_THE_FLY = {"fp8": 1.0, "fbgemm_fp8": 1.0, "ptpc_fp8": 1.0, "bitsandbytes": 0.53, "experts_int8": 1.0}
_COMPUTE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def compute_dtype_bytes(spec: ModelServerSpec, facts: ModelFacts) -> int:
    """Bytes of the dtype vLLM computes in; 'auto' runs a float32 checkpoint in 16 bits."""
    if spec.dtype == "auto":
        return 2
    return _COMPUTE_BYTES[spec.dtype]


def kv_dtype_bytes(spec: ModelServerSpec, facts: ModelFacts) -> int:
    return 1 if spec.kv_cache_dtype.startswith("fp8") else (
        compute_dtype_bytes(spec, facts) if spec.kv_cache_dtype == "auto" else 2)


def weight_bytes(spec: ModelServerSpec, facts: ModelFacts) -> tuple[int, int]:
    """``(all weights, embeddings + output head)`` in bytes as loaded on the GPUs."""
    compute = compute_dtype_bytes(spec, facts)
    embed_params = facts.vocab_size * facts.hidden_size * (1 if facts.tie_word_embeddings else 2)
    if facts.quantization:  # stored quantized: loaded as stored, the float parts in the compute dtype
        total = sum(n * (compute if d in _FLOATS else DTYPE_BYTES.get(d, 2.0)) for d, n in facts.parameters.items())
        return int(total), embed_params * compute
    params = facts.total_parameters
    if spec.quantization in ON_THE_FLY:
        linear = max(params - embed_params, 0)
        return int(linear * ON_THE_FLY[spec.quantization] + embed_params * compute), embed_params * compute
    return int(params * compute), embed_params * compute


@dataclass(frozen=True)
class MemoryReport:
    """One GPU of one replica (the worst rank), in bytes unless named otherwise."""

    gpu_memory: int
    gpu_memory_utilization: float
    requested: int
    weights: int
    activation: int
    non_torch: int
    kv_available: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    layers_per_rank: int
    kv_heads_per_rank: int
    head_size: int
    kv_dtype_bytes: int
    block_size: int
    page_bytes: int
    num_blocks: int
    kv_tokens: int
    max_model_len: int
    blocks_per_request: int
    kv_needed_for_one_request: int
    max_concurrency: float
    largest_max_model_len: int
    model_max_len: int
    max_num_batched_tokens: int
    cudagraph_headroom: int
    profile: str
    problem: str | None

    @property
    def fits(self) -> bool:
        return self.problem is None

    @property
    def claim(self) -> int:
        """What the server holds on a GPU it shares: its budget and its CUDA graphs outside it."""
        return self.requested + self.cudagraph_headroom

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fits"] = self.fits
        data["gib"] = {k: round(data[k] / GIB, 2) for k in (
            "gpu_memory", "requested", "weights", "activation", "non_torch", "kv_available",
            "kv_needed_for_one_request", "cudagraph_headroom")}
        return data


def per_gpu(spec: ModelServerSpec, facts: ModelFacts, *, gpu_memory: int, product: str = "",
            gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
            profile: VllmProfile | None = None) -> MemoryReport:
    """The memory of one GPU of ``spec`` on a GPU of ``gpu_memory`` bytes."""
    profile = profile or profile_for(spec.engine.version)
    util = gpu_memory_utilization if gpu_memory_utilization is not None else spec.gpu_memory_utilization
    tp, pp = spec.tensor_parallel_size, spec.pipeline_parallel_size
    layers = math.ceil(facts.num_hidden_layers / pp)
    total_weights, edge_weights = weight_bytes(spec, facts)
    body = max(total_weights - edge_weights, 0)
    # The worst stage holds its share of the layers and, with PP, the larger end (embeddings or head).
    edges = edge_weights if pp == 1 else edge_weights / (1 if facts.tie_word_embeddings else 2)
    weights = int((body * layers / facts.num_hidden_layers + edges) / tp)
    batched = spec.max_num_batched_tokens or default_max_num_batched_tokens(gpu_memory, product)
    sampler = profile.sampler_fp32_copies * min(spec.max_num_seqs, batched) * facts.vocab_size * 4
    inner = (facts.moe_intermediate_size or 0) * (facts.num_experts_per_tok or 0) or facts.intermediate_size
    forward = batched * 3 * (inner or 4 * facts.hidden_size) / tp * compute_dtype_bytes(spec, facts)
    activation = int(profile.activation_base_bytes + max(sampler, forward))
    non_torch = profile.non_torch_tp1_bytes if tp * pp == 1 else profile.non_torch_tp_many_bytes
    requested = math.ceil(gpu_memory * util)
    kv_available = requested - weights - activation - non_torch

    kv_heads = 1 if facts.is_mla else max(1, facts.kv_heads // tp)
    kv_bytes = kv_dtype_bytes(spec, facts)
    page = (1 if facts.is_mla else 2) * spec.block_size * kv_heads * facts.head_size * kv_bytes
    blocks = max(int(kv_available // page // layers), 0) if kv_available > 0 else 0
    largest = min(facts.max_position_embeddings, blocks * spec.block_size)
    if max_model_len is None:
        wanted = spec.max_model_len
        length = largest if wanted == "auto" else (wanted if isinstance(wanted, int) else facts.max_position_embeddings)
    else:
        length = max_model_len
    length = max(length, 1)
    per_request = math.ceil(length / spec.block_size)
    needed = layers * per_request * page
    problem = None
    if kv_available <= 0:
        problem = "no_kv_memory"
    elif needed > kv_available:
        problem = "max_model_len_too_long"
    elif length > facts.max_position_embeddings:
        problem = "max_model_len_above_model"
    return MemoryReport(
        gpu_memory=gpu_memory, gpu_memory_utilization=util, requested=requested, weights=weights,
        activation=activation, non_torch=non_torch, kv_available=kv_available, tensor_parallel_size=tp,
        pipeline_parallel_size=pp, layers_per_rank=layers, kv_heads_per_rank=kv_heads, head_size=facts.head_size,
        kv_dtype_bytes=kv_bytes, block_size=spec.block_size, page_bytes=page, num_blocks=blocks,
        kv_tokens=blocks * spec.block_size, max_model_len=length, blocks_per_request=per_request,
        kv_needed_for_one_request=needed, max_concurrency=round(blocks / per_request, 2),
        largest_max_model_len=largest, model_max_len=facts.max_position_embeddings,
        max_num_batched_tokens=batched, cudagraph_headroom=profile.cudagraph_bytes, profile=profile.name,
        problem=problem)


def smallest_memory_that_fits(spec: ModelServerSpec, facts: ModelFacts, *, max_model_len: int | None = None,
                              product: str = "") -> int:
    """The least GPU memory (bytes, to 1/64 GiB) on which ``spec`` serves one request of its length."""
    low, high = 1, 64 * 1024  # in 1/64 GiB
    if not per_gpu(spec, facts, gpu_memory=high * GIB // 64, product=product, max_model_len=max_model_len).fits:
        return high * GIB // 64 + 1
    while low < high:
        mid = (low + high) // 2
        if per_gpu(spec, facts, gpu_memory=mid * GIB // 64, product=product, max_model_len=max_model_len).fits:
            high = mid
        else:
            low = mid + 1
    return low * GIB // 64
