"""Pure gitops logic: paths, YAML, kinds, change planning, webhooks, auth. Table-driven."""

from __future__ import annotations

import pytest

from gitops import auth, kinds, paths, webhook, yamldoc
from gitops.changes import Change, FileEdit, blob_sha, diff_entries, parse_raw_diff, plan_replay
from vllmbench.errors import Conflict, PreconditionFailed, Unauthorized, UserError, ValidationFailed


@pytest.mark.parametrize(("root", "path", "expected"), [
    ("", "a.yaml", "a.yaml"),
    ("projects/demo", "benchmarks/x.yaml", "projects/demo/benchmarks/x.yaml"),
    ("projects/demo", "a/b/c.yml", "projects/demo/a/b/c.yml"),
])
def test_confine_accepts_paths_inside_the_root(root: str, path: str, expected: str) -> None:
    assert paths.confine(root, path) == expected


@pytest.mark.parametrize("path", ["", " ", "/etc/passwd", "../x.yaml", "a/../../x", "a/./b", "a//b", ".git/config",
                                  "a\\..\\b", "a\x00b", "a/\nb", "x/.."])
def test_confine_refuses_escapes(path: str) -> None:
    with pytest.raises(UserError):
        paths.confine("projects/demo", path)


@pytest.mark.parametrize(("data", "binary"), [
    (b"a: 1\n", False), ("é: ü\n".encode(), False), (b"\x00\x01", True), (b"\xff\xfe\xfa", True), (b"", False)])
def test_binary_detection(data: bytes, binary: bool) -> None:
    assert paths.looks_binary(data) is binary


def test_yaml_multi_document_and_empty_documents() -> None:
    assert yamldoc.parse_documents("a: 1\n---\nb: 2\n---\n", path="x.yaml") == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(("text", "line"), [("a: 1\nb: [1, 2\nc: 3\n", 3), ("a: 1\n  b: 2\n", 2), ("a:\n\t- x\n", 2)])
def test_invalid_yaml_names_file_and_line(text: str, line: int) -> None:
    with pytest.raises(yamldoc.InvalidYaml) as caught:
        yamldoc.parse_documents(text, path="benchmarks/x.yaml")
    assert caught.value.problem.line == line
    assert f"benchmarks/x.yaml:{line}:" in caught.value.message


def test_yaml_builds_no_python_objects() -> None:
    with pytest.raises(yamldoc.InvalidYaml):
        yamldoc.parse_documents("!!python/object/apply:os.system ['echo hi']\n", path="evil.yaml")


@pytest.mark.parametrize(("path", "root", "kind"), [
    ("projects/p/project.yaml", "", "project"),
    ("projects/p/benchmarks/chat.yaml", "", "benchmark"),
    ("projects/p/templates/job.yml", "", "template"),
    ("deployments/ns/deployment-x.yaml", "", "deployment"),
    ("models/ns/opt.yaml", "", "model_server"),
    ("schedules/nightly.yaml", "", "schedule"),
    ("conf/benchmarks/a.yaml", "conf", "benchmark"),
    ("conf/project.yaml", "conf", "project"),
    ("notes/readme.md", "", "text"),
    ("other/thing.yaml", "", "yaml"),
])
def test_classify(path: str, root: str, kind: str) -> None:
    assert kinds.classify(path, root=root) == kind


GOOD_BENCHMARK = {"load": {"mode": "rate", "rate_rps": 2}, "slo": {"ttft_ms": 100}}


@pytest.mark.parametrize(("kind", "documents", "bad_field"), [
    ("benchmark", [GOOD_BENCHMARK], None),
    ("benchmark", [{"load": {"mode": "rate"}}], "load"),
    ("benchmark", [{**GOOD_BENCHMARK, "lod": 1}], "lod"),
    ("benchmark", [{**GOOD_BENCHMARK, "slo": {"ttft_ms": -1}}], "slo.ttft_ms"),
    ("benchmark", [GOOD_BENCHMARK, GOOD_BENCHMARK], "exactly one"),
    ("project", [{"name": "demo"}], None),
    ("project", [{"name": "Not A Slug"}], "name"),
    ("deployment", [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}], None),
    ("deployment", [{"apiVersion": "v1", "kind": "ConfigMap"}], "metadata"),
    ("template", ["just a string"], "mapping"),
    ("yaml", [1, "x"], None),
])
def test_kind_schemas(kind: str, documents: list, bad_field: str | None) -> None:
    if bad_field is None:
        kinds.validate(kind, documents, path="f.yaml")
        return
    with pytest.raises(ValidationFailed) as caught:
        kinds.validate(kind, documents, path="f.yaml")
    assert "f.yaml" in caught.value.message
    assert bad_field in caught.value.message + str(caught.value.details)


def test_parse_raw_diff_with_rename_add_delete() -> None:
    z = "\x00"
    output = (f":100644 100644 {'a' * 40} {'b' * 40} M{z}m.yaml{z}"
              f":000000 100644 {'0' * 40} {'c' * 40} A{z}new.yaml{z}"
              f":100644 000000 {'d' * 40} {'0' * 40} D{z}gone.yaml{z}"
              f":100644 100644 {'e' * 40} {'e' * 40} R100{z}old.yaml{z}moved.yaml{z}")
    assert parse_raw_diff(output) == [
        Change("modified", "m.yaml", None, "b" * 40, "100644"), Change("added", "new.yaml", None, "c" * 40, "100644"),
        Change("deleted", "gone.yaml"), Change("renamed", "moved.yaml", "old.yaml", "e" * 40, "100644")]


