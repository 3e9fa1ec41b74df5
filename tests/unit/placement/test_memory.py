"""Memory per GPU against vLLM's own formulas, model by model.

``vllm_*`` below transcribe vLLM's functions one for one (cited by file and function),
independently of vllmbench.placement.memory, so that the planner's numbers are checked
against what vLLM would compute from the same available memory.
"""

from __future__ import annotations

import math

import pytest

from vllmbench.models.servers import ModelServerSpec
from vllmbench.placement import catalog
from vllmbench.placement.memory import per_gpu, smallest_memory_that_fits, weight_bytes
from vllmbench.placement.profiles import GIB, PROFILES, profile_for

H100 = int(79.18 * GIB)  # what torch reports for an H100 80GB (llm-d's measurements)
A100_40 = int(39.39 * GIB)


def vllm_page_size_bytes(*, mla: bool, block_size: int, num_kv_heads: int, head_size: int, dtype_bytes: int) -> int:
    """vllm/v1/kv_cache_interface.py: AttentionSpec.real_page_size_bytes (2 x ...), MLAAttentionSpec (no 2)."""
    return (1 if mla else 2) * block_size * num_kv_heads * head_size * dtype_bytes


def vllm_num_kv_heads(total_kv_heads: int, tp: int) -> int:
    """vllm/config/model.py ModelConfig.get_num_kv_heads: heads are replicated when TP exceeds them."""
    return max(1, total_kv_heads // tp)


def vllm_num_blocks(available: int, page: int, num_layers: int) -> int:
    """vllm/v1/core/kv_cache_utils.py get_num_blocks."""
    return max(int(available // page // num_layers), 0)


def vllm_max_memory_usage(max_model_len: int, block_size: int, page: int, num_layers: int) -> int:
    """FullAttentionSpec.max_memory_usage_bytes summed over layers (max_memory_usage_bytes)."""
    return num_layers * math.ceil(max_model_len / block_size) * page


def vllm_estimate_max_model_len(original: int, block_size: int, page: int, num_layers: int, available: int) -> int:
    """kv_cache_utils.estimate_max_model_len: the binary search, as written."""
    def fits(n: int) -> bool:
        return vllm_max_memory_usage(n, block_size, page, num_layers) <= available
    left, right = 1, original
    if not fits(left):
        return 0
    result = 1
    while left <= right:
        mid = (left + right) // 2
        if fits(mid):
            result, left = mid, mid + 1
        else:
            right = mid - 1
    return result


def vllm_max_concurrency(num_blocks: int, max_model_len: int, block_size: int) -> float:
    """kv_cache_utils.get_max_concurrency_for_kv_cache_config for one uniform group."""
    return num_blocks / math.ceil(max_model_len / block_size)


# (model, spec fields, GPU bytes, page bytes by hand, KV heads per rank)
CASES = [
    ("facebook/opt-125m", {"max_model_len": 2048}, A100_40, 2 * 16 * 12 * 64 * 2, 12),
    ("meta-llama/Llama-3.1-8B-Instruct", {"max_model_len": 16000, "max_num_seqs": 1024}, H100, 2 * 16 * 8 * 128 * 2, 8),
    ("meta-llama/Llama-3.1-70B-Instruct", {"tensor_parallel_size": 4, "max_model_len": 32768}, H100,
     2 * 16 * 2 * 128 * 2, 2),
    # GQA with TP above the KV heads: 2 KV heads over 4 ranks, one (replicated) head each.
    ("Qwen/Qwen2.5-1.5B-Instruct", {"tensor_parallel_size": 4, "max_model_len": 32768}, A100_40,
     2 * 16 * 1 * 128 * 2, 1),
    ("meta-llama/Llama-3.1-70B-Instruct", {"tensor_parallel_size": 16, "max_model_len": 131072}, H100,
     2 * 16 * 1 * 128 * 2, 1),
    # MLA: one latent of 512 + 64 per token and layer, no K/V pair, not split by TP.
    ("deepseek-ai/DeepSeek-V2-Lite-Chat", {"max_model_len": 32768, "trust_remote_code": True}, H100,
     16 * 1 * 576 * 2, 1),
    ("deepseek-ai/DeepSeek-V2-Lite-Chat", {"tensor_parallel_size": 2, "max_model_len": 32768}, H100,
     16 * 1 * 576 * 2, 1),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", {"max_model_len": 8192, "kv_cache_dtype": "fp8"}, A100_40,
     2 * 16 * 8 * 128 * 1, 8),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", {"max_model_len": 8192, "quantization": "awq_marlin"},
     int(22.06 * GIB), 2 * 16 * 8 * 128 * 2, 8),
    ("Qwen/Qwen2.5-7B-Instruct", {"max_model_len": 32768, "block_size": 32}, H100, 2 * 32 * 4 * 128 * 2, 4),
    ("mistralai/Mistral-7B-Instruct-v0.3", {"max_model_len": 32768, "kv_cache_dtype": "fp8_e5m2"}, H100,
     2 * 16 * 8 * 128 * 1, 8),
]


@pytest.mark.parametrize(("model", "fields", "gpu", "page", "kv_heads"), CASES)
def test_kv_figures_are_vllms(model: str, fields: dict, gpu: int, page: int, kv_heads: int) -> None:
    facts = catalog.lookup(model)
    assert facts is not None
    spec = ModelServerSpec.model_validate({"model_name": model, **fields})
    report = per_gpu(spec, facts, gpu_memory=gpu)
    layers = math.ceil(facts.num_hidden_layers / spec.pipeline_parallel_size)

    assert report.kv_heads_per_rank == kv_heads == (1 if facts.is_mla else vllm_num_kv_heads(facts.kv_heads,
                                                                                           spec.tensor_parallel_size))
    assert report.page_bytes == page == vllm_page_size_bytes(
        mla=facts.is_mla, block_size=spec.block_size, num_kv_heads=kv_heads, head_size=facts.head_size,
        dtype_bytes=report.kv_dtype_bytes)
    assert report.requested == math.ceil(gpu * spec.gpu_memory_utilization)  # request_memory
    assert report.kv_available == report.requested - report.weights - report.activation - report.non_torch
    blocks = vllm_num_blocks(report.kv_available, page, layers)
    assert report.num_blocks == blocks
    assert report.kv_tokens == blocks * spec.block_size  # "GPU KV cache size: N tokens"
    assert report.kv_needed_for_one_request == vllm_max_memory_usage(report.max_model_len, spec.block_size, page, layers)
    assert report.max_concurrency == round(vllm_max_concurrency(blocks, report.max_model_len, spec.block_size), 2)
    assert report.largest_max_model_len == vllm_estimate_max_model_len(
        facts.max_position_embeddings, spec.block_size, page, layers, report.kv_available)
    assert report.fits == (report.kv_available > 0 and report.kv_needed_for_one_request <= report.kv_available)


def test_kv_per_token_by_hand() -> None:
    """Llama-3.1-8B: 2 x 8 heads x 128 x 2 bytes x 32 layers = 128 KiB per token; 70B at TP 4: 80 KiB per rank."""
    for model, tp, per_token in [("meta-llama/Llama-3.1-8B-Instruct", 1, 131072),
                                 ("meta-llama/Llama-3.1-70B-Instruct", 4, 2 * 2 * 128 * 2 * 80),
                                 ("deepseek-ai/DeepSeek-V2-Lite-Chat", 1, 576 * 2 * 27)]:
        facts = catalog.lookup(model)
        report = per_gpu(ModelServerSpec(model_name=model, tensor_parallel_size=tp, max_model_len=4096),
                         facts, gpu_memory=H100)
        assert report.page_bytes * report.layers_per_rank // report.block_size == per_token


# llm-d measured vLLM on an H100 (79.18 GiB, gpu_memory_utilization 0.9, max_model_len 16000, vLLM's H100 defaults
# of 1024 sequences): "Model loading took" and "Available KV cache memory", in GiB.
MEASURED = [
    ("meta-llama/Llama-3.1-8B-Instruct", 1, 14.99, 51.38),
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", 2, 33.88, 32.0),
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", 1, 67.72, -1.44),
]


@pytest.mark.parametrize(("model", "tp", "weights_gib", "kv_gib"), MEASURED)
def test_weights_and_kv_budget_match_measurements(model: str, tp: int, weights_gib: float, kv_gib: float) -> None:
    spec = ModelServerSpec(model_name=model, tensor_parallel_size=tp, max_num_seqs=1024, max_model_len=16000,
                           engine={"version": "v0.11.0"})
    report = per_gpu(spec, catalog.lookup(model), gpu_memory=H100, product="NVIDIA-H100-80GB-HBM3")
    assert report.weights / GIB == pytest.approx(weights_gib, abs=0.1)
    assert report.kv_available / GIB == pytest.approx(kv_gib, abs=0.3)
    assert report.fits == (kv_gib > 0)
    if kv_gib <= 0:
        assert report.problem == "no_kv_memory"


@pytest.mark.parametrize(("model", "quantization", "gib"), [
    ("meta-llama/Llama-3.1-8B-Instruct", None, 14.96),  # BF16: 2 bytes a parameter
    ("meta-llama/Llama-3.1-8B-Instruct", "fp8", 8.46),  # quantized while loading: as the FP8 checkpoint
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", None, 8.46),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "awq", 5.33),
    ("facebook/opt-125m", None, 0.23),
])
def test_weights_by_dtype_and_quantization(model: str, quantization: str | None, gib: float) -> None:
    spec = ModelServerSpec(model_name=model, quantization=quantization)
    total, _ = weight_bytes(spec, catalog.lookup(model))
    assert total / GIB == pytest.approx(gib, abs=0.01)


def test_float32_doubles_the_weights_and_the_kv_cache() -> None:
    facts = catalog.lookup("facebook/opt-125m")
    half = per_gpu(ModelServerSpec(model_name="facebook/opt-125m"), facts, gpu_memory=A100_40)
    full = per_gpu(ModelServerSpec(model_name="facebook/opt-125m", dtype="float32"), facts, gpu_memory=A100_40)
    assert full.weights == 2 * half.weights
    assert full.page_bytes == 2 * half.page_bytes


def test_auto_max_model_len_is_the_largest_that_fits_and_tp_frees_memory() -> None:
    facts = catalog.lookup("meta-llama/Llama-3.1-70B-Instruct")
    tp4 = per_gpu(ModelServerSpec(model_name="x", tensor_parallel_size=4, max_model_len="auto"), facts, gpu_memory=H100)
    assert tp4.max_model_len == tp4.largest_max_model_len == min(131072, tp4.kv_tokens)
    assert tp4.fits
    tp2 = per_gpu(ModelServerSpec(model_name="x", tensor_parallel_size=2, max_model_len=131072), facts,
                  gpu_memory=H100)
    assert tp2.problem == "max_model_len_too_long" and 0 < tp2.largest_max_model_len < 131072
    tp1 = per_gpu(ModelServerSpec(model_name="x", max_model_len=4096), facts, gpu_memory=H100)
    assert tp1.problem == "no_kv_memory" and tp1.num_blocks == 0 and tp1.largest_max_model_len == 0


def test_pipeline_parallel_splits_layers_and_weights() -> None:
    facts = catalog.lookup("meta-llama/Llama-3.1-70B-Instruct")
    pp1 = per_gpu(ModelServerSpec(model_name="x", tensor_parallel_size=4, max_model_len=8192), facts, gpu_memory=H100)
    pp2 = per_gpu(ModelServerSpec(model_name="x", tensor_parallel_size=4, pipeline_parallel_size=2,
                                  max_model_len=8192), facts, gpu_memory=H100)
    assert pp2.layers_per_rank == 40 and pp1.layers_per_rank == 80
    assert pp2.weights < 0.55 * pp1.weights
    assert pp2.kv_tokens > 2 * pp1.kv_tokens


def test_max_num_seqs_moves_the_activation_peak() -> None:
    facts = catalog.lookup("meta-llama/Llama-3.1-8B-Instruct")
    many = per_gpu(ModelServerSpec(model_name="x", max_num_seqs=1024, max_model_len=8192), facts, gpu_memory=H100)
    few = per_gpu(ModelServerSpec(model_name="x", max_num_seqs=64, max_model_len=8192), facts, gpu_memory=H100)
    assert many.activation / GIB == pytest.approx(4.9, abs=0.1)  # llm-d measured 4.76 GiB at 1024 sequences
    assert few.activation < many.activation / 3
    assert few.kv_tokens > many.kv_tokens


def test_smallest_memory_that_fits() -> None:
    facts = catalog.lookup("meta-llama/Llama-3.1-8B-Instruct")
    spec = ModelServerSpec(model_name="x", max_model_len=8192, max_num_seqs=64)
    least = smallest_memory_that_fits(spec, facts)
    assert per_gpu(spec, facts, gpu_memory=least).fits
    assert not per_gpu(spec, facts, gpu_memory=least - GIB // 16).fits
    assert 16 * GIB < least < 24 * GIB


@pytest.mark.parametrize(("version", "name"), [("v0.10.1", "v1-engine"), ("v0.11.0", "v1-engine"),
                                                 ("0.17.1", "v1-engine-0.17"), ("v0.20.0", "v1-engine-0.17"),
                                                 ("latest", "v1-engine-0.17"), ("v0.6.3", "v1-engine"),
                                                 ("nightly-abc", "v1-engine-0.17")])
def test_profiles_by_version(version: str, name: str) -> None:
    assert profile_for(version).name == name
    assert all(p.source for p in PROFILES)
