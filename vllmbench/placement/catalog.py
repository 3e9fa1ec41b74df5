"""Architecture facts of common models, shipped with the package.

Each entry holds what the model's published config.json says (layers, hidden size,
heads, KV heads, head dim, MLA ranks, vocabulary, context) and its stored
parameters by safetensors dtype. The counts follow from the tensor shapes those
configs imply (AWQ packs eight 4-bit weights into one I32 and keeps one F16 scale
and a packed zero per group of 128; FP8 checkpoints keep embeddings, norms and the
output head in BF16) and agree with the totals the Hub shows; a test recomputes
every entry from its architecture.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from vllmbench.models.servers import ModelFacts

_LLAMA_8B: dict[str, Any] = {
    "architecture": "LlamaForCausalLM", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072,
    "intermediate_size": 14336, "torch_dtype": "bfloat16",
}
_LLAMA_70B: dict[str, Any] = {
    "architecture": "LlamaForCausalLM", "num_hidden_layers": 80, "hidden_size": 8192, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072,
    "intermediate_size": 28672, "torch_dtype": "bfloat16",
}

# (names, source, facts): the first name is the canonical one.
ENTRIES: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("facebook/opt-125m",), "facebook/opt-125m config.json (MHA, learned positions, tied head)", {
        "architecture": "OPTForCausalLM", "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
        "vocab_size": 50272, "max_position_embeddings": 2048, "intermediate_size": 3072,
        "tie_word_embeddings": True, "torch_dtype": "float16", "parameters": {"F16": 125_239_296}}),
    (("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct",
      "meta-llama/Meta-Llama-3.1-8B"), "meta-llama/Llama-3.1-8B-Instruct config.json (GQA 32/8)",
     {**_LLAMA_8B, "parameters": {"BF16": 8_030_261_248}}),
    (("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct",
      "meta-llama/Llama-3.3-70B-Instruct"), "meta-llama/Llama-3.1-70B-Instruct config.json (GQA 64/8)",
     {**_LLAMA_70B, "parameters": {"BF16": 70_553_706_496}}),
    (("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"), "Qwen/Qwen2.5-7B-Instruct config.json (GQA 28/4, qkv bias)", {
        "architecture": "Qwen2ForCausalLM", "num_hidden_layers": 28, "hidden_size": 3584, "num_attention_heads": 28,
        "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
        "intermediate_size": 18944, "torch_dtype": "bfloat16", "parameters": {"BF16": 7_615_616_512}}),
    (("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B"),
     "Qwen/Qwen2.5-1.5B-Instruct config.json (GQA 12/2: TP 4 replicates its KV heads)", {
         "architecture": "Qwen2ForCausalLM", "num_hidden_layers": 28, "hidden_size": 1536, "num_attention_heads": 12,
         "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
         "intermediate_size": 8960, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
         "parameters": {"BF16": 1_543_714_304}}),
    (("mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-v0.3"),
     "mistralai/Mistral-7B-Instruct-v0.3 config.json (GQA 32/8)", {
         "architecture": "MistralForCausalLM", "num_hidden_layers": 32, "hidden_size": 4096,
         "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32768,
         "max_position_embeddings": 32768, "intermediate_size": 14336, "torch_dtype": "bfloat16",
         "parameters": {"BF16": 7_248_023_552}}),
    (("deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek-ai/DeepSeek-V2-Lite"),
     "deepseek-ai/DeepSeek-V2-Lite-Chat config.json (MLA: kv_lora_rank 512 + rope 64; MoE 64+2 experts)", {
         "architecture": "DeepseekV2ForCausalLM", "num_hidden_layers": 27, "hidden_size": 2048,
         "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 102400,
         "max_position_embeddings": 163840, "intermediate_size": 10944, "torch_dtype": "bfloat16",
         "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
         "num_experts": 64, "num_experts_per_tok": 6, "moe_intermediate_size": 1408, "num_shared_experts": 2,
         "first_dense_layers": 1, "parameters": {"BF16": 15_706_484_224}}),
    (("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"),
     "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8 config.json (compressed-tensors, F8_E4M3 linear weights)",
     {**_LLAMA_8B, "quantization": "compressed-tensors",
      "parameters": {"F8_E4M3": 6_979_321_856, "BF16": 1_050_939_840}}),
    (("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "neuralmagic/Llama-3.3-70B-Instruct-FP8-dynamic"),
     "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic config.json (compressed-tensors, per-channel BF16 scales)",
     {**_LLAMA_70B, "quantization": "compressed-tensors",
      "parameters": {"F8_E4M3": 68_451_041_280, "BF16": 2_109_382_656}}),
    (("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",),
     "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4 config.json (AWQ 4-bit, group 128, GEMM)",
     {**_LLAMA_8B, "torch_dtype": "float16", "quantization": "awq",
      "parameters": {"I32": 879_230_976, "F16": 1_105_465_344}}),
)


@lru_cache(maxsize=1)
def _index() -> dict[str, ModelFacts]:
    found: dict[str, ModelFacts] = {}
    for names, _source, facts in ENTRIES:
        model = ModelFacts.model_validate(facts)
        for name in names:
            found[name.lower()] = model
    return found


def lookup(model_name: str) -> ModelFacts | None:
    """Facts for a Hub id (any case; a local path ending in the id's name matches too)."""
    index = _index()
    key = model_name.strip().rstrip("/").lower()
    if key in index:
        return index[key]
    tail = key.rsplit("/", 1)[-1]
    matches = {id(v): v for k, v in index.items() if k.rsplit("/", 1)[-1] == tail}
    return next(iter(matches.values())) if len(matches) == 1 else None


def names() -> list[str]:
    return [names[0] for names, _source, _facts in ENTRIES]


def source(model_name: str) -> str | None:
    key = model_name.lower()
    for names_, where, _facts in ENTRIES:
        if key in (n.lower() for n in names_):
            return where
    return None
