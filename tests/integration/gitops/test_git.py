"""The gitops core against real git: bare remotes, real pushes, real races between processes."""

from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path

import pytest

from gitops.auth import GitAuth
from gitops.changes import FileEdit, blob_sha
from gitops.commit import Author, write
from gitops.repo import GitRepository
from gitops.seed import ensure_seeded, seed_files
from tests.integration.gitops import gitutil
from tests.integration.gitops.gitutil import Person, TokenGitServer, make_remote
from vllmbench.errors import BadGateway, Conflict, DependencyUnavailable, NotFound, PreconditionFailed, UserError

AUTHOR = Author("vllmbench-test", "bot@example.com")


def _repo(remote: Path | str, cache: Path, **kwargs: object) -> GitRepository:
    return GitRepository(str(remote), "main", cache_dir=cache, **kwargs)  # type: ignore[arg-type]


def test_seed_is_idempotent_and_holds_the_demo_project(tmp_path: Path) -> None:
    first = ensure_seeded(tmp_path / "r.git", author=AUTHOR)
    assert ensure_seeded(tmp_path / "r.git", author=AUTHOR) == first
    assert gitutil.show(tmp_path / "r.git", "projects/demo/project.yaml").startswith("# The example")
    assert len(gitutil.log(tmp_path / "r.git")) == 1
    assert "projects/demo/benchmarks/chat-short.yaml" in seed_files()


