"""The ModelServer spec: strict fields, each refusal naming the field, the seed file valid."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gitops import kinds
from vllmbench.models.servers import ModelServerSpec, mig_profile

FACTS = {"parameters": {"BF16": 1000}, "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
         "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 4096}
ORIGINAL = {  # a file of the original service: every one of its fields
    "model_name": "meta-llama/Llama-3.1-8B-Instruct", "gpu_memory_utilization": 0.85, "max_num_seqs": 128,
    "block_size": 16, "tensor_parallel_size": 2, "pipeline_parallel_size": 1, "trust_remote_code": False,
    "dtype": "bfloat16", "port": 8000, "max_model_len": 8192, "quantization": None,
    "served_model_name": "llama", "additional_args": ["--enable-prefix-caching"],
    "gpu_resource_type": "nvidia.com/gpu", "gpu_resource_count": 2,
}


def fields_refused(document: dict[str, Any]) -> list[str]:
    return [".".join(str(p) for p in d["loc"][1:]) for d in kinds.problems("model_server", [document], path="m.yaml")]


def test_the_original_services_files_load_unchanged() -> None:
    spec = ModelServerSpec.model_validate(ORIGINAL)
    assert spec.gpus_per_replica == 2
    assert spec.served_name == "llama"


def test_the_seed_server_is_valid_and_runs_without_a_gpu() -> None:
    text = resources.files("gitops").joinpath("seed/models/default/opt-125m.yaml").read_text()
    document = yaml.safe_load(text)
    assert fields_refused(document) == []
    spec = ModelServerSpec.model_validate(document)
    assert (spec.model_name, spec.gpu_resource_type, spec.gpus_per_replica) == ("facebook/opt-125m", "cpu", 0)


@pytest.mark.parametrize(("change", "field"), [
    ({"modle_name": "x"}, "modle_name"),
    ({"gpu_memory_utilisation": 0.5}, "gpu_memory_utilisation"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
    ({"tensor_parallel_size": -1}, "tensor_parallel_size"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
    ({"replicas": -1}, "replicas"),
    ({"gpu_resource_count": -2}, "gpu_resource_count"),
    ({"block_size": 12}, "block_size"),
    ({"dtype": "bf16"}, "dtype"),
    ({"kv_cache_dtype": "int3"}, "kv_cache_dtype"),
    ({"quantization": "awk"}, "quantization"),
    ({"port": 70000}, "port"),
    ({"gpu_resource_type": "nvidia.com/tpu"}, "gpu_resource_type"),
    ({"gpu_resource_type": "nvidia.com/mig-9g.80gb"}, "gpu_resource_type"),
    ({"gpu_resource_count": 3}, "gpu_resource_count"),  # TP 2 x PP 1 is two GPUs
    ({"gpu_resource_type": "cpu"}, "gpu_resource_count"),  # cpu with 2 GPUs
    ({"gpu_resource_type": "nvidia.com/mig-3g.40gb", "gpu_resource_count": 1}, "tensor_parallel_size"),
    ({"additional_args": "--enforce-eager --max-model-len=4096"}, "additional_args"),
    ({"additional_args": ["-tp", "4"]}, "additional_args"),
    ({"engine": {"image": "vllm/vllm-openai", "tag": "v1"}}, "engine.tag"),
    ({"shrink": {"max_model_len_min": 16384}}, "shrink.max_model_len_min"),
    ({"shrink": {"gpu_memory_utilization_min": 0.95}}, "shrink.gpu_memory_utilization_min"),
    ({"tensor_parallel_size": 4, "gpu_resource_count": 4, "model": {**FACTS, "num_attention_heads": 6, "head_dim": 32}},
     "tensor_parallel_size"),  # 4 does not divide 6 heads
    ({"tensor_parallel_size": 4, "gpu_resource_count": 4, "model": {**FACTS, "num_key_value_heads": 6,
                                                                      "num_attention_heads": 24, "head_dim": 32}},
     "tensor_parallel_size"),
    ({"tensor_parallel_size": 8, "gpu_resource_count": 8, "model": FACTS}, None),  # TP > KV heads: replicated
    ({"tensor_parallel_size": 16, "gpu_resource_count": 16, "model": FACTS}, "tensor_parallel_size"),
    ({"model": {**FACTS, "num_key_value_heads": 3}}, "model"),
    ({"model": {**FACTS, "parameters": {"BF16": -1}}}, "model.parameters"),
    ({"model": {**FACTS, "kv_lora_rank": 512}}, "model"),
    ({"facts_from": "spec"}, "model"),
    ({"facts_from": "guess"}, "facts_from"),
    ({"priority": -1}, "priority"),
    ({"preemption_policy": "Always"}, "preemption_policy"),
    ({"name": "Not_A_Slug"}, "name"),
])
def test_bad_input_names_the_field(change: dict[str, Any], field: str | None) -> None:
    refused = fields_refused({**ORIGINAL, **change})
    if field is None:
        assert refused == []
    else:
        assert field in refused, refused


def test_messages_say_what_was_expected() -> None:
    with pytest.raises(ValidationError) as caught:
        ModelServerSpec.model_validate({**ORIGINAL, "gpu_resource_type": "amd.com/gpu"})
    assert "nvidia.com/mig-<g>g.<mem>gb" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        ModelServerSpec.model_validate({**ORIGINAL, "tensor_parallel_size": 3, "gpu_resource_count": 3,
                                        "model": FACTS})
    assert "try one of [1, 2, 4, 8]" in str(caught.value)


def test_defaults_follow_the_resource_type() -> None:
    base = {"model_name": "m"}
    assert ModelServerSpec.model_validate({**base, "tensor_parallel_size": 2, "pipeline_parallel_size": 2}
                                          ).gpus_per_replica == 4
    assert ModelServerSpec.model_validate({**base, "gpu_resource_type": "nvidia.com/mig-1g.10gb"}).gpus_per_replica == 1
    assert ModelServerSpec.model_validate({**base, "gpu_resource_type": "cpu"}).gpus_per_replica == 0


def test_additional_args_as_one_string_are_split_like_a_shell() -> None:
    spec = ModelServerSpec.model_validate({"model_name": "m", "additional_args": "--enforce-eager --chat-template 'a b'"})
    assert spec.additional_args == ["--enforce-eager", "--chat-template", "a b"]


def test_identity_changes_with_what_changes_the_server() -> None:
    one = ModelServerSpec.model_validate(ORIGINAL)
    assert one.identity() == ModelServerSpec.model_validate({**ORIGINAL, "priority": 99, "replicas": 3}).identity()
    for change in ({"model_revision": "abc123"}, {"kv_cache_dtype": "fp8"}, {"engine": {"version": "v0.11.0"}},
                   {"max_model_len": 4096}, {"additional_args": []}, {"dtype": "float16"}):
        assert one.identity() != ModelServerSpec.model_validate({**ORIGINAL, **change}).identity(), change


@pytest.mark.parametrize(("image", "version", "reference"), [
    ("vllm/vllm-openai", "v0.11.0", "vllm/vllm-openai:v0.11.0"),
    ("registry:5000/vllm", "v1", "registry:5000/vllm:v1"),
    ("vllm/vllm-openai:v0.9.2", "latest", "vllm/vllm-openai:v0.9.2"),
    ("vllm/vllm-openai@sha256:abc", "latest", "vllm/vllm-openai@sha256:abc"),
])
def test_image_reference(image: str, version: str, reference: str) -> None:
    spec = ModelServerSpec.model_validate({"model_name": "m", "engine": {"image": image, "version": version}})
    assert spec.engine.reference == reference


@pytest.mark.parametrize(("resource", "profile"), [
    ("nvidia.com/mig-1g.10gb", (1, 10)), ("nvidia.com/mig-3g.40gb", (3, 40)), ("nvidia.com/mig-7g.80gb", (7, 80)),
    ("nvidia.com/mig-1g.12gb+me", (1, 12)), ("nvidia.com/gpu", None), ("cpu", None)])
def test_mig_profile_names(resource: str, profile: tuple[int, int] | None) -> None:
    assert mig_profile(resource) == profile


def test_a_model_server_file_holds_one_server() -> None:
    found = kinds.problems("model_server", [ORIGINAL, ORIGINAL], path="models/ns/a.yaml")
    assert found and "exactly one" in found[0]["msg"]
