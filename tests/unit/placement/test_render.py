"""The rendered Deployment and Service: valid Kubernetes objects that run what was planned."""

from __future__ import annotations

import kubernetes_validate
import pytest

from vllmbench.models.servers import ModelServerSpec
from vllmbench.placement import catalog, cluster, labels as L, local
from vllmbench.placement.planner import plan
from vllmbench.placement.render import label_value, render, serve_args
from tests.unit.placement.test_inventory import node

KUBERNETES = "1.37.0"  # the schema version tests/k8s validates against


def planned(spec: ModelServerSpec, inventory=None):
    inventory = inventory or cluster.from_kube([node("gpu-a"), node("gpu-b")], [])
    return plan(spec, key="team/llama", facts=catalog.lookup(spec.model_name), inventory=inventory)


LLAMA = ModelServerSpec(model_name="meta-llama/Llama-3.1-8B-Instruct", served_model_name="llama",
                        tensor_parallel_size=2, max_model_len=16384, kv_cache_dtype="fp8", priority=40,
                        model_revision="0e9e39f", additional_args=["--enable-prefix-caching"],
                        engine={"version": "v0.11.0"}, shrink={"max_model_len_min": 4096})


def test_a_placed_server_renders_what_was_planned() -> None:
    decision = planned(LLAMA)
    deployment, service = render(LLAMA, decision, name="llama", namespace="vllm", server_namespace="team",
                                 placed_at=1700000000)
    for obj in (deployment, service):
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "Recreate"} and spec["replicas"] == 1
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.11.0" and container["command"] == ["vllm", "serve"]
    args = container["args"]
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    pairs = dict(zip(args[1::2], args[2::2]))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--max-model-len"] == "16384"
    assert pairs["--kv-cache-dtype"] == "fp8" and pairs["--served-model-name"] == "llama"
    assert pairs["--revision"] == "0e9e39f" and pairs["--gpu-memory-utilization"] == "0.9"
    assert args[-1] == "--enable-prefix-caching"
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [decision.node]
    assert pod["nodeSelector"] == {L.GPU_PRODUCT: "NVIDIA-H100-80GB-HBM3"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels[L.SERVER] == "llama" and labels[L.SERVER_NAMESPACE] == "team" and labels[L.PRIORITY] == "40"
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8000


def test_the_rendered_pods_are_read_back_as_the_servers_holdings() -> None:
    decision = planned(LLAMA)
    deployment, _ = render(LLAMA, decision, name="llama", namespace="vllm", server_namespace="team")
    template = deployment["spec"]["template"]
    pod = {"metadata": {"name": "llama-abc", "namespace": "vllm", **template["metadata"]},
           "spec": {**template["spec"], "nodeName": decision.node}, "status": {"phase": "Running"}}
    inventory = cluster.from_kube([node("gpu-a"), node("gpu-b")], [pod])
    assert inventory.holders() == {"team/llama": [decision.node]}
    claim = inventory.nodes[decision.node].gpus[0].claims[0]
    assert claim.priority == 40


def test_an_unplaced_server_renders_with_no_replicas_and_no_node() -> None:
    deployment, _ = render(LLAMA, None, name="llama", namespace="vllm")
    assert deployment["spec"]["replicas"] == 0
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_a_shared_gpu_records_its_claim_and_a_cpu_server_asks_for_no_gpu() -> None:
    shared = ModelServerSpec(model_name="facebook/opt-125m", gpu_memory_utilization=0.2, max_model_len=2048)
    decision = planned(shared, local.simulated())
    deployment, _ = render(shared, decision, name="opt", namespace="vllm")
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(notes[L.CLAIM_BYTES]) == decision.replicas[0].bytes_per_gpu > 0
    assert notes[L.GPU_INDICES] == "0"  # the local runtime's CUDA_VISIBLE_DEVICES
    cpu = ModelServerSpec(model_name="facebook/opt-125m", gpu_resource_type="cpu", max_model_len=2048)
    deployment, _ = render(cpu, planned(cpu, local.simulated()), name="opt", namespace="vllm")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {} and "--gpu-memory-utilization" not in container["args"]
    assert "tolerations" not in deployment["spec"]["template"]["spec"]
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_serve_args_take_the_planners_shrunk_length_and_share() -> None:
    spec = ModelServerSpec(model_name="m", max_model_len="auto", trust_remote_code=True, quantization="awq",
                           max_num_batched_tokens=4096)
    assert "--max-model-len" not in serve_args(spec)
    decision = planned(ModelServerSpec(model_name="meta-llama/Llama-3.1-8B-Instruct", max_model_len="auto"))
    args = serve_args(spec, decision)
    assert args[args.index("--max-model-len") + 1] == str(decision.max_model_len)
    assert "--trust-remote-code" in args and args[args.index("--quantization") + 1] == "awq"
    assert args[args.index("--max-num-batched-tokens") + 1] == "4096"


@pytest.mark.parametrize(("text", "value"), [("meta-llama/Llama-3.1-8B", "meta-llama-Llama-3.1-8B"),
                                              ("x" * 80, "x" * 63), ("/a/", "a"), ("///", "x")])
def test_label_values(text: str, value: str) -> None:
    assert label_value(text) == value