def test_fetch_is_shallow_then_incremental(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n"})
    person = Person(remote, tmp_path / "person")
    for i in range(3):
        person.commit({f"f{i}.yaml": f"i: {i}\n"}, f"c{i}")
    with _repo(remote, tmp_path / "cache") as repo:
        with repo.lock():
            first = repo.fetch()
        assert (repo.path / "shallow").exists()
        new = person.commit({"a.yaml": "a: 2\n", "f0.yaml": None}, "edit")
        with repo.lock():
            assert repo.fetch() == new
        assert repo.is_ancestor(first, new)
        changes = {c.path: c.status for c in repo.diff(first, new)}
        assert changes == {"a.yaml": "modified", "f0.yaml": "deleted"}


def test_one_commit_for_several_files_with_author_and_no_force(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    before = gitutil.head(remote)
    with _repo(remote, tmp_path / "cache") as repo:
        result = write(repo, [FileEdit("a.yaml", b"a: 2\n"), FileEdit("b.yaml", None), FileEdit("c/d.yaml", b"d: 1\n")],
                       message="Change three files", author=AUTHOR)
    assert result.created and result.previous == before
    log = gitutil.log(remote)
    assert len(log) == 2 and log[0] == f"{result.commit} Change three files"
    assert gitutil.git("--git-dir", str(remote), "log", "-1", "--format=%an <%ae>") == "vllmbench-test <bot@example.com>"
    assert gitutil.show(remote, "a.yaml") == "a: 2" and gitutil.show(remote, "c/d.yaml") == "d: 1"
    assert "b.yaml" not in gitutil.git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main")


def test_rejected_push_is_replayed_on_the_new_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    person = Person(remote, tmp_path / "person")
    with _repo(remote, tmp_path / "cache") as repo:
        real_fetch = repo.fetch
        calls = {"n": 0}

        def fetch_then_someone_pushes() -> str:  # the remote moves between our fetch and our push
            head = real_fetch()
            calls["n"] += 1
            if calls["n"] == 1:
                person.commit({"b.yaml": "b: 2\n"}, "someone else")
            return head

        monkeypatch.setattr(repo, "fetch", fetch_then_someone_pushes)
        result = write(repo, [FileEdit("a.yaml", b"a: 2\n")], message="ours", author=AUTHOR)
    assert result.attempts == 2
    subjects = [line.split(" ", 1)[1] for line in gitutil.log(remote)]
    assert subjects == ["ours", "someone else", "initial"]
    assert gitutil.show(remote, "b.yaml") == "b: 2" and gitutil.show(remote, "a.yaml") == "a: 2"


def test_a_real_conflict_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n"})
    person = Person(remote, tmp_path / "person")
    with _repo(remote, tmp_path / "cache") as repo:
        real_fetch = repo.fetch
        state = {"first": True}

        def racing_fetch() -> str:
            head = real_fetch()
            if state.pop("first", False):
                person.commit({"a.yaml": "a: 3\n"}, "someone else")
            return head

        monkeypatch.setattr(repo, "fetch", racing_fetch)
        with pytest.raises(Conflict, match="a.yaml"):
            write(repo, [FileEdit("a.yaml", b"a: 2\n")], message="ours", author=AUTHOR)
    assert gitutil.show(remote, "a.yaml") == "a: 3" and len(gitutil.log(remote)) == 2


def test_if_match_and_refused_paths(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n"})
    Person(remote, tmp_path / "person").commit({}, "links", symlinks={"link": "/etc", "l.yaml": "../outside.yaml"})
    with _repo(remote, tmp_path / "cache") as repo:
        with pytest.raises(PreconditionFailed, match="a.yaml"):
            write(repo, [FileEdit("a.yaml", b"a: 2\n", if_match="0" * 40)], message="m", author=AUTHOR)
        ok = write(repo, [FileEdit("a.yaml", b"a: 2\n", if_match=blob_sha(b"a: 1\n"))], message="m", author=AUTHOR)
        assert ok.created
        for path, reason in [("link/passwd", "symbolic link"), ("l.yaml", "symbolic link"), ("a.yaml/x", "is a file")]:
            with pytest.raises(UserError, match=reason):
                write(repo, [FileEdit(path, b"x: 1\n")], message="m", author=AUTHOR)
    assert len(gitutil.log(remote)) == 3


def test_unreachable_remote_and_missing_branch(tmp_path: Path) -> None:
    with _repo(tmp_path / "missing.git", tmp_path / "cache") as repo:
        with pytest.raises(DependencyUnavailable, match="missing.git"):
            with repo.lock():
                repo.fetch()
    remote = make_remote(tmp_path / "r.git", {"a.yaml": "a: 1\n"})
    with GitRepository(str(remote), "nope", cache_dir=tmp_path / "cache") as repo:
        with pytest.raises(NotFound, match=r"branch 'nope'.*branches: main"):
            repo.remote_head()
        with pytest.raises(NotFound, match="nope"), repo.lock():
            repo.fetch()


def test_token_over_https_stays_out_of_urls_files_and_errors(tmp_path: Path) -> None:
    token = "ghp" + "_" + secrets.token_hex(15)  # generated: no real-looking secret in the repository
    make_remote(tmp_path / "srv" / "r.git", {"a.yaml": "a: 1\n"})
    with TokenGitServer(tmp_path / "srv", token) as server:
        url = f"{server.url}/r.git"
        with _repo(url, tmp_path / "cache", auth=GitAuth(token)) as repo:
            result = write(repo, [FileEdit("b.yaml", b"b: 1\n")], message="over http", author=AUTHOR)
            assert result.created
        with _repo(url, tmp_path / "cache2", auth=GitAuth("ghp_wrong0000000000")) as repo:
            with pytest.raises(BadGateway) as refused:
                with repo.lock():
                    repo.fetch()
        assert url in refused.value.message and "ghp_" not in refused.value.message
        assert set(server.seen_authorization) <= {"Basic"}
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert token not in gitutil.git("--git-dir", str(tmp_path / "srv" / "r.git"), "log", "-p", "main")


def _editor(remote: str, cache: str, index: int, start: object, results: object) -> None:
    start.wait(60)  # type: ignore[attr-defined]
    with GitRepository(remote, "main", cache_dir=Path(cache)) as repo:
        result = write(repo, [FileEdit(f"editor-{index}.yaml", f"editor: {index}\n".encode())],
                       message=f"editor {index}", author=AUTHOR, retries=20, backoff_s=0.05)
    results.put((index, result.commit, result.attempts))  # type: ignore[attr-defined]


def test_eight_concurrent_editors_each_land_exactly_once(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"shared.yaml": "a: 1\n"})
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    editors = [context.Process(target=_editor, args=(str(remote), str(tmp_path / f"cache-{i}"), i, start, results))
               for i in range(8)]
    for editor in editors:
        editor.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in editors]
    for editor in editors:
        editor.join(30)
        assert editor.exitcode == 0
    results.close()
    commits = [commit for _, commit, _ in outcomes]
    assert max(attempts for _, _, attempts in outcomes) > 1, "the editors never raced"
    log = gitutil.log(remote)
    assert len(log) == 9 and len(set(commits)) == 8
    subjects = sorted(line.split(" ", 1)[1] for line in log[:-1])
    assert subjects == sorted(f"editor {i}" for i in range(8))
    for i in range(8):
        assert gitutil.show(remote, f"editor-{i}.yaml") == f"editor: {i}"
    # linear history: every commit has one parent, nothing was forced away
    assert gitutil.git("--git-dir", str(remote), "rev-list", "--min-parents=2", "main") == ""
