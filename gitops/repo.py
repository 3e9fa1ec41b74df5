"""Repository access with GitPython over the real ``git``: the one place git runs.

A :class:`GitRepository` is a bare cache of one remote in a local folder (no work
tree: nothing is ever checked out, so a symbolic link in the repository can never
be followed on disk). Fetches are single-branch, and shallow (``depth``) the first
time; later fetches bring only the new commits. Every git process gets its
credentials through :mod:`gitops.auth`; every git error leaves here as a project
error whose message names the repository without its credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
from gitdb.base import IStream

from gitops.auth import GitAuth, public_url
from gitops.changes import Change, parse_raw_diff
from gitops.webhook import normalize_repo_url
from vllmbench.errors import BadGateway, DependencyUnavailable, NotFound, UserError

_AUTH_REFUSED = re.compile(
    r"authentication failed|could not read (username|password)|terminal prompts disabled|"
    r"permission denied|invalid username or password|http 40[13]|returned error: 40[13]|"
    r"the requested url returned error: 403", re.I)
_RACE = re.compile(r"\[rejected\]|non-fast-forward|fetch first|cannot lock ref|failed to update ref|"
                   r"incorrect old value|\[remote rejected\].*(lock|stale)", re.I)


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    sha: str
    size: int | None


class PushRejected(Exception):
    """The remote moved on before our push: fetch, replay and try again."""


class GitRepository:
    """A local bare cache of ``url``, working on ``branch``."""

    def __init__(self, url: str, branch: str, *, cache_dir: Path, auth: GitAuth | None = None,
                 depth: int = 1, timeout_s: float = 120.0) -> None:
        self.url = url
        self.branch = branch
        self.auth = auth or GitAuth()
        self.depth = depth
        self.timeout_s = timeout_s
        key = hashlib.sha256(normalize_repo_url(url).encode()).hexdigest()[:20]
        self.path = Path(cache_dir) / key
        self._repo: git.Repo | None = None

    @property
    def public(self) -> str:
        return public_url(self.url)

    @property
    def tracking_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    # -- lifecycle ---------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.lock(".init.lock"):
                if not (self.path / "HEAD").exists():
                    created = git.Repo.init(self.path, bare=True)
                    with created.config_writer() as config:
                        config.set_value('remote "origin"', "url", self.public)
                        config.set_value("gc", "autoDetach", "false")
                    created.close()
            self._repo = git.Repo(self.path)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def __enter__(self) -> "GitRepository":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def lock(self, suffix: str = ".lock") -> Iterator[None]:
        """Exclusive use of the cache (between threads and processes alike)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / f"{self.path.name}{suffix}", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- talking to the remote -----------------------------------------------------

    def git(self, *args: Any, remote: bool = False, **kwargs: Any) -> Any:
        """Run ``git <args>`` in the cache; errors are translated (see module docstring)."""
        command = args[0].replace("-", "_")
        try:
            return getattr(self.repo.git, command)(
                *args[1:], env=self.auth.env(self.url), kill_after_timeout=self.timeout_s, **kwargs)
        except git.GitCommandError as exc:
            raise self._translate(exc, remote=remote) from exc

    def remote_branches(self) -> dict[str, str]:
        """Branch name -> head commit on the remote (``git ls-remote --heads``)."""
        output = self.git("ls-remote", "--heads", self.url, remote=True)
        heads = {}
        for line in output.splitlines():
            sha, _, ref = line.partition("\t")
            heads[ref[len("refs/heads/"):]] = sha
        return heads

    def remote_head(self) -> str:
        """The remote branch's head commit; :class:`NotFound` naming the branches when absent."""
        heads = self.remote_branches()
        if self.branch not in heads:
            known = ", ".join(sorted(heads)[:20]) or "none"
            raise NotFound(f"branch {self.branch!r} does not exist in {self.public} (branches: {known})")
        return heads[self.branch]

    def fetch(self) -> str:
        """Bring the branch into the cache; returns its head commit. Call with :meth:`lock` held."""
        refspec = f"+refs/heads/{self.branch}:{self.tracking_ref}"
        shallow = self.depth > 0 and not self.has_ref()
        options = ["--no-tags", "--no-write-fetch-head", "--quiet"]
        if shallow:
            options.append(f"--depth={self.depth}")
        try:
            self.git("fetch", *options, self.url, refspec, remote=True)
        except DependencyUnavailable as exc:
            if "couldn't find remote ref" in exc.message:
                self.remote_head()  # raises NotFound with the branch list
            raise
        return self.resolve(self.tracking_ref)

    def fetch_commit(self, sha: str) -> bool:
        """Bring one commit (shallow) into the cache, e.g. the last synced one after a restart.

        False when the remote no longer has it (history rewritten) or refuses fetching by sha.
        """
        with self.lock():
            try:
                self.git("fetch", "--no-tags", "--no-write-fetch-head", "--quiet", "--depth=1", self.url, sha,
                         remote=True)
            except (DependencyUnavailable, BadGateway, PushRejected):
                return False
        return self.has_commit(sha)

    def push(self, commit: str) -> None:
        """Push ``commit`` to the branch, never forcing; :class:`PushRejected` when it moved."""
        try:
            self.git("push", "--porcelain", "--quiet", self.url, f"{commit}:refs/heads/{self.branch}",
                     remote=True)
        except PushRejected:
            raise
        self.git("update-ref", self.tracking_ref, commit)

    # -- reading the cache ---------------------------------------------------------

    def has_ref(self) -> bool:
        return (self.path / self.tracking_ref).exists() or self.tracking_ref in self._packed_refs()

    def resolve(self, ref: str) -> str:
        return self.git("rev-parse", "--verify", f"{ref}^{{commit}}")

    def has_commit(self, sha: str) -> bool:
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", older, newer)
            return True
        except git.GitCommandError:
            return False

    def list_tree(self, commit: str, root: str = "") -> dict[str, TreeEntry]:
        """Every file (blob, symlink, submodule) under ``root`` at ``commit``."""
        args = ["-r", "-l", "-z", "--full-tree", commit]
        if root:
            args += ["--", root + "/"]
        return dict(_parse_ls_tree(self.git("ls-tree", *args)))

    def entries(self, commit: str, paths: list[str]) -> dict[str, TreeEntry]:
        """The entries (any type, trees included) at exactly ``paths`` in ``commit``."""
        if not paths:
            return {}
        return dict(_parse_ls_tree(self.git("ls-tree", "-l", "-z", "--full-tree", commit, "--", *paths)))

    def diff(self, old: str, new: str, root: str = "") -> list[Change]:
        args = ["-r", "-M", "--raw", "-z", "--no-commit-id", old, new]
        if root:
            args += ["--", root + "/"]
        return parse_raw_diff(self.git("diff-tree", *args))

    def read_blob(self, sha: str) -> bytes:
        return self.repo.odb.stream(bytes.fromhex(sha)).read()

    def blob_size(self, sha: str) -> int:
        return self.repo.odb.info(bytes.fromhex(sha)).size

    def store_blob(self, data: bytes) -> str:
        return self.repo.odb.store(IStream(b"blob", len(data), io.BytesIO(data))).hexsha.decode()

    # -- internals -----------------------------------------------------------------

    def _packed_refs(self) -> str:
        try:
            return (self.path / "packed-refs").read_text()
        except OSError:
            return ""

    def _translate(self, exc: git.GitCommandError, *, remote: bool) -> Exception:
        stderr = self.auth.scrub(str(exc.stderr or "")) + "\n" + self.auth.scrub(str(exc.stdout or ""))
        if remote and _RACE.search(stderr):
            return PushRejected(_last_line(stderr))
        reason = _last_line(stderr) or f"git exited with status {exc.status}"
        if remote and _AUTH_REFUSED.search(stderr):
            return BadGateway(f"git repository {self.public} refused the credentials: {reason}")
        if remote:
            return DependencyUnavailable("git", f"repository {self.public} (branch {self.branch}) "
                                         f"cannot be reached: {reason}")
        if "not a valid object name" in stderr or "bad revision" in stderr or "Needed a single" in stderr:
            return UserError(f"{self.public}: {reason}")
        return DependencyUnavailable("git", f"local cache of {self.public} failed: {reason}")


def _last_line(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        for prefix in ("stderr:", "stdout:"):
            if line.startswith(prefix):
                line = line[len(prefix):].strip().strip("'\"")
        if line and not line.startswith("hint:"):
            lines.append(line)
    meaningful = [line for line in lines if line.lower().startswith(("fatal", "error", "!", "remote"))]
    chosen = (meaningful or lines or [""])[-1]
    return chosen.strip("'\" ")[:300]


def _parse_ls_tree(output: str) -> Iterator[tuple[str, TreeEntry]]:
    for record in output.split("\x00"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split(None, 3)
        yield path, TreeEntry(mode, kind, sha, None if size.strip() == "-" else int(size))
