"""Real git for the tests: bare remotes, a person with a clone, a smart-HTTP server.

The HTTP server runs ``git http-backend`` (git's own smart-HTTP server) behind a
check of ``Authorization: Basic x-access-token:<token>``, the way GitHub takes a
token over HTTPS; only the scheme is plain HTTP (no certificates on loopback).
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

GIT_ENV = {"GIT_AUTHOR_NAME": "Person", "GIT_AUTHOR_EMAIL": "person@example.com",
           "GIT_COMMITTER_NAME": "Person", "GIT_COMMITTER_EMAIL": "person@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.decode()}")
    return out.stdout.decode().strip()


def make_remote(path: Path, files: dict[str, bytes | str], *, branch: str = "main") -> Path:
    """A bare repository at ``path`` whose ``branch`` holds ``files`` in one commit."""
    git("init", "-q", "--bare", f"--initial-branch={branch}", str(path))
    person = Person(path, path.parent / f"{path.name}-person", branch=branch)
    person.commit(files, "initial")
    return path


class Person:
    """Someone with a clone who commits and pushes like a person would."""

    def __init__(self, remote: Path, work: Path, *, branch: str = "main") -> None:
        self.remote, self.work, self.branch = remote, work, branch
        if not work.exists():
            git("init", "-q", f"--initial-branch={branch}", str(work))
            git("remote", "add", "origin", str(remote), cwd=work)

    def pull(self) -> None:
        if git("ls-remote", "--heads", "origin", self.branch, cwd=self.work):
            git("fetch", "-q", "origin", self.branch, cwd=self.work)
            git("reset", "-q", "--hard", "FETCH_HEAD", cwd=self.work)

    def commit(self, files: dict[str, bytes | str | None], message: str, *, symlinks: dict[str, str] | None = None) -> str:
        self.pull()
        for name, content in files.items():
            target = self.work / name
            if content is None:
                git("rm", "-q", "-r", name, cwd=self.work)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        for name, link in (symlinks or {}).items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).symlink_to(link)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", "origin", f"HEAD:{self.branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def rewrite_history(self, files: dict[str, str], message: str) -> str:
        """Force-push a branch whose history has nothing in common with the old one."""
        self.pull()
        git("checkout", "-q", "--orphan", "rewritten", cwd=self.work)
        git("rm", "-q", "-r", "--cached", "--ignore-unmatch", ".", cwd=self.work)
        for child in self.work.iterdir():
            if child.name != ".git":
                subprocess.run(["rm", "-rf", str(child)], check=True)
        for name, content in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "--force", "origin", f"HEAD:{self.branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def head(remote: Path, branch: str = "main") -> str:
    return git("--git-dir", str(remote), "rev-parse", branch)


def log(remote: Path, branch: str = "main") -> list[str]:
    """Every commit on the branch, newest first, as 'sha subject'."""
    return git("--git-dir", str(remote), "log", "--format=%H %s", branch).splitlines()


def show(remote: Path, path: str, branch: str = "main") -> str:
    return git("--git-dir", str(remote), "show", f"{branch}:{path}")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        return None


class TokenGitServer:
    """``git http-backend`` for the bare repositories under ``root``, requiring ``token``."""

    def __init__(self, root: Path, token: str) -> None:
        self.root, self.token = root, token
        self.seen_authorization: list[str] = []
        self.request_lines: list[str] = []
        self._server: WSGIServer = make_server("127.0.0.1", 0, self._app, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "TokenGitServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict, start_response) -> Iterator[bytes]:  # noqa: ANN001
        self.request_lines.append(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
        header = environ.get("HTTP_AUTHORIZATION", "")
        self.seen_authorization.append(header.split(" ")[0] if header else "")
        expected = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if header.lower() != expected.lower():
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": environ.get("PATH_INFO", ""), "QUERY_STRING": environ.get("QUERY_STRING", ""),
               "REQUEST_METHOD": environ["REQUEST_METHOD"], "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "x-access-token", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
               "GIT_HTTP_MAX_REQUEST_BUFFER": "100M", "PATH": GIT_ENV["PATH"]}
        out = subprocess.run(["git", "-c", "http.receivepack=true", "http-backend"], input=body, env=env,
                             capture_output=True, check=False).stdout
        head_bytes, _, payload = out.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head_bytes.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]
