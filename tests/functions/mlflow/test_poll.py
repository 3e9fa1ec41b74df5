"""benchmark-mlflow polling a real MLflow server and writing to a real Git remote."""

from __future__ import annotations

import yaml

from tests.functions.mlflow.conftest import Setup
from tests.integration.gitops import gitutil
from vllmbench.mlflow import names

REGISTERED = "dev.vllmbench.model.version.registered"


def _body(text: str) -> dict:
    return yaml.safe_load(text)


def test_new_versions_become_one_modelserver_commit_each_and_a_second_poll_writes_nothing(setup: Setup):
    model = setup.mlflow.name("llama-ft")
    setup.rule("llama", {"models": [model], "namespace": "team-a",
                         "server": {"model_name": "{{ version.tags.hf_model | default(version.source) }}",
                                    "max_model_len": "{{ run.params.max_len }}"}})
    setup.mlflow.create_model(model)
    run = setup.mlflow.run(params={"max_len": "4096", "lr": "0.1"}, metrics={"eval_loss": 1.25})
    v1 = setup.mlflow.create_version(model, f"runs:/{run['run_id']}/model", run_id=run["run_id"],
                                     hf_model="facebook/opt-125m")
    v2 = setup.mlflow.create_version(model, f"runs:/{run['run_id']}/model", run_id=run["run_id"],
                                     hf_model="facebook/opt-350m")
    fn = setup.function()

    first = fn.post("/poll")
    assert first.status_code == 200, first.text
    assert [w["version"] for w in first.json()["written"]] == [v1, v2]
    commits = setup.mlflow_commits()
    assert len(commits) == 2
    assert all(model in c and run["run_id"] in c for c in commits)
    assert commits[0].startswith(f"MLflow: {model} version {v2} ")  # newest first
    server = _body(setup.show(f"models/team-a/{model}-v{v2}.yaml"))
    assert server == {"name": f"{model}-v{v2}", "namespace": "team-a", "model_name": "facebook/opt-350m",
                      "max_model_len": 4096}
    assert gitutil.git("--git-dir", str(setup.remote), "log", "-1", "--format=%an <%ae>") == \
        "vllmbench-mlflow <vllmbench@localhost>"
    head = setup.log()[0]

    again = fn.post("/poll")
    assert again.status_code == 200 and again.json()["written"] == []
    assert setup.log()[0] == head  # nothing new in Git

    pushed = setup.broker.of_type("dev.vllmbench.gitops.pushed")  # the vLLM service places ModelServers on it
    assert [e["data"]["after"] for e in pushed] == [line.split()[0] for line in reversed(setup.log()[:2])]
    assert pushed[0]["data"]["repository"] == str(setup.remote) and pushed[0]["data"]["branch"] == "main"
    events = setup.broker.of_type(REGISTERED)
    assert [(e["data"]["model"], e["data"]["version"]) for e in events] == [(model, v1), (model, v2)]
    assert events[1]["data"]["server"] == f"team-a/{model}-v{v2}"
    assert events[1]["data"]["path"] == f"models/team-a/{model}-v{v2}.yaml"

    versions = fn.get(f"/models/{model}/versions").json()
    assert [v["version"] for v in versions["versions"]] == [v2, v1]
    seen = versions["versions"][0]
    assert seen["run"]["params"] == {"max_len": "4096", "lr": "0.1"}
    assert seen["run"]["metrics"] == {"eval_loss": 1.25}
    assert seen["tags"]["hf_model"] == "facebook/opt-350m"
    assert seen["server"] == f"team-a/{model}-v{v2}"
    models = fn.get("/models").json()["models"]
    assert [(m["name"], m["cursor"]) for m in models] == [(model, v2)]
    connections = fn.get("/connections").json()
    assert connections["mlflow"]["reachable"] and connections["mlflow"]["version"] == "3.17.2"
    assert connections["git"]["reachable"] and connections["git"]["head"] == head.split()[0]
    assert connections["registered_models_seen"] == 1 and connections["models"] == [model]
    assert connections["last_poll"]["ok"] and connections["last_poll"]["trigger"] == "manual"
    assert connections["last_error"] is None and connections["rules"]["paths"] == ["mlflow/llama.yaml"]
    assert connections["webhook"]["registered"] is False and "polling only" in connections["webhook"]["reason"]


