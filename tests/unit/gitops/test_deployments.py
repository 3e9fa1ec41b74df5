"""The deployments/ folder rendered into desired objects; a deploy request into files."""

from __future__ import annotations

import pytest

from gitops.deployments import object_path, remove_from_file, render, request_files
from vllmbench.errors import ValidationFailed
from vllmbench.runtimes.base import ObjectRef

NS = ["bench", "other"]
JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: run-1
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: vllmbench/harness:1}]
"""
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n"


def test_the_folder_names_the_namespace_and_each_object_keeps_its_file() -> None:
    rendered = render({"deployments/bench/all.yaml": (JOB + "---\n" + CM).encode()}, commit="c" * 40, namespaces=NS)
    assert rendered.problems == {}
    assert [(d.obj["metadata"]["namespace"], d.obj["kind"], d.source) for d in rendered.desired] == [
        ("bench", "Job", "deployments/bench/all.yaml"), ("bench", "ConfigMap", "deployments/bench/all.yaml")]


@pytest.mark.parametrize("files, path, words", [
    ({"deployments/bench/bad.yaml": b"kind: [unclosed"}, "deployments/bench/bad.yaml", "bad.yaml:2:1"),
    ({"deployments/kube-system/x.yaml": CM.encode()}, "deployments/kube-system/x.yaml", "not a benchmark namespace"),
    ({"deployments/bench/s.yaml": CM.encode() + b"---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"},
     "deployments/bench/s.yaml", "s.yaml:6"),
    ({"deployments/bench/ns.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n"},
     "deployments/bench/ns.yaml", "differs from 'bench'"),
    ({"deployments/x.yaml": CM.encode()}, "deployments/x.yaml", "deployments/<namespace>/"),
], ids=["yaml-error-with-line", "namespace-folder", "secret-on-line-5", "namespace-mismatch", "outside-a-namespace"])
def test_a_bad_file_is_held_with_its_problem(files: dict[str, bytes], path: str, words: str) -> None:
    rendered = render({**files, "deployments/bench/ok.yaml": JOB.encode()}, commit="c" * 40, namespaces=NS)
    assert path in rendered.held
    assert any(words in p["msg"] for p in rendered.problems[path]), rendered.problems[path]
    assert [d.source for d in rendered.desired] == ["deployments/bench/ok.yaml"]  # the good file still applies


def test_one_object_in_two_files_holds_the_second() -> None:
    rendered = render({"deployments/bench/a.yaml": CM.encode(), "deployments/bench/b.yaml": CM.encode()},
                      commit="c" * 40, namespaces=NS)
    assert "deployments/bench/b.yaml" in rendered.held and "defined in deployments/bench/a.yaml" in str(rendered.problems)


def test_a_request_becomes_one_file_per_object() -> None:
    files = request_files(JOB + "---\n" + CM, namespace="bench", namespaces=NS)
    assert sorted(files) == ["deployments/bench/configmap-settings.yaml", "deployments/bench/job-run-1.yaml"]
    assert object_path("bench", files["deployments/bench/job-run-1.yaml"]) == "deployments/bench/job-run-1.yaml"


def test_a_bad_request_names_every_problem_and_commits_nothing() -> None:
    body = CM + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2-secret}\n"
    with pytest.raises(ValidationFailed) as raised:
        request_files(body, namespace="bench", namespaces=NS)
    assert "yaml_content:6" in raised.value.message and "nothing was committed" in raised.value.message
    assert "hunter2" not in raised.value.message + str(raised.value.details)


def test_removing_one_object_of_a_shared_file_keeps_the_rest() -> None:
    text = JOB + "---\n" + CM
    kept = remove_from_file(text, path="f", refs={ObjectRef("v1", "ConfigMap", "bench", "settings")}, namespace="bench")
    assert kept is not None and b"run-1" in kept and b"settings" not in kept
    assert remove_from_file(CM, path="f", refs={ObjectRef("v1", "ConfigMap", "bench", "settings")},
                            namespace="bench") is None
