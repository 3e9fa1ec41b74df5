"""A model's architecture facts: from the spec, from a config.json, or from the catalog.

The runtime reads a config.json (and, when it has them, the safetensors parameter
counts) wherever it can; this module only turns those values into
:class:`ModelFacts`. Without counts, the parameters are estimated from the
architecture, the same way the catalog's consistency test checks its entries.
"""

from __future__ import annotations

from typing import Any, Literal

from vllmbench.errors import ValidationFailed
from vllmbench.models.servers import ModelFacts, ModelServerSpec
from vllmbench.placement import catalog

Source = Literal["spec", "config", "catalog"]
_SAFETENSORS = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def estimate_parameters(facts: ModelFacts) -> int:
    """Parameters implied by the architecture (dense or MoE decoders, MLA, OPT)."""
    hidden, layers, vocab = facts.hidden_size, facts.num_hidden_layers, facts.vocab_size
    embed = vocab * hidden * (1 if facts.tie_word_embeddings else 2)
    arch = facts.architecture or ""
    if arch.startswith("OPT"):
        ffn = facts.intermediate_size or 4 * hidden
        attention = 4 * (hidden * hidden + hidden)
        mlp = hidden * ffn + ffn + ffn * hidden + hidden
        positions = (facts.max_position_embeddings + 2) * hidden  # OPT's learned positions start at offset 2
        return embed + positions + layers * (attention + mlp + 4 * hidden) + 2 * hidden
    heads, kv_heads = facts.num_attention_heads, facts.kv_heads
    if facts.is_mla:
        nope, rope = facts.qk_nope_head_dim or 0, facts.qk_rope_head_dim or 0
        v_dim, rank = facts.v_head_dim or nope, facts.kv_lora_rank or 0
        q = (hidden * facts.q_lora_rank + facts.q_lora_rank + facts.q_lora_rank * heads * (nope + rope)
             if facts.q_lora_rank else hidden * heads * (nope + rope))
        attention = q + hidden * (rank + rope) + rank + rank * heads * (nope + v_dim) + heads * v_dim * hidden
    else:
        head = facts.head_size
        attention = hidden * heads * head + 2 * hidden * kv_heads * head + heads * head * hidden
        if arch.startswith("Qwen2"):
            attention += heads * head + 2 * kv_heads * head  # q, k and v carry biases
        if arch.startswith("Qwen3"):
            attention += 2 * head  # q_norm and k_norm
    dense_mlp = 3 * hidden * (facts.intermediate_size or 4 * hidden)
    if facts.num_experts:
        expert = 3 * hidden * (facts.moe_intermediate_size or facts.intermediate_size or 4 * hidden)
        moe = (facts.num_experts + (facts.num_shared_experts or 0)) * expert + facts.num_experts * hidden
        dense = min(facts.first_dense_layers or 0, layers)
        mlps = dense * dense_mlp + (layers - dense) * moe
    else:
        mlps = layers * dense_mlp
    return embed + layers * (attention + 2 * hidden) + mlps + hidden


def from_config(config: dict[str, Any], *, parameters: dict[str, int] | None = None) -> ModelFacts:
    """Facts from a Hugging Face config.json (``text_config`` of multimodal models included)."""
    text = config.get("text_config") or config
    try:
        arch = (config.get("architectures") or [None])[0]
        dtype = str(text.get("torch_dtype") or config.get("torch_dtype") or "bfloat16")
        quant = (config.get("quantization_config") or {}).get("quant_method")
        values: dict[str, Any] = {
            "architecture": arch,
            "num_hidden_layers": text["num_hidden_layers"],
            "hidden_size": text["hidden_size"],
            "num_attention_heads": text["num_attention_heads"],
            "num_key_value_heads": text.get("num_key_value_heads"),
            "head_dim": text.get("head_dim"),
            "vocab_size": text["vocab_size"],
            "max_position_embeddings": text.get("max_position_embeddings") or text.get("n_positions") or 2048,
            "intermediate_size": text.get("intermediate_size") or text.get("ffn_dim"),
            "tie_word_embeddings": bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            "torch_dtype": dtype if dtype in _SAFETENSORS else "bfloat16",
            "quantization": quant,
            "kv_lora_rank": text.get("kv_lora_rank"), "qk_rope_head_dim": text.get("qk_rope_head_dim"),
            "q_lora_rank": text.get("q_lora_rank"), "qk_nope_head_dim": text.get("qk_nope_head_dim"),
            "v_head_dim": text.get("v_head_dim"),
            "num_experts": text.get("n_routed_experts") or text.get("num_experts") or text.get("num_local_experts"),
            "num_experts_per_tok": text.get("num_experts_per_tok"),
            "moe_intermediate_size": text.get("moe_intermediate_size"),
            "num_shared_experts": text.get("n_shared_experts"),
            "first_dense_layers": text.get("first_k_dense_replace"),
            "parameters": parameters or {"BF16": 1},
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValidationFailed(f"config.json lacks {exc}: cannot size the model",
                               details=[{"loc": ["config.json", str(exc)], "msg": "missing", "expected": "config.json"}]
                               ) from exc
    if arch and arch.startswith("OPT") and text.get("do_layer_norm_before") is not None:
        values["tie_word_embeddings"] = True  # OPT ties its output projection to the embeddings
    if values["kv_lora_rank"] is None:
        values["qk_rope_head_dim"] = None
    facts = ModelFacts.model_validate(values)
    if parameters is None:
        facts = facts.model_copy(update={"parameters": {_SAFETENSORS[facts.torch_dtype]: estimate_parameters(facts)}})
    return facts


def resolve(spec: ModelServerSpec, *, config: dict[str, Any] | None = None,
            parameters: dict[str, int] | None = None) -> tuple[ModelFacts, Source]:
    """The facts the planner uses, and where they came from (``facts_from``; auto: spec, config, catalog)."""
    order: list[Source] = (["spec", "config", "catalog"] if spec.facts_from == "auto" else [spec.facts_from])
    for source in order:
        if source == "spec" and spec.model is not None:
            return spec.model, "spec"
        if source == "config" and config is not None:
            return from_config(config, parameters=parameters), "config"
        if source == "catalog":
            found = catalog.lookup(spec.model_name)
            if found is not None:
                return found, "catalog"
    wanted = " or ".join(order)
    raise ValidationFailed(
        f"no architecture facts for {spec.model_name!r} from {wanted}: add a 'model' section to the spec "
        f"(layers, heads, KV heads, hidden size, vocab, parameters) or use a model of the catalog "
        f"({', '.join(catalog.names()[:6])}, ...)",
        details=[{"loc": ["model"], "msg": "architecture facts are missing", "expected": "ModelFacts"}])
