"""benchmark-manager through the real app over real HTTP, against real git remotes."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from gitops.changes import blob_sha
from gitops.seed import ensure_seeded
from gitops.webhook import sign
from tests.integration.gitops import gitutil
from tests.integration.gitops.gitutil import Person, make_remote

SECRET = "webhook-s3cret"
BENCH = "load: {mode: rate, rate_rps: 1}\n"


class RelayBroker:
    """A stand-in for the broker: records each event and delivers it to ``target``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.target: str | None = None
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                broker.events.append(json.loads(body))
                status = 202
                if broker.target:
                    status = requests.post(broker.target, data=body, timeout=60,
                                           headers={"Content-Type": self.headers["Content-Type"]}).status_code
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def broker():
    relay = RelayBroker()
    yield relay
    relay.close()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path / "config.git", {
        "projects/demo/project.yaml": "name: demo\n", "projects/demo/benchmarks/a.yaml": BENCH,
        "projects/other/project.yaml": "name: other\n", "README.md": "# config\n"})


@pytest.fixture
def manager(serve_function, tmp_path: Path, broker: RelayBroker):
    served = serve_function("sync", data_dir=str(tmp_path / "data"), github_webhook_secret=SECRET,
                            broker_url=broker.url, events_require_token=False)
    broker.target = served.url + "/"
    return served


def _create(manager, remote: Path, name: str = "demo", root: str = "projects/demo", **extra: Any) -> dict:
    response = manager.post("/projects", json={"name": name, "repository": str(remote), "root": root,
                                               "credentials": "none", **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_project_lifecycle(manager, remote: Path) -> None:
    created = _create(manager, remote)
    assert created["id"] == "demo" and created["commit"] is None
    assert manager.post("/projects", json={"name": "demo", "repository": str(remote),
                                           "credentials": "none"}).status_code == 409
    assert [p["id"] for p in manager.get("/projects").json()] == ["demo"]
    patched = manager.patch("/projects/demo", json={"root": "projects/other"})
    assert patched.status_code == 200 and patched.json()["root"] == "projects/other"
    assert manager.patch("/projects/demo", json={"branch": "nope"}).status_code == 422
    assert manager.patch("/projects/demo", json={"name": "x"}).status_code == 422
    assert manager.delete("/projects/demo").status_code == 204
    assert manager.get("/projects/demo").status_code == 404


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"repository": "/nowhere/config.git"}, 422, "no git repository can be read at /nowhere/config.git"),
    ({"repository": "file:///nowhere/config.git"}, 422, "body.repository"),
    ({"repository": "http://127.0.0.1:9/o/r.git"}, 502, "did not answer"),
    ({"branch": "nope"}, 422, "branches: main"),
    ({"repository": "https://x-access-token:ghp_leak123456@github.com/o/r.git"}, 422, "credentials"),
    ({"credentials": "ghp_literal"}, 422, "credentials"),
    ({"root": "../up"}, 400, "'..'"),
])
def test_project_creation_checks(manager, remote: Path, body: dict, status: int, words: str) -> None:
    response = manager.post("/projects", json={"name": "p", "repository": str(remote), "credentials": "none", **body})
    assert response.status_code == status, response.text
    assert words in response.text and "ghp_" not in response.text
    assert manager.get("/projects/p").status_code == 404


def test_sync_and_files_api(manager, remote: Path) -> None:
    _create(manager, remote)
    first = manager.post("/projects/demo/sync").json()
    assert (first["mode"], first["counts"]["files"]) == ("full", 2)
    listing = manager.get("/projects/demo/files").json()
    assert listing["commit"] == first["commit"] == gitutil.head(remote)
    assert [(f["path"], f["kind"]) for f in listing["files"]] == [("benchmarks/a.yaml", "benchmark"),
                                                                  ("project.yaml", "project")]
    assert [f["path"] for f in manager.get("/projects/demo/files", params={"kind": "project"}).json()["files"]] == \
        ["project.yaml"]
    one = manager.get("/projects/demo/files/benchmarks/a.yaml")
    assert one.headers["ETag"] == f'"{blob_sha(BENCH.encode())}"' and one.json()["content"] == BENCH
    Person(remote, remote.parent / "person").commit({"projects/demo/benchmarks/b.yaml": BENCH}, "add b")
    second = manager.post("/projects/demo/sync").json()
    assert (second["mode"], second["counts"]["added"], second["counts"]["read"]) == ("incremental", 1, 1)
    assert manager.get("/projects/demo/files/benchmarks/missing.yaml").status_code == 404
    assert manager.get("/projects/demo/files", params={"limit": 0}).status_code == 422


