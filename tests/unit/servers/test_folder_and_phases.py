"""The models/ folder read as a person writes it, and a server's phase from what runs (pure)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from vllmbench.models.servers import ModelServerSpec
from vllmbench.reconcile.health import Health
from vllmbench.servers.folder import default_name, dump, key_of, read_folder, server_id, split_path
from vllmbench.servers.head import clashes
from vllmbench.servers.lifecycle import observed_phase, with_hints
from vllmbench.settings import load_settings

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def text(**fields: Any) -> bytes:
    return yaml.safe_dump({"model_name": LLAMA, **fields}).encode()


def test_the_folder_gives_valid_servers_and_names_each_problem_by_file_and_field() -> None:
    servers, problems = read_folder({
        "models/team/chat.yaml": text(served_model_name="chat"),
        "models/team/typo.yaml": text(tensor_paralel_size=2),
        "models/team/tp.yaml": text(tensor_parallel_size=3),
        "models/team/named.yaml": text(name="other"),
        "models/team/two.yaml": b"model_name: a\n---\nmodel_name: b\n",
        "models/team/bad.yaml": b"model_name: [unclosed\n",
        "models/loose.yaml": text(),
        "models/Team/x.yaml": text(),
    })
    assert list(servers) == ["team/chat"] and servers["team/chat"].facts_source == "catalog"
    loc = {path: [d["loc"] for d in found] for path, found in problems.items()}
    assert loc["models/team/typo.yaml"] == ["models/team/typo.yaml.tensor_paralel_size"]
    assert loc["models/team/tp.yaml"] == ["models/team/tp.yaml.tensor_parallel_size"]
    assert loc["models/team/named.yaml"] == ["models/team/named.yaml.name"]
    assert "holds one document, found 2" in problems["models/team/two.yaml"][0]["msg"]
    assert "invalid YAML" in problems["models/team/bad.yaml"][0]["msg"]
    assert "go in models/<namespace>/<server>.yaml" in problems["models/loose.yaml"][0]["msg"]
    assert loc["models/Team/x.yaml"] == ["models/Team/x.yaml.namespace"]


def test_two_servers_of_one_name_cannot_meet_in_one_workload_namespace() -> None:
    settings = load_settings(workload_namespaces="vllm,team-a")
    servers, _ = read_folder({"models/team-a/chat.yaml": text(), "models/team-b/chat.yaml": text(),
                              "models/team-c/chat.yaml": text(), "models/team-b/other.yaml": text()})
    # team-a is a workload namespace of its own; team-b and team-c both run in the first, vllm
    assert clashes(settings, servers) == {"models/team-c/chat.yaml": "models/team-b/chat.yaml"}


def test_ids_keys_paths_and_names() -> None:
    assert server_id("team/chat") == "team.chat" and key_of("team.chat") == "team/chat" and key_of("chat") == "chat"
    assert split_path("models/team/chat.yml") == ("team", "chat") and split_path("deployments/x/y.yaml") is None
    assert default_name(ModelServerSpec(model_name="facebook/opt-125m")) == "opt-125m"
    assert default_name(ModelServerSpec(model_name=LLAMA, served_model_name="Llama_3.1 8B")) == "llama-3-1-8b"


def test_a_committed_file_holds_what_the_request_gave_and_no_defaults() -> None:
    spec = ModelServerSpec.model_validate({"model_name": LLAMA, "name": "x", "priority": 5, "engine": {"version": "v0.11.0"}})
    body = dump(spec, source="requested through POST /deploy")
    assert body.startswith(b"# A vLLM server")
    assert yaml.safe_load(body) == {"model_name": LLAMA, "priority": 5, "engine": {"version": "v0.11.0"}}


PLACED = {"decision": {"outcome": "placed", "reason": "placed on a[0]"}, "spec": {"replicas": 1}}


@pytest.mark.parametrize("state, probed, phase, words", [
    (Health("missing"), None, "placed", "not applied yet"),
    (Health("progressing", "Progressing", "0/1 replicas ready"), None, "starting", "0/1 replicas ready"),
    (Health("pending", "Unschedulable", "pod p: cannot be scheduled: 0/5 nodes"), None, "starting", "waiting: pod p"),
    (Health("failed", "Error", "pod p: container vllm exited with 1"), None, "failed", "exited with 1"),
    (Health("unsupported", "NotRunnable", "image x is not runnable locally"), None, "failed", "not runnable"),
    (Health("ready", "Available", "1/1", True), (False, "u/v1/models does not answer yet"), "starting",
     "the pods are Ready; u/v1/models does not answer yet"),
    (Health("ready", "Available", "1/1", True), (True, "u/v1/models serves chat"), "ready", "serves chat"),
])
def test_the_phase_of_a_placed_server_follows_its_pods_then_v1_models(state: Health, probed: Any, phase: str,
                                                                      words: str) -> None:
    found, reason = observed_phase(PLACED, state, probed=probed)
    assert found == phase and words in reason


def test_no_replicas_is_placed_and_a_hint_names_the_change() -> None:
    assert observed_phase({**PLACED, "spec": {"replicas": 0}}, Health("ready", "ScaledToZero"), probed=None)[0] == "placed"
    reason = with_hints("pod p: exited with 1", [{"message": "vLLM estimates 75168 fits", "change": {"max_model_len": 75168}}])
    assert reason.endswith("vLLM: vLLM estimates 75168 fits (try max_model_len: 75168)")
