"""Sync into a real MongoDB-wire server (FerretDB) from real git remotes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from gitops.mirror import GitOptions, sync_project
from gitops.webhook import normalize_repo_url
from tests.integration.gitops import gitutil
from tests.integration.gitops.gitutil import Person, make_remote
from vllmbench.errors import DependencyUnavailable
from vllmbench.models.projects import FileQuery, ProjectCreate
from vllmbench.store import config_files, projects
from vllmbench.store.config_files import ConfigFileStore
from vllmbench.store.projects import ProjectStore

BENCH = "load: {mode: rate, rate_rps: 1}\n"


@pytest.fixture
def db(mongo_url: str, database_name: str) -> Any:
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    database = client[database_name]
    projects.ensure_indexes(database)
    config_files.ensure_indexes(database)
    yield database
    client.drop_database(database_name)
    client.close()


def _project(db: Any, remote: Path, *, root: str = "conf", name: str = "p") -> str:
    body = ProjectCreate(name=name, repository=str(remote), root=root, credentials="none")
    ProjectStore(db).create(body, repo_key=normalize_repo_url(str(remote)), root=root)
    return name


def _files(db: Any, project: str, **query: Any) -> dict[str, Any]:
    generation = ProjectStore(db).doc(project)["generation"]
    return {f.path: f for f in ConfigFileStore(db).list(project, generation, FileQuery(**query))}


def _options(tmp_path: Path, **kwargs: Any) -> GitOptions:
    return GitOptions(cache_dir=tmp_path / "cache", credentials_dir=tmp_path / "creds", **kwargs)


def test_first_then_incremental_sync_with_renames_deletes_and_bad_files(db: Any, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {
        "conf/benchmarks/a.yaml": BENCH, "conf/benchmarks/b.yaml": BENCH, "conf/project.yaml": "name: p\n",
        "conf/notes.txt": "hello\n", "outside/x.yaml": "x: 1\n"})
    options = _options(tmp_path)
    first = sync_project(db, "p" if _project(db, remote) else "", options)
    assert (first.mode, first.counts.files, first.counts.added, first.generation) == ("full", 4, 4, 1)
    assert set(_files(db, "p")) == {"benchmarks/a.yaml", "benchmarks/b.yaml", "project.yaml", "notes.txt"}

    person = Person(remote, tmp_path / "person")
    big = ("data: " + "x" * 3_000_000 + "\n")
    person.commit({"conf/benchmarks/b.yaml": None, "conf/benchmarks/c.yaml": BENCH.replace("1}", "1} ") + "\n",
                   "conf/project.yaml": "name: p\ndescription: edited\n", "conf/bad.yaml": "a: [1, 2\nb: 3\n",
                   "conf/wrong.yaml": "x: 1\n", "conf/benchmarks/typo.yaml": "lod: {}\n", "conf/big.yaml": big,
                   "conf/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary", "outside/x.yaml": "x: 2\n"}, "many changes")
    person.commit({"conf/moved.txt": (tmp_path / "person" / "conf" / "notes.txt").read_text(),
                   "conf/notes.txt": None}, "rename")
    second = sync_project(db, "p", options)
    counts = second.counts
    assert second.mode == "incremental" and not second.history_rewritten
    assert (counts.added, counts.modified, counts.deleted, counts.renamed) == (6, 1, 1, 1)
    assert counts.read == 8 and counts.invalid == 2 and counts.binary == 1
    files = _files(db, "p")
    assert counts.files == len(files) == 9
    assert files["bad.yaml"].status == "invalid" and "bad.yaml:2:" in files["bad.yaml"].problems[0]["msg"]
    assert files["benchmarks/typo.yaml"].status == "invalid"
    assert files["logo.png"].status == "binary" and files["big.yaml"].size > 3_000_000
    content = ConfigFileStore(db).get("p", second.generation, "big.yaml")
    assert content.status == "ok" and len(content.content or "") == len(big)
    assert "moved.txt" in files and "notes.txt" not in files
    assert set(_files(db, "p", kind="benchmark")) == {"benchmarks/a.yaml", "benchmarks/c.yaml", "benchmarks/typo.yaml"}
    assert set(_files(db, "p", folder="benchmarks", status="invalid")) == {"benchmarks/typo.yaml"}
    # outside the root: never mirrored
    assert not any(path.startswith("outside") for path in files)

    unchanged = sync_project(db, "p", options)
    assert unchanged.mode == "unchanged" and unchanged.generation == second.generation


def test_too_large_files_keep_metadata_only(db: Any, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"conf/huge.yaml": "a: " + "y" * 20_000 + "\n"})
    _project(db, remote)
    result = sync_project(db, "p", _options(tmp_path, max_file_bytes=10_000))
    assert result.counts.too_large == 1 and result.counts.read == 0
    found = ConfigFileStore(db).get("p", result.generation, "huge.yaml")
    assert found.status == "too_large" and found.content is None and "limit" in found.problems[0]["msg"]


def test_force_pushed_branch_and_fresh_cache(db: Any, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"conf/a.yaml": "a: 1\n", "conf/b.yaml": "b: 1\n"})
    _project(db, remote)
    options = _options(tmp_path)
    sync_project(db, "p", options)
    rewritten = Person(remote, tmp_path / "person").rewrite_history({"conf/a.yaml": "a: 1\n", "conf/c.yaml": "c: 1\n"},
                                                                    "rewritten")
    result = sync_project(db, "p", options)
    assert result.commit == rewritten and result.history_rewritten
    assert (result.counts.added, result.counts.deleted, result.counts.read) == (1, 1, 1)
    assert set(_files(db, "p")) == {"a.yaml", "c.yaml"}

    Person(remote, tmp_path / "person2").commit({"conf/d.yaml": "d: 1\n"}, "after")
    shutil.rmtree(tmp_path / "cache")  # a new instance of the function starts with no cache
    fresh = sync_project(db, "p", options)
    assert fresh.mode == "incremental" and (fresh.counts.added, fresh.counts.read) == (1, 1)
    assert set(_files(db, "p")) == {"a.yaml", "c.yaml", "d.yaml"}


def test_a_sync_failing_halfway_leaves_the_previous_snapshot(db: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    remote = make_remote(tmp_path / "r.git", {"conf/a.yaml": "a: 1\n", "conf/b.yaml": "b: 1\n"})
    _project(db, remote)
    options = _options(tmp_path)
    before = sync_project(db, "p", options)
    Person(remote, tmp_path / "person").commit({"conf/a.yaml": "a: 2\n", "conf/b.yaml": None, "conf/c.yaml": "c: 1\n"},
                                               "change")

    def database_gone(*args: Any, **kwargs: Any) -> None:
        raise DependencyUnavailable("mongodb", "connection lost")

    monkeypatch.setattr(ProjectStore, "switch", database_gone)
    with pytest.raises(DependencyUnavailable):
        sync_project(db, "p", options)
    store = ConfigFileStore(db)
    assert ProjectStore(db).doc("p")["commit"] == before.commit
    assert set(_files(db, "p")) == {"a.yaml", "b.yaml"}
    assert store.get("p", before.generation, "a.yaml").content == "a: 1\n"

    monkeypatch.undo()
    after = sync_project(db, "p", options)
    assert set(_files(db, "p")) == {"a.yaml", "c.yaml"}
    assert store.get("p", after.generation, "a.yaml").content == "a: 2\n"
    generations = {doc["valid_from"] for doc in db["config_files"].find({"project_id": "p"})}
    assert max(generations) == after.generation  # what the dead sync wrote was undone, not kept beside


def test_compaction_keeps_what_readers_see(db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gitops.mirror.COMPACT_MIN", 3)
    remote = make_remote(tmp_path / "r.git", {"conf/a.yaml": "a: 0\n", "conf/b.yaml": "b: 0\n"})
    _project(db, remote)
    options = _options(tmp_path)
    store = ConfigFileStore(db)
    sync_project(db, "p", options)
    person = Person(remote, tmp_path / "person")
    for i in range(1, 6):
        person.commit({"conf/a.yaml": f"a: {i}\n", "conf/b.yaml": None if i == 2 else f"b: {i}\n"}, f"c{i}")
        result = sync_project(db, "p", options)
        assert store.get("p", result.generation, "a.yaml").content == f"a: {i}\n"
        assert store.get("p", result.generation - 1, "a.yaml").content == f"a: {i - 1}\n"
    assert set(_files(db, "p")) == {"a.yaml", "b.yaml"}
    assert db["config_files"].count_documents({"project_id": "p"}) < 12  # 2 + 5 syncs x 2 versions, compacted


def test_unreachable_remote_leaves_the_snapshot(db: Any, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r.git", {"conf/a.yaml": "a: 1\n"})
    _project(db, remote)
    options = _options(tmp_path)
    before = sync_project(db, "p", options)
    shutil.move(str(remote), str(tmp_path / "elsewhere.git"))
    with pytest.raises(DependencyUnavailable, match="r.git"):
        sync_project(db, "p", options)
    doc = ProjectStore(db).doc("p")
    assert doc["commit"] == before.commit and "r.git" in doc["last_error"] and doc["sync_lease"] is None
    assert set(_files(db, "p")) == {"a.yaml"}


def test_thousands_of_files(db: Any, tmp_path: Path) -> None:
    files = {f"conf/benchmarks/b{i:04d}.yaml": BENCH.replace("1}", f"{i + 1}}}") for i in range(2000)}
    remote = make_remote(tmp_path / "r.git", files)
    _project(db, remote)
    options = _options(tmp_path)
    first = sync_project(db, "p", options)
    assert first.counts.files == 2000 and first.counts.invalid == 0
    Person(remote, tmp_path / "person").commit({"conf/benchmarks/b0007.yaml": BENCH}, "one")
    second = sync_project(db, "p", options)
    assert (second.counts.modified, second.counts.read, second.counts.files) == (1, 1, 2000)
    assert gitutil.head(remote) == second.commit
