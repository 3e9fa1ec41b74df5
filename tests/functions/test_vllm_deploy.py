"""The vLLM service's requests through the real app: refusals name the field and commit nothing.

The runtime here is a cluster that cannot be reached (a kubeconfig that does not exist):
a request is validated and committed before any runtime is opened, so what these tests
see does not depend on one; the kwok tests (tests/k8s/test_vllm_deploy.py) apply for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.gitops.gitutil import head, make_remote, show

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def vllm(serve_function: Any, tmp_path: Path) -> Any:
    remote = make_remote(tmp_path / "config.git", {
        "README.md": "config\n",
        "configs/llama.yaml": yaml.safe_dump({"model_name": LLAMA_8B, "served_model_name": "llama"}),
        "configs/typo.yaml": yaml.safe_dump({"model_name": LLAMA_8B, "tensor_paralel_size": 2}),
    })
    served = serve_function("vllm_deploy", gitops_repo_url=str(remote), runtime="kube",
                            kubeconfig=str(tmp_path / "no-such-kubeconfig"), data_dir=str(tmp_path / "data"))
    served.remote = remote
    return served


@pytest.mark.parametrize("config, extra, loc, words", [
    ({"model_name": LLAMA_8B, "modle_name": "x"}, {}, "body.config.modle_name", "Extra inputs are not permitted"),
    ({"model_name": LLAMA_8B, "tensor_parallel_size": 3}, {}, "body.config.tensor_parallel_size",
     "must divide the model's num_attention_heads (32)"),
    ({"model_name": LLAMA_8B, "gpu_resource_count": -1}, {}, "body.config.gpu_resource_count",
     "greater than or equal to 0"),
    ({"model_name": LLAMA_8B, "replicas": -2}, {}, "body.config.replicas", "greater than or equal to 0"),
    ({"model_name": LLAMA_8B, "max_num_seqs": 0}, {}, "body.config.max_num_seqs", "greater than or equal to 1"),
    ({"model_name": LLAMA_8B, "gpu_resource_type": "amd.com/gpu"}, {}, "body.config.gpu_resource_type",
     "unknown resource type 'amd.com/gpu'"),
    ({"model_name": LLAMA_8B, "gpu_resource_type": "nvidia.com/mig-3g.40gb", "tensor_parallel_size": 2}, {},
     "body.config.tensor_parallel_size", "a MIG slice"),
    ({"model_name": "someone/unknown-model"}, {}, "body.config.model", "no architecture facts"),
    ({"model_name": LLAMA_8B, "additional_args": ["--max-model-len", "4096"]}, {}, "body.config.additional_args",
     "set by the field max_model_len"),
    ({"model_name": LLAMA_8B}, {"name": "Not_A_Name"}, "body.name", "should match pattern"),
    ({"model_name": LLAMA_8B, "name": "other"}, {"name": "mine"}, "body.config.name", "differs from 'mine'"),
], ids=["unknown-field", "tp-not-dividing-heads", "negative-count", "negative-replicas", "zero-seqs",
        "unknown-resource-type", "mig-with-tp", "no-facts", "owned-flag", "bad-name", "two-names"])
def test_bad_specs_are_422_naming_the_field_and_commit_nothing(vllm: Any, config: dict[str, Any],
                                                                extra: dict[str, Any], loc: str, words: str) -> None:
    before = head(vllm.remote)
    for route in ("/deploy", "/plan"):
        answer = vllm.post(route, json={"config": config, **extra})
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert any(d["loc"] == loc and words in d["msg"] for d in body["details"]), body
    assert head(vllm.remote) == before


def test_a_config_file_with_a_typo_is_refused_naming_the_file_and_field(vllm: Any) -> None:
    before = head(vllm.remote)
    answer = vllm.post("/deploy-from-file", json={"config_file": "typo.yaml"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"][0]["loc"] == "configs/typo.yaml.tensor_paralel_size"
    assert vllm.post("/deploy-from-file", json={"config_file": "nope.yaml"}).status_code == 404
    assert vllm.post("/deploy-from-file", json={"config_file": "../etc/passwd.yaml"}).status_code == 422
    assert head(vllm.remote) == before


def test_a_valid_deploy_is_committed_even_when_the_cluster_cannot_be_reached(vllm: Any) -> None:
    answer = vllm.post("/deploy-from-file", json={"config_file": "llama.yaml", "namespace": "team"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["id"] == "team.llama" and body["path"] == "models/team/llama.yaml" and body["created_commit"]
    assert body["sync"]["state"] == "pending" and "kubernetes is unavailable" in body["sync"]["message"]
    assert head(vllm.remote) == body["commit"]
    assert yaml.safe_load(show(vllm.remote, "models/team/llama.yaml")) == {"model_name": LLAMA_8B,
                                                                          "served_model_name": "llama"}
    again = vllm.post("/deploy-from-file", json={"config_file": "llama.yaml", "namespace": "team"})
    assert again.status_code == 202 and not again.json()["created_commit"]  # the same spec again: one commit

    default = vllm.post("/deploy-default")
    assert default.status_code == 202, default.text
    assert default.json()["path"] == "models/default/opt-125m.yaml"
    assert yaml.safe_load(show(vllm.remote, "models/default/opt-125m.yaml"))["gpu_resource_type"] == "cpu"

    files = vllm.get("/configs/files").json()["files"]
    assert {(f["file"], f["kind"]) for f in files} == {
        ("configs/llama.yaml", "config"), ("configs/typo.yaml", "config"),
        ("models/team/llama.yaml", "deployed"), ("models/default/opt-125m.yaml", "deployed")}
    assert vllm.delete("/deployments/team.nothing").status_code == 404


def test_deploying_a_file_already_in_models_keeps_the_persons_file(vllm: Any, tmp_path: Path) -> None:
    from tests.integration.gitops.gitutil import Person

    written = "# ours, with a comment\nmodel_name: facebook/opt-125m\ngpu_resource_type: cpu\n"
    Person(vllm.remote, tmp_path / "person").commit({"models/default/opt.yaml": written}, "a server by hand")
    before = head(vllm.remote)
    answer = vllm.post("/deploy-from-file", json={"config_file": "models/default/opt.yaml"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == "default.opt" and not answer.json()["created_commit"]
    assert head(vllm.remote) == before and show(vllm.remote, "models/default/opt.yaml") == written.strip()
