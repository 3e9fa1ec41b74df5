"""The GitHub token never shows: not in a log line, a response, a commit, or a file on disk.

A smart-HTTP git server that demands the token (as GitHub does over HTTPS) is the
remote; the scenario walks every route of the Manager, including the failures,
then scans everything that was produced.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from secrets import token_hex

import pytest

from gitops.webhook import sign
from tests.integration.gitops import gitutil
from tests.integration.gitops.gitutil import TokenGitServer, make_remote

# Generated per run, shaped like a GitHub token: a real-looking secret is never committed.
TOKEN = "ghp" + "_" + token_hex(16)
BENCH = "load: {mode: rate, rate_rps: 1}\n"


def test_no_token_anywhere(serve_function, tmp_path: Path, capfd: pytest.CaptureFixture[str],
                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    remote = make_remote(tmp_path / "srv" / "config.git", {"projects/demo/project.yaml": "name: demo\n",
                                                           "projects/demo/benchmarks/a.yaml": BENCH})
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "wrong").write_text("ghp" + "_" + token_hex(10) + "\n")
    responses = []
    with TokenGitServer(tmp_path / "srv", TOKEN) as server:
        manager = serve_function("sync", data_dir=str(tmp_path / "data"), github_token=TOKEN,
                                 git_credentials_dir=str(tmp_path / "creds"), github_webhook_secret="s",
                                 log_level="DEBUG")
        url = f"{server.url}/config.git"

        def call(method: str, path: str, **kwargs):  # noqa: ANN202
            response = getattr(manager, method)(path, **kwargs)
            responses.append(response)
            return response

        assert call("post", "/projects", json={"name": "demo", "repository": url, "root": "projects/demo"}).status_code == 201
        assert call("post", "/projects/demo/sync").status_code == 200
        etag = call("get", "/projects/demo/files/benchmarks/a.yaml").headers["ETag"]
        assert call("put", "/projects/demo/files/benchmarks/a.yaml", data=BENCH.replace("1}", "2}"),
                    headers={"If-Match": etag}).status_code == 200
        assert call("put", "/projects/demo/files/benchmarks/a.yaml", data=BENCH, headers={"If-Match": etag}).status_code == 412
        assert call("put", "/projects/demo/files/benchmarks/bad.yaml", data="a: [").status_code == 422
        assert call("delete", "/projects/demo/files/benchmarks/a.yaml").status_code == 200
        call("get", "/projects/demo")
        call("get", "/projects")
        call("get", "/projects/demo/files")
        # credentials refused: 502 naming the repository, not the token
        refused = call("post", "/projects", json={"name": "wrong", "repository": url, "credentials": "file:wrong"})
        assert refused.status_code == 502 and url in refused.json()["message"]
        assert call("patch", "/projects/demo", json={"credentials": "file:wrong"}).status_code == 502
        # a token pasted into the URL is refused without being echoed
        leaked = f"https://x-access-token:{TOKEN}@github.com/o/r.git"
        assert call("post", "/projects", json={"name": "leak", "repository": leaked}).status_code == 422
        body = b'{"zen": "hi"}'
        call("post", "/webhooks/github", data=body, headers={"X-Hub-Signature-256": sign(body, "s"),
                                                             "X-GitHub-Event": "ping"})
        call("get", "/openapi.json")
        assert set(server.seen_authorization) == {"Basic"}

    secrets = {TOKEN, base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()}
    out, err = capfd.readouterr()
    produced = {
        "responses": "\n".join(r.text + repr(dict(r.headers)) for r in responses),
        "log output": out + err,
        "log records": "\n".join(record.getMessage() + repr(getattr(record, "fields", "")) for record in caplog.records),
        "commits": gitutil.git("--git-dir", str(remote), "log", "-p", "--format=fuller", "--all"),
    }
    assert len(produced["commits"].splitlines()) > 10 and "Update projects/demo/benchmarks/a.yaml" in produced["commits"]
    assert '"msg":"pushed commit"' in produced["log output"]
    for name, text in produced.items():
        for secret in secrets:
            assert secret not in text, f"the token leaked into {name}"
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"the token is on disk in {path}"