def test_diff_entries_pairs_renames_by_content() -> None:
    old = {"a": "1", "b": "2", "c": "3"}
    new = {"a": ("1", "100644"), "b": ("9", "100644"), "d": ("3", "100644"), "e": ("5", "100644")}
    assert sorted(diff_entries(old, new), key=lambda c: c.path) == [
        Change("modified", "b", None, "9", "100644"), Change("renamed", "d", "c", "3", "100644"),
        Change("added", "e", None, "5", "100644")]


def test_blob_sha_matches_git() -> None:
    assert blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


NEW = b"new\n"


@pytest.mark.parametrize(("edit", "base", "head", "outcome"), [
    (FileEdit("f", NEW), None, None, "apply"),
    (FileEdit("f", NEW), "x", "x", "apply"),
    (FileEdit("f", NEW), "x", "y", Conflict),
    (FileEdit("f", NEW), "x", blob_sha(NEW), "skip"),
    (FileEdit("f", None), "x", None, "skip"),
    (FileEdit("f", NEW, if_match="x"), "x", "x", "apply"),
    (FileEdit("f", NEW, if_match="x"), "z", "z", PreconditionFailed),
    (FileEdit("f", NEW, if_match="x"), "x", "y", PreconditionFailed),
    (FileEdit("f", NEW, if_match="*"), None, None, PreconditionFailed),
    (FileEdit("f", NEW, if_match="x"), "x", blob_sha(NEW), "skip"),
])
def test_plan_replay(edit: FileEdit, base: str | None, head: str | None, outcome: object) -> None:
    if isinstance(outcome, type):
        with pytest.raises(outcome, match="f"):
            plan_replay([edit], base={"f": base}, head={"f": head})
    else:
        todo = plan_replay([edit], base={"f": base}, head={"f": head})
        assert todo == ([edit] if outcome == "apply" else [])


def test_webhook_signature() -> None:
    body = b'{"zen": "x"}'
    webhook.verify_signature(body, webhook.sign(body, "s3cret"), "s3cret")
    for header, secret in [(None, "s3cret"), ("sha1=abc", "s3cret"), (webhook.sign(body, "other"), "s3cret"),
                           (webhook.sign(body + b" ", "s3cret"), "s3cret"), (webhook.sign(body, "s3cret"), None)]:
        with pytest.raises(Unauthorized):
            webhook.verify_signature(body, header, secret)


def test_parse_push() -> None:
    body = (b'{"ref": "refs/heads/main", "before": "a", "after": "b", "forced": true, "repository": '
            b'{"clone_url": "https://github.com/O/R.git", "ssh_url": "git@github.com:O/R.git"}}')
    push = webhook.parse_push(body)
    assert (push.branch, push.before, push.after, push.forced) == ("main", "a", "b", True)
    assert push.aliases == ("https://github.com/O/R.git", "git@github.com:O/R.git")
    assert webhook.parse_push(body.replace(b"refs/heads/main", b"refs/tags/v1")).branch is None
    with pytest.raises(UserError):
        webhook.parse_push(b"not json")


@pytest.mark.parametrize(("url", "key"), [
    ("https://github.com/Org/Repo.git", "github.com/org/repo"),
    ("git@github.com:org/repo", "github.com/org/repo"),
    ("ssh://git@github.com/org/repo.git/", "github.com/org/repo"),
    ("https://user:pw@gitlab.example.com/a/b.git", "gitlab.example.com/a/b"),
    ("/srv/git/config.git/", "/srv/git/config.git"),
    ("file:///srv/git/config.git", "/srv/git/config.git"),
])
def test_normalize_repo_url(url: str, key: str) -> None:
    assert webhook.normalize_repo_url(url) == key


def test_auth_env_scopes_the_token_to_the_origin_and_never_repr() -> None:
    creds = auth.GitAuth("ghp_abc123")
    env = creds.env("https://github.com/o/r.git")
    assert env["GIT_CONFIG_KEY_1"] == "http.https://github.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_1"].startswith("Authorization: Basic ")
    assert "ghp_abc123" not in repr(creds)
    assert "GIT_CONFIG_KEY_1" not in creds.env("/srv/git/r.git")  # never sent to local paths
    assert env["GIT_TERMINAL_PROMPT"] == "0"


@pytest.mark.parametrize(("url", "public"), [
    ("https://x-access-token:ghp_1@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://github.com/o/r.git", "https://github.com/o/r.git"),
    ("/srv/r.git", "/srv/r.git"),
])
def test_public_url(url: str, public: str) -> None:
    assert auth.public_url(url) == public


@pytest.mark.parametrize("reference", ["ghp_literaltoken", "file:../x", "env:HOME", ""])
def test_credentials_reference_refused(reference: str) -> None:
    with pytest.raises(UserError):
        auth.check_reference(reference)
