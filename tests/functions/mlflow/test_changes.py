"""Aliases moving, metadata changing in MLflow, the Helm-values layout, and people's edits."""

from __future__ import annotations

import yaml

from tests.functions.mlflow.conftest import Setup
from tests.integration.gitops import gitutil


def _changed_files(setup: Setup, commit: str) -> list[str]:
    out = gitutil.git("--git-dir", str(setup.remote), "show", "--name-only", "--format=", commit)
    return sorted(out.splitlines())


def test_an_alias_moving_rewrites_the_alias_file_only(setup: Setup):
    model = setup.mlflow.name("champ")
    setup.rule("champ", {"models": [model], "follow_aliases": ["champion"],
                         "server": {"model_name": "{{ version.tags.hf }}"}})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1", hf="org/model-a")
    setup.mlflow.create_version(model, "s3://b/2", hf="org/model-b")
    setup.mlflow.set_alias(model, "champion", 1)
    fn = setup.function()
    first = fn.post("/poll").json()
    assert [(w["version"], w.get("alias")) for w in first["written"]] == [(1, None), (2, None), (1, "champion")]
    alias_path = f"models/default/{model}-champion.yaml"
    assert yaml.safe_load(setup.show(alias_path)) == {"name": f"{model}-champion", "namespace": "default",
                                                       "model_name": "org/model-a"}
    version_files = {p: setup.show(p) for p in setup.files() if p != alias_path}

    setup.mlflow.set_alias(model, "champion", 2)
    moved = fn.post("/poll").json()["written"]
    assert [(w["version"], w["alias"], w["files"]) for w in moved] == [(2, "champion", [alias_path])]
    head = setup.log()[0].split()[0]
    assert _changed_files(setup, head) == [alias_path]
    assert "alias champion" in setup.log()[0] and "version 2" in setup.log()[0]
    assert yaml.safe_load(setup.show(alias_path))["model_name"] == "org/model-b"
    assert {p: setup.show(p) for p in version_files} == version_files
    assert fn.post("/poll").json()["written"] == []
    assert fn.get("/models").json()["models"][0]["aliases"] == {"champion": 2}
    assert fn.get(f"/models/{model}/versions/2").json()["aliases"] == ["champion"]


def test_changed_metadata_rewrites_the_file_and_our_own_tags_do_not(setup: Setup):
    model = setup.mlflow.name("meta")
    setup.rule("meta", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1", owner="alice")
    fn = setup.function()
    assert len(fn.post("/poll").json()["written"]) == 1
    path = f"models/default/{model}-v1.yaml"
    assert "# tags: owner=alice" in setup.show(path)

    setup.mlflow.set_tag(model, 1, "owner", "bob")
    changed = fn.post("/poll", json={"full": True}).json()["written"]
    assert [(w["version"], w["files"]) for w in changed] == [(1, [path])]
    assert "# tags: owner=bob" in setup.show(path)
    assert "changed in MLflow" in setup.log()[0]
    assert len(setup.broker.of_type("dev.vllmbench.model.version.registered")) == 1  # an update announces nothing

    setup.mlflow.set_tag(model, 1, "vllmbench.verdict", "same")  # what the write-back sets
    assert fn.post("/poll", json={"full": True}).json()["written"] == []
    assert len(setup.mlflow_commits()) == 2


def test_the_original_helm_values_layout_when_the_rule_asks(setup: Setup):
    model = setup.mlflow.name("helm")
    setup.rule("helm", {"models": [model], "helm_values": True, "namespace": "ml"})
    setup.mlflow.create_model(model)
    run = setup.mlflow.run(params={"a": "1"})
    setup.mlflow.create_version(model, f"runs:/{run['run_id']}/model", run_id=run["run_id"])
    fn = setup.function()
    written = fn.post("/poll").json()["written"]
    assert written[0]["files"] == [f"helm-values/ml/{model}-v1.yaml", f"models/ml/{model}-v1.yaml"]
    assert len(setup.mlflow_commits()) == 1  # both files, one commit
    values = yaml.safe_load(setup.show(f"helm-values/ml/{model}-v1.yaml"))
    assert values["global"]["experimentId"] == run["experiment_id"]
    assert values["runid"] == run["run_id"]
    assert values["timestamp"].startswith("20")
    assert values["model"]["name"] == f"{model}-v1"


def test_a_person_editing_a_generated_file_keeps_the_edit_until_mlflow_changes(setup: Setup):
    model = setup.mlflow.name("edit")
    setup.rule("edit", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")
    fn = setup.function()
    fn.post("/poll")
    path = f"models/default/{model}-v1.yaml"
    edited = setup.show(path) + "gpu_memory_utilization: 0.5\n"
    setup.person.commit({path: edited}, "tune by hand")
    assert fn.post("/poll", json={"full": True}).json()["written"] == []
    assert setup.show(path) == edited.rstrip("\n")
    setup.mlflow.set_tag(model, 1, "note", "retrained")
    fn.post("/poll", json={"full": True})
    assert "note=retrained" in setup.show(path)


def test_an_invalid_rule_is_reported_and_the_others_still_apply(setup: Setup):
    model = setup.mlflow.name("ok")
    setup.rule("good", {"models": [model]})
    setup.person.commit({"mlflow/bad.yaml": "models: []\nversionz: {}\n"}, "a typo")
    setup.rule("broken-template", {"models": ["x"], "server": {"model_name": "{{ version.source "}})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")
    fn = setup.function()
    assert len(fn.post("/poll").json()["written"]) == 1
    rules = fn.get("/connections").json()["rules"]
    assert rules["paths"] == ["mlflow/good.yaml"]
    problems = " ".join(str(p) for p in rules["problems"])
    assert "mlflow/bad.yaml" in problems and "versionz" in problems
    assert "mlflow/broken-template.yaml" in problems and "template line 1" in problems


def test_a_template_that_does_not_render_refuses_the_version_with_the_field(setup: Setup):
    model = setup.mlflow.name("tpl")
    setup.rule("tpl", {"models": [model], "server": {"model_name": "{{ version.tags.hf_model }}"}})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1")  # no hf_model tag
    fn = setup.function()
    outcome = fn.post("/poll").json()
    assert outcome["written"] == []
    assert "server.model_name" in outcome["refused"][0]["reason"] and "hf_model" in outcome["refused"][0]["reason"]
    assert "hf_model" in fn.get(f"/models/{model}/versions/1").json()["refused"]
    setup.mlflow.set_tag(model, 1, "hf_model", "org/m")  # fixed in MLflow: the next full poll writes it
    assert len(fn.post("/poll", json={"full": True}).json()["written"]) == 1


def test_a_rendered_modelserver_that_breaks_the_schema_is_refused_naming_the_field(setup: Setup):
    model = setup.mlflow.name("tp")
    setup.rule("tp", {"models": [model], "server": {"model_name": "org/m",
                                                    "tensor_parallel_size": "{{ version.tags.tp }}"}})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://b/1", tp="0")
    setup.mlflow.create_version(model, "s3://b/2", tp="2")
    fn = setup.function()
    outcome = fn.post("/poll").json()
    assert [w["version"] for w in outcome["written"]] == [2]
    reason = outcome["refused"][0]["reason"]
    assert outcome["refused"][0]["version"] == 1 and "tensor_parallel_size" in reason
    assert f"models/default/{model}-v1.yaml" in reason
    assert yaml.safe_load(setup.show(f"models/default/{model}-v2.yaml"))["tensor_parallel_size"] == 2