def test_a_version_registered_later_is_written_by_the_next_poll_only(setup: Setup):
    model = setup.mlflow.name("m")
    setup.rule("m", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://bucket/m/1")
    fn = setup.function()
    assert len(fn.post("/poll").json()["written"]) == 1
    v2 = setup.mlflow.create_version(model, "s3://bucket/m/2")
    written = fn.post("/poll").json()["written"]
    assert [w["version"] for w in written] == [v2]
    assert len(setup.mlflow_commits()) == 2
    assert _body(setup.show(f"models/default/{model}-v2.yaml"))["model_name"] == "s3://bucket/m/2"


def test_rules_choose_versions_by_tag_and_alias_and_stage(setup: Setup):
    tagged, aliased, staged = (setup.mlflow.name(n) for n in ("tagged", "aliased", "staged"))
    setup.rule("tagged", {"models": [tagged], "versions": {"tags": {"deploy": "true"}}})
    setup.rule("aliased", {"models": [aliased], "versions": {"aliases": ["candidate"]}})
    setup.rule("staged", {"models": [staged], "versions": {"stages": ["Production"]}})
    for model in (tagged, aliased, staged):
        setup.mlflow.create_model(model)
    setup.mlflow.create_version(tagged, "s3://t/1", deploy="false")
    setup.mlflow.create_version(tagged, "s3://t/2", deploy="true")
    setup.mlflow.create_version(aliased, "s3://a/1")
    setup.mlflow.create_version(aliased, "s3://a/2")
    setup.mlflow.set_alias(aliased, "candidate", 2)
    setup.mlflow.create_version(staged, "s3://s/1")
    setup.mlflow.transition(staged, 1, "Production")
    setup.mlflow.create_version(staged, "s3://s/2")
    fn = setup.function()
    outcome = fn.post("/poll").json()
    assert sorted((w["model"], w["version"]) for w in outcome["written"]) == sorted(
        [(tagged, 2), (aliased, 2), (staged, 1)])
    skipped = {(s["model"], s["version"]): s["reason"] for s in outcome["skipped"]}
    assert "tag 'deploy' is 'false'" in skipped[(tagged, 1)]
    assert "none of the aliases candidate" in skipped[(aliased, 1)]
    assert "stage is None" in skipped[(staged, 2)]
    assert "stage: Production (deprecated in MLflow)" in setup.show(f"models/default/{staged}-v1.yaml")

    # the tag is set on version 1 later: MLflow moves no timestamp, a full poll finds it
    setup.mlflow.set_tag(tagged, 1, "deploy", "true")
    assert fn.post("/poll").json()["written"] == []
    full = fn.post("/poll", json={"full": True}).json()
    assert [(w["model"], w["version"]) for w in full["written"]] == [(tagged, 1)]


def test_a_patterned_rule_follows_new_models_and_a_name_that_is_no_kubernetes_name_is_mapped(setup: Setup):
    prefix = setup.mlflow.name("fam")
    setup.rule("family", {"models": [f"{prefix}-*"]})
    plain, odd = f"{prefix}-small", f"{prefix}-Big Model_v2.1"
    setup.mlflow.create_model(plain)
    setup.mlflow.create_model(odd)
    setup.mlflow.create_model(setup.mlflow.name("other"))  # no rule follows it
    for model in (plain, odd, setup.mlflow.name("other")):
        setup.mlflow.create_version(model, "s3://bucket/x")
    fn = setup.function()
    outcome = fn.post("/poll").json()
    assert sorted(outcome["models"]) == sorted([plain, odd])
    mapped = names.version_server(odd, 1)
    assert mapped.startswith(f"{prefix}-big-model-v2-1-") and mapped.endswith("-v1")
    assert setup.files() == sorted([f"models/default/{plain}-v1.yaml", f"models/default/{mapped}.yaml"])
    assert mapped == names.version_server(odd, 1)  # deterministic
    listed = {m["name"]: m["k8s_name"] for m in fn.get("/models").json()["models"]}
    assert listed[odd] == names.model_part(odd)


def test_a_name_that_cannot_be_mapped_is_refused_with_the_reason(setup: Setup):
    model = "模型-" + "".join(chr(0x4E00 + int(c, 16)) for c in setup.mlflow.prefix[1:])  # nothing ASCII
    setup.rule("cjk", {"models": [model]})
    setup.mlflow.create_model(model)
    setup.mlflow.create_version(model, "s3://bucket/x")
    fn = setup.function()
    outcome = fn.post("/poll").json()
    assert outcome["written"] == []
    assert "has no letter or digit" in outcome["refused"][0]["reason"]
    listed = fn.get("/models").json()["models"]
    assert listed[0]["refused"] and listed[0]["k8s_name"] is None
    assert setup.mlflow_commits() == []