def test_edit_validate_commit_push_resync(manager, remote: Path) -> None:
    _create(manager, remote)
    manager.post("/projects/demo/sync")
    etag = manager.get("/projects/demo/files/benchmarks/a.yaml").headers["ETag"]
    new = BENCH.replace("1}", "5}")
    written = manager.put("/projects/demo/files/benchmarks/a.yaml", data=new, headers={"If-Match": etag})
    assert written.status_code == 200, written.text
    body = written.json()
    assert body["commit"] == gitutil.head(remote) == body["sync"]["commit"] and body["created_commit"]
    assert gitutil.show(remote, "projects/demo/benchmarks/a.yaml") == new.strip()
    assert gitutil.log(remote)[0].endswith("Update projects/demo/benchmarks/a.yaml (benchmark) in project demo")
    assert manager.get("/projects/demo/files/benchmarks/a.yaml").json()["content"] == new
    # the stale ETag: 412 and nothing changes
    commits = len(gitutil.log(remote))
    stale = manager.put("/projects/demo/files/benchmarks/a.yaml", data=BENCH, headers={"If-Match": etag})
    assert stale.status_code == 412 and "benchmarks/a.yaml" in stale.json()["message"]
    assert len(gitutil.log(remote)) == commits
    deleted = manager.delete("/projects/demo/files/benchmarks/a.yaml")
    assert deleted.status_code == 200 and deleted.json()["sync"]["counts"]["deleted"] == 1
    assert manager.delete("/projects/demo/files/benchmarks/a.yaml").status_code == 404
    assert len(gitutil.log(remote)) == commits + 1


@pytest.mark.parametrize(("path", "data", "status", "words"), [
    ("benchmarks/bad.yaml", "load: [1,\n", 422, "benchmarks/bad.yaml:2:"),
    ("benchmarks/typo.yaml", "lod: 1\n", 422, "lod"),
    ("project.yaml", "name: Not Valid\n", 422, "name"),
    ("%2e%2e/other/project.yaml", "name: x\n", 400, "'..'"),
    ("benchmarks/%2e%2e/%2e%2e/x.yaml", "x: 1\n", 400, "'..'"),
    ("logo.png", b"\x89PNG\x00\x00", 415, "text"),
    (".git/config", "x", 400, ".git"),
])
def test_bad_edits_are_refused_and_change_nothing(manager, remote: Path, path: str, data: Any, status: int,
                                                  words: str) -> None:
    _create(manager, remote)
    before = gitutil.log(remote)
    response = manager.put(f"/projects/demo/files/{path}", data=data)
    assert response.status_code == status, response.text
    assert words in response.text
    assert gitutil.log(remote) == before


def test_symlinks_pointing_outside_are_never_followed(manager, remote: Path) -> None:
    Person(remote, remote.parent / "person").commit({}, "links", symlinks={
        "projects/demo/escape.yaml": "../../../etc/passwd", "projects/demo/dir": "/etc"})
    _create(manager, remote)
    result = manager.post("/projects/demo/sync").json()
    assert result["counts"]["symlinks"] == 2
    link = manager.get("/projects/demo/files/escape.yaml").json()
    assert link["status"] == "symlink" and link["content"] is None and link["target"] == "../../../etc/passwd"
    for path in ("escape.yaml", "dir/passwd"):
        refused = manager.put(f"/projects/demo/files/{path}", data="x: 1\n")
        assert refused.status_code == 400 and "symbolic link" in refused.json()["message"]


def test_eight_concurrent_editors_through_the_api(manager, remote: Path) -> None:
    _create(manager, remote)
    before = len(gitutil.log(remote))

    def edit(i: int) -> int:
        return manager.put(f"/projects/demo/benchmarks/e{i}.yaml".replace("/projects/demo/", "/projects/demo/files/"),
                           data=BENCH.replace("1}", f"{i + 1}}}")).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(edit, range(8))) == [200] * 8
    assert len(gitutil.log(remote)) == before + 8
    files = {f["path"] for f in manager.get("/projects/demo/files", params={"folder": "benchmarks"}).json()["files"]}
    assert files == {"benchmarks/a.yaml", *(f"benchmarks/e{i}.yaml" for i in range(8))}


