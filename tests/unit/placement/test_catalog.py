"""The catalog agrees with itself: stored parameters are what each architecture implies."""

from __future__ import annotations

import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.models.servers import ModelServerSpec, parallelism_problem
from vllmbench.placement import catalog
from vllmbench.placement.facts import estimate_parameters, from_config, resolve

ENTRIES = [(names[0], facts) for names, _source, facts in catalog.ENTRIES]


def logical_parameters(name: str) -> int:
    """Stored tensors back to weights: AWQ packs 8 weights per I32 and adds 1/128 scales and 1/1024 zeros."""
    facts = catalog.lookup(name)
    assert facts is not None
    counts = facts.parameters
    if facts.quantization == "awq":
        linear = counts["I32"] * 1024 // 129  # I32 = qweight (1/8 a weight) + qzeros (1/1024 a weight)
        return linear + counts["F16"] - linear // 128  # F16 = scales (1/128 a weight) + the unquantized rest
    return facts.total_parameters


@pytest.mark.parametrize(("name", "raw"), ENTRIES)
def test_stored_parameters_match_the_architecture(name: str, raw: dict) -> None:
    facts = catalog.lookup(name)
    assert facts is not None
    estimate = estimate_parameters(facts)
    assert abs(logical_parameters(name) - estimate) / estimate < 2e-4, (logical_parameters(name), estimate)


@pytest.mark.parametrize(("name", "raw"), ENTRIES)
def test_entries_are_internally_consistent(name: str, raw: dict) -> None:
    facts = catalog.lookup(name)
    assert facts is not None
    assert facts.num_attention_heads % facts.kv_heads == 0
    assert parallelism_problem(facts, 1) is None
    if not facts.is_mla:
        assert facts.head_size * facts.num_attention_heads in (facts.hidden_size, facts.num_attention_heads * 128)
    else:
        assert facts.head_size == 576 and facts.kv_lora_rank == 512
    if facts.quantization:
        assert any(d not in ("BF16", "F16", "F32") for d in facts.parameters)
    else:
        assert set(facts.parameters) <= {"BF16", "F16", "F32"}
    assert catalog.source(name)
    assert "architecture" in raw and raw["max_position_embeddings"] >= 2048


@pytest.mark.parametrize(("query", "found"), [
    ("meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM"),
    ("META-LLAMA/llama-3.1-8b-instruct", "LlamaForCausalLM"),
    ("meta-llama/Meta-Llama-3.1-70B-Instruct", "LlamaForCausalLM"),
    ("/models/Qwen2.5-7B-Instruct/", "Qwen2ForCausalLM"),
    ("facebook/opt-125m", "OPTForCausalLM"),
    ("someone/unknown-model", None),
])
def test_lookup(query: str, found: str | None) -> None:
    facts = catalog.lookup(query)
    assert (facts.architecture if facts else None) == found


LLAMA_CONFIG = {  # the shape of meta-llama/Llama-3.1-8B-Instruct's config.json
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "torch_dtype": "bfloat16",
    "tie_word_embeddings": False, "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
}


def test_facts_from_a_config_json_equal_the_catalogs() -> None:
    facts = from_config(LLAMA_CONFIG)
    assert facts.parameters == {"BF16": 8_030_261_248}
    assert facts.model_dump(exclude={"parameters"}) == catalog.lookup("meta-llama/Llama-3.1-8B").model_dump(
        exclude={"parameters"})
    mla = from_config({"architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 27,
                       "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 102400,
                       "max_position_embeddings": 163840, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
                       "qk_nope_head_dim": 128, "v_head_dim": 128, "q_lora_rank": None, "n_routed_experts": 64,
                       "n_shared_experts": 2, "moe_intermediate_size": 1408, "intermediate_size": 10944,
                       "first_k_dense_replace": 1, "num_experts_per_tok": 6, "torch_dtype": "bfloat16"})
    assert mla.is_mla and mla.head_size == 576
    assert mla.parameters == catalog.lookup("deepseek-ai/DeepSeek-V2-Lite").parameters


def test_a_config_without_the_basics_names_what_is_missing() -> None:
    with pytest.raises(ValidationFailed) as caught:
        from_config({"architectures": ["X"], "hidden_size": 8})
    assert "num_hidden_layers" in caught.value.message


def test_facts_come_from_the_spec_then_a_config_then_the_catalog() -> None:
    spec = ModelServerSpec(model_name="meta-llama/Llama-3.1-8B-Instruct")
    assert resolve(spec)[1] == "catalog"
    assert resolve(spec, config=LLAMA_CONFIG)[1] == "config"
    inline = ModelServerSpec(model_name="my/model", model=catalog.lookup("facebook/opt-125m"))
    assert resolve(inline, config=LLAMA_CONFIG) == (inline.model, "spec")
    pinned = ModelServerSpec(model_name="meta-llama/Llama-3.1-8B-Instruct", facts_from="catalog")
    assert resolve(pinned, config={"hidden_size": 1})[1] == "catalog"
    with pytest.raises(ValidationFailed) as caught:
        resolve(ModelServerSpec(model_name="someone/unknown"))
    assert caught.value.details[0]["loc"] == ["model"]
    assert "someone/unknown" in caught.value.message
