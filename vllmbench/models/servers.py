"""The ModelServer spec (``models/<ns>/<server>.yaml``): what should serve, never where.

The fields of the original vLLM service keep their names (``model_name``,
``gpu_memory_utilization``, ... ``gpu_resource_count``) so that its YAML files still
load; ours are added beside them. The planner (``vllmbench.placement``) decides the
node, the GPUs and, within ``shrink``, a smaller ``max_model_len``. The schema is
strict: an unknown field is an error naming it.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from vllmbench.models.base import Strict

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
GPU = "nvidia.com/gpu"
CPU = "cpu"
# The NVIDIA device plugin's mixed MIG strategy: nvidia.com/mig-<g>g.<mem>gb (+me: with a media engine).
MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-(?P<g>[1-7])g\.(?P<gb>\d{1,3})gb(?:\+me)?$")
RESOURCE_TYPES = f"'{GPU}', 'nvidia.com/mig-<g>g.<mem>gb' (e.g. nvidia.com/mig-3g.40gb) or '{CPU}'"

Dtype = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
KvCacheDtype = Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2"]
# vLLM's --quantization choices this planner can size (vllm/model_executor/layers/quantization).
Quantization = Literal["awq", "awq_marlin", "gptq", "gptq_marlin", "marlin", "fp8", "fbgemm_fp8", "ptpc_fp8",
                       "compressed-tensors", "modelopt", "modelopt_fp4", "mxfp4", "bitsandbytes", "gguf",
                       "experts_int8", "moe_wna16"]
FactsSource = Literal["auto", "spec", "config", "catalog"]

# Flags that are fields of their own: in additional_args they would silently fight the field.
_OWNED_FLAGS = {
    "--model": "model_name", "--gpu-memory-utilization": "gpu_memory_utilization",
    "--max-num-seqs": "max_num_seqs", "--block-size": "block_size",
    "--tensor-parallel-size": "tensor_parallel_size", "-tp": "tensor_parallel_size",
    "--pipeline-parallel-size": "pipeline_parallel_size", "-pp": "pipeline_parallel_size",
    "--trust-remote-code": "trust_remote_code", "--dtype": "dtype", "--port": "port",
    "--max-model-len": "max_model_len", "--quantization": "quantization", "-q": "quantization",
    "--served-model-name": "served_model_name", "--kv-cache-dtype": "kv_cache_dtype",
    "--revision": "model_revision", "--max-num-batched-tokens": "max_num_batched_tokens",
    "--host": "the renderer (it listens on 0.0.0.0)",
}


def mig_profile(resource_type: str) -> tuple[int, int] | None:
    """``(compute slices, memory GB)`` of a MIG resource name, ``None`` for anything else."""
    match = MIG_RESOURCE.match(resource_type)
    return (int(match["g"]), int(match["gb"])) if match else None


class ModelFacts(Strict):
    """What the memory math needs of a model's architecture (its config.json and weights).

    ``parameters`` counts the stored parameters by safetensors dtype (``BF16``, ``F16``,
    ``F32``, ``F8_E4M3``, ``I32`` for packed 4-bit, ...), as the Hub shows them.
    """

    architecture: str | None = Field(None, max_length=200, description="e.g. LlamaForCausalLM")
    parameters: dict[str, int] = Field(min_length=1, description="Stored parameters by dtype, e.g. {BF16: 8030261248}.")
    num_hidden_layers: int = Field(ge=1, le=1000)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int | None = Field(None, ge=1, description="GQA/MQA; defaults to num_attention_heads.")
    head_dim: int | None = Field(None, ge=1, description="Defaults to hidden_size / num_attention_heads.")
    vocab_size: int = Field(ge=1)
    max_position_embeddings: int = Field(ge=1, description="The longest context the model supports.")
    intermediate_size: int | None = Field(None, ge=1)
    tie_word_embeddings: bool = False
    torch_dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"
    quantization: str | None = Field(None, max_length=50, description="quantization_config.quant_method, if stored quantized.")
    kv_lora_rank: int | None = Field(None, ge=1, description="MLA (DeepSeek): the latent KV rank.")
    qk_rope_head_dim: int | None = Field(None, ge=0, description="MLA: the rotary part cached beside the latent.")
    q_lora_rank: int | None = Field(None, ge=1)
    qk_nope_head_dim: int | None = Field(None, ge=0)
    v_head_dim: int | None = Field(None, ge=1)
    num_experts: int | None = Field(None, ge=1, description="MoE: routed experts.")
    num_experts_per_tok: int | None = Field(None, ge=1)
    moe_intermediate_size: int | None = Field(None, ge=1)
    num_shared_experts: int | None = Field(None, ge=0)
    first_dense_layers: int | None = Field(None, ge=0, description="MoE: leading dense layers (first_k_dense_replace).")

    @field_validator("parameters")
    @classmethod
    def _counts(cls, value: dict[str, int]) -> dict[str, int]:
        for dtype, count in value.items():
            if count < 0:
                raise ValueError(f"parameters.{dtype} is negative ({count})")
        return value

    @model_validator(mode="after")
    def _heads(self) -> "ModelFacts":
        if self.num_key_value_heads is not None and self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim is None and not self.is_mla and self.hidden_size % self.num_attention_heads:
            raise ValueError("head_dim is needed: hidden_size is not a multiple of num_attention_heads")
        if (self.kv_lora_rank is None) != (self.qk_rope_head_dim is None):
            raise ValueError("an MLA model needs both kv_lora_rank and qk_rope_head_dim")
        return self

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        """The cached size per KV head: MLA caches one latent of kv_lora_rank + rope dims."""
        if self.is_mla:
            return int(self.kv_lora_rank or 0) + int(self.qk_rope_head_dim or 0)
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def total_parameters(self) -> int:
        return sum(self.parameters.values())


class EngineSpec(Strict):
    image: str = Field("vllm/vllm-openai", min_length=1, max_length=300,
                       description="Container image without its tag (a digest or tag in it wins over version).")
    version: str = Field("latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
                         description="The image tag, e.g. v0.11.0; also picks the planner's overhead profile.")

    @property
    def reference(self) -> str:
        last = self.image.rsplit("/", 1)[-1]
        return self.image if "@" in self.image or ":" in last else f"{self.image}:{self.version}"


class ShrinkPolicy(Strict):
    """How far the planner may shrink this server to make it fit (nothing by default)."""

    max_model_len_min: int | None = Field(None, ge=1, description="Accept a max_model_len down to this.")
    gpu_memory_utilization_min: float | None = Field(None, gt=0, le=1,
                                                     description="Accept a smaller share of a GPU down to this.")


class ModelServerSpec(Strict):
    """One vLLM server: ``models/<namespace>/<name>.yaml``."""

    name: str | None = Field(None, pattern=SLUG, description="Defaults to the file name.")
    namespace: str | None = Field(None, pattern=SLUG, description="Defaults to the folder name.")
    # The original service's fields.
    model_name: str = Field(min_length=1, max_length=300, description="Hugging Face id or a path in the image.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of each GPU this server may hold.")
    max_num_seqs: int = Field(256, ge=1, le=65536)
    block_size: Literal[1, 8, 16, 32, 64, 128, 256] = 16
    tensor_parallel_size: int = Field(1, ge=1, le=256)
    pipeline_parallel_size: int = Field(1, ge=1, le=256)
    trust_remote_code: bool = False
    dtype: Dtype = "auto"
    port: int = Field(8000, ge=1, le=65535)
    max_model_len: int | Literal["auto"] | None = Field(
        None, description="Tokens per request; None: the model's own; 'auto': the largest that fits.")
    quantization: Quantization | None = None
    served_model_name: str | None = Field(None, min_length=1, max_length=300, description="Defaults to model_name.")
    additional_args: list[str] = Field(default_factory=list, description="Further `vllm serve` arguments.")
    gpu_resource_type: str = Field(GPU, description=f"One of {RESOURCE_TYPES}.")
    gpu_resource_count: int | None = Field(None, ge=0, le=256,
                                           description="Per replica; defaults to TP x PP (1 for a MIG slice, 0 on CPU).")
    # Ours.
    engine: EngineSpec = Field(default_factory=EngineSpec)
    model_revision: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$")
    kv_cache_dtype: KvCacheDtype = "auto"
    max_num_batched_tokens: int | None = Field(None, ge=1, le=1_048_576)
    accelerators: list[str] = Field(default_factory=list, max_length=50,
                                    description="Accepted nvidia.com/gpu.product values (globs), best first; empty: any.")
    priority: int = Field(0, ge=0, le=1_000_000_000, description="Higher preempts lower.")
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = "PreemptLowerPriority"
    replicas: int = Field(1, ge=0, le=64)
    shrink: ShrinkPolicy = Field(default_factory=ShrinkPolicy)
    model: ModelFacts | None = Field(None, description="Architecture facts; else a config.json or the catalog.")
    facts_from: FactsSource = "auto"
    node_selector: dict[str, str] = Field(default_factory=dict, description="Further labels a node must carry.")

    @field_validator("additional_args", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("additional_args")
    @classmethod
    def _not_owned(cls, value: list[str]) -> list[str]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if flag in _OWNED_FLAGS:
                raise ValueError(f"{flag} is set by the field {_OWNED_FLAGS[flag]}, not in additional_args")
        return value

    @field_validator("gpu_resource_type")
    @classmethod
    def _resource(cls, value: str) -> str:
        if value not in (GPU, CPU) and not MIG_RESOURCE.match(value):
            raise ValueError(f"unknown resource type {value!r}: expected {RESOURCE_TYPES}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ModelServerSpec":
        found: list[tuple[str, str]] = []
        ranks = self.tensor_parallel_size * self.pipeline_parallel_size
        count = self.gpu_resource_count
        if self.gpu_resource_type == CPU:
            if count not in (None, 0):
                found.append(("gpu_resource_count", f"must be 0 with gpu_resource_type 'cpu', not {count}"))
        elif mig_profile(self.gpu_resource_type):
            if ranks != 1:
                found.append(("tensor_parallel_size", f"x pipeline_parallel_size is {ranks}, but a MIG slice "
                              f"({self.gpu_resource_type}) serves one rank: both must be 1"))
            if count not in (None, 1):
                found.append(("gpu_resource_count", f"must be 1 with {self.gpu_resource_type}, not {count}"))
        elif count is not None and count != ranks:
            found.append(("gpu_resource_count", f"({count}) must equal tensor_parallel_size x "
                          f"pipeline_parallel_size ({ranks}): vLLM runs one rank per GPU"))
        if self.model is not None:
            problem = parallelism_problem(self.model, self.tensor_parallel_size, self.pipeline_parallel_size)
            if problem:
                found.append(problem)
        if self.facts_from == "spec" and self.model is None:
            found.append(("model", "facts_from is 'spec' but the spec has no model facts"))
        limit, floor_len = self.max_model_len, self.shrink.max_model_len_min
        if isinstance(limit, int) and floor_len and floor_len > limit:
            found.append(("shrink.max_model_len_min", f"({floor_len}) is above max_model_len ({limit})"))
        floor = self.shrink.gpu_memory_utilization_min
        if floor is not None and floor > self.gpu_memory_utilization:
            found.append(("shrink.gpu_memory_utilization_min",
                          f"({floor}) is above gpu_memory_utilization ({self.gpu_memory_utilization})"))
        if found:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError("value_error", "{field} {problem}",
                                                          {"field": field, "problem": problem}),
                                 loc=tuple(field.split(".")), input=_value(self, field))
                for field, problem in found])
        return self

    @property
    def gpus_per_replica(self) -> int:
        if self.gpu_resource_type == CPU:
            return 0
        if self.gpu_resource_count is not None:
            return self.gpu_resource_count
        return 1 if mig_profile(self.gpu_resource_type) else self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model_name

    def identity(self) -> dict[str, Any]:
        """What makes two servers interchangeable: a running one with the same identity is reused."""
        return {
            "model_name": self.model_name, "model_revision": self.model_revision, "dtype": self.dtype,
            "quantization": self.quantization, "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size, "max_model_len": self.max_model_len,
            "kv_cache_dtype": self.kv_cache_dtype, "image": self.engine.reference,
            "additional_args": list(self.additional_args), "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_num_seqs": self.max_num_seqs, "block_size": self.block_size,
            "max_num_batched_tokens": self.max_num_batched_tokens, "trust_remote_code": self.trust_remote_code,
            "served_model_name": self.served_name, "gpu_resource_type": self.gpu_resource_type,
            "gpus_per_replica": self.gpus_per_replica,
        }


def parallelism_problem(facts: ModelFacts, tp: int, pp: int = 1) -> tuple[str, str] | None:
    """``(field, why)`` vLLM would refuse this TP/PP for the model, or ``None``.

    vLLM's rule (vllm/config/model.py ``verify_with_parallel_config``; the KV heads are split
    or replicated by ``QKVParallelLinear``): TP divides the attention heads, and TP and the
    KV heads divide one another.
    """
    if facts.num_attention_heads % tp:
        return ("tensor_parallel_size", f"({tp}) must divide the model's num_attention_heads "
                f"({facts.num_attention_heads}); try one of {divisors(facts.num_attention_heads)}")
    if not facts.is_mla and facts.kv_heads % tp and tp % facts.kv_heads:
        return ("tensor_parallel_size", f"({tp}) and the model's num_key_value_heads ({facts.kv_heads}) "
                "must divide one another")
    if pp > facts.num_hidden_layers:
        return ("pipeline_parallel_size", f"({pp}) exceeds the model's layers ({facts.num_hidden_layers})")
    return None


def divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, 64) + 1) if n % d == 0]


def _value(spec: ModelServerSpec, field: str) -> Any:
    value: Any = spec
    for part in field.split("."):
        value = getattr(value, part, None)
    return value