def _push_payload(remote: Path, after: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": after, "forced": False,
                       "repository": {"clone_url": f"file://{remote}", "full_name": "local/config"}}).encode()


def test_webhook_push_emits_an_event_that_syncs_the_matching_projects(manager, remote: Path, broker) -> None:
    _create(manager, remote)
    _create(manager, remote, name="other", root="projects/other")
    after = Person(remote, remote.parent / "person").commit({"projects/demo/benchmarks/c.yaml": BENCH}, "c")
    body = _push_payload(remote, after)
    bad = manager.post("/webhooks/github", data=body, headers={"X-Hub-Signature-256": sign(body, "wrong"),
                                                               "X-GitHub-Event": "push"})
    assert bad.status_code == 401 and broker.events == []
    assert manager.get("/projects/demo").json()["commit"] is None
    headers = {"X-Hub-Signature-256": sign(body, SECRET), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
    good = manager.post("/webhooks/github", data=body, headers=headers)
    assert good.status_code == 202 and good.json()["sent"] is True
    assert [e["type"] for e in broker.events] == ["dev.vllmbench.gitops.pushed"]
    assert broker.events[0]["data"]["after"] == after
    for name in ("demo", "other"):
        assert manager.get(f"/projects/{name}").json()["commit"] == after
    ping = b'{"zen": "hi"}'
    assert manager.post("/webhooks/github", data=ping, headers={"X-Hub-Signature-256": sign(ping, SECRET),
                                                                "X-GitHub-Event": "ping"}).status_code == 200


@pytest.mark.parametrize("mode", [to_binary, to_structured], ids=["binary", "structured"])
def test_pingsource_tick_syncs_every_project(manager, remote: Path, mode) -> None:
    _create(manager, remote)
    _create(manager, remote, name="other", root="projects/other")
    _create(manager, remote, name="third", root="")
    event = CloudEvent({"id": "tick-1", "source": "/apis/v1/namespaces/vllmbench/pingsources/sync-all-projects",
                        "type": "dev.knative.sources.ping"}, {"job": "sync-all"})
    headers, body = mode(event)
    response = requests.post(manager.url + "/", data=body, headers=headers, timeout=60)
    assert response.status_code == 202, response.text
    outcome = response.json()["outcome"]
    assert sorted(outcome["synced"]) == ["demo", "other", "third"] and outcome["failed"] == {}


def test_unreachable_repository_is_503_and_keeps_the_snapshot(manager, remote: Path, tmp_path: Path) -> None:
    _create(manager, remote)
    synced = manager.post("/projects/demo/sync").json()
    remote.rename(tmp_path / "moved.git")
    failed = manager.post("/projects/demo/sync")
    assert failed.status_code == 503 and "config.git" in failed.json()["message"]
    assert "Retry-After" in failed.headers
    assert manager.get("/projects/demo").json()["commit"] == synced["commit"]
    assert len(manager.get("/projects/demo/files").json()["files"]) == 2


def test_the_embedded_seed_syncs_cleanly(manager, tmp_path: Path) -> None:
    seeded = tmp_path / "seed.git"
    ensure_seeded(seeded)
    _create(manager, seeded, root="")
    result = manager.post("/projects/demo/sync").json()
    assert result["counts"]["invalid"] == 0 and result["counts"]["files"] >= 6


def test_a_push_whose_sync_fails_is_not_acknowledged(manager, remote: Path, tmp_path: Path) -> None:
    _create(manager, remote)
    remote.rename(tmp_path / "gone.git")
    event = CloudEvent({"id": "push-1", "source": "/github", "type": "dev.vllmbench.gitops.pushed"},
                       {"repository": str(remote), "branch": "main", "after": "f" * 40})
    headers, body = to_binary(event)
    first = requests.post(manager.url + "/", data=body, headers=headers, timeout=60)
    assert first.status_code == 503 and "demo" in first.json()["message"]
    (tmp_path / "gone.git").rename(remote)
    again = requests.post(manager.url + "/", data=body, headers=headers, timeout=60)  # the broker's redelivery
    assert again.status_code == 202 and again.json()["outcome"]["synced"]["demo"] == gitutil.head(remote)


def test_ready_checks_git(manager) -> None:
    ready = manager.get("/ready")
    assert ready.status_code == 200, ready.text
    assert "git" in ready.text
