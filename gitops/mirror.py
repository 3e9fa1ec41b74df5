"""Mirror a project's folder of its repository into the store, incrementally and atomically.

A sync is a list of small steps: take the project's sync lease, fetch, decide
what changed since the snapshot's commit (git's own tree diff when the old commit
is in the cache, else a comparison of blob shas with the stored snapshot), read
only the changed blobs, stage the new generation, switch the pointer, and drop what
no reader can see any more. Anything that fails before the switch leaves the previous snapshot
in place for readers; the next sync undoes the leftovers.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops import auth
from gitops.changes import Change, diff_entries
from gitops.paths import relative_to_root
from gitops.repo import GitRepository, TreeEntry
from gitops.snapshot import describe
from gitops.webhook import normalize_repo_url
from vllmbench.errors import VllmbenchError
from vllmbench.logs import bind, get_logger, info
from vllmbench.models.projects import SyncCounts, SyncResult
from vllmbench.store.config_files import ConfigFileStore
from vllmbench.store.projects import ProjectStore

log = get_logger("vllmbench.gitops")
# File versions written before old ones are compacted away (or a tenth of the files, if more).
COMPACT_MIN = 200


@dataclass(frozen=True)
class GitOptions:
    """What the Manager needs of the settings to reach repositories."""

    cache_dir: Path
    credentials_dir: Path
    default_token: str | None = None
    depth: int = 1
    push_retries: int = 6
    max_file_bytes: int = 4 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> "GitOptions":
        token = settings.github_token.get_secret_value() if settings.github_token else None
        return cls(cache_dir=settings.git_cache_dir or Path(settings.data_dir) / "git-cache",
                   credentials_dir=settings.git_credentials_dir, default_token=token,
                   depth=settings.git_fetch_depth, push_retries=settings.git_push_retries,
                   max_file_bytes=settings.git_max_file_bytes)


def open_repository(project: dict[str, Any], options: GitOptions) -> GitRepository:
    credentials = auth.resolve(project.get("credentials") or "default", default_token=options.default_token,
                               credentials_dir=options.credentials_dir)
    return GitRepository(project["repository"], project["branch"], cache_dir=options.cache_dir,
                         auth=credentials, depth=options.depth)


def source_key(project: dict[str, Any]) -> str:
    return f"{normalize_repo_url(project['repository'])}@{project['branch']}:{project.get('root') or ''}"


def sync_project(db: Any, project_id: str, options: GitOptions) -> SyncResult:
    projects, files = ProjectStore(db), ConfigFileStore(db)
    holder = uuid.uuid4().hex
    started = time.perf_counter()
    with bind(project=project_id):
        projects.acquire_sync(project_id, holder)
        try:
            project = projects.doc(project_id)
            with open_repository(project, options) as repo:
                try:
                    result = _sync(repo, project, projects, files, options, started)
                except VllmbenchError as exc:
                    projects.record_error(project_id, exc.message)
                    raise
        finally:
            projects.release_sync(project_id, holder)
    return result


def _sync(repo: GitRepository, project: dict[str, Any], projects: ProjectStore, files: ConfigFileStore,
          options: GitOptions, started: float) -> SyncResult:
    project_id, root = project["_id"], project.get("root") or ""
    generation, previous = project.get("generation") or 0, project.get("commit")
    with repo.lock():
        head = repo.fetch()
    same_source = project.get("source") == source_key(project)
    if previous == head and same_source:
        result = SyncResult(project=project_id, mode="unchanged", commit=head, previous_commit=previous,
                            generation=generation, duration_ms=_ms(started),
                            counts=SyncCounts(files=(project.get("last_sync") or {}).get("counts", {}).get("files", 0)))
        projects.touch_synced(project_id, result)
        return result

    if (project.get("pending") or 0) > generation:
        files.undo(project_id, generation)
    rewritten: bool | None = False
    if previous is None or not same_source:
        mode, full = "full", True
        changes = [Change("added", path, None, entry.sha, entry.mode)
                   for path, entry in repo.list_tree(head, root).items()]
    elif (changes := _diff(repo, previous, head, root)) is not None:
        mode, full = "incremental", False
        rewritten = not repo.is_ancestor(previous, head)
    else:  # the old commit is gone from the remote too: compare blob shas with the store
        mode, full = "incremental", False
        tree = {path: (entry.sha, entry.mode) for path, entry in repo.list_tree(head, root).items()}
        stored = {root + "/" + path if root else path: sha
                  for path, sha in files.current_shas(project_id, generation).items()}
        changes = diff_entries(stored, tree)
        rewritten = None

    counts = SyncCounts()
    upserts, removed = [], []
    for change in changes:
        setattr(counts, change.status, getattr(counts, change.status) + 1)
        if change.status in ("deleted", "renamed"):
            old = relative_to_root(root, change.old_path or change.path)
            if old is not None:
                removed.append(old)
        if change.status != "deleted":
            upserts.append(_document(repo, change, root=root, commit=head, options=options, counts=counts))

    new_generation = generation + 1
    fresh = {doc["path"] for doc in upserts}
    deleted = [path for path in removed if path not in fresh]
    if full and generation > 0:  # the source moved (PATCH): everything not in the new tree goes
        deleted = [path for path in files.open_paths(project_id, generation) if path not in fresh]
    projects.mark_pending(project_id, new_generation)
    files.stage(project_id, new_generation, upserts=upserts, deleted=deleted)
    previous_files = 0 if full else (project.get("last_sync") or {}).get("counts", {}).get("files", 0)
    counts.files = previous_files + counts.added - counts.deleted
    result = SyncResult(project=project_id, mode=mode, commit=head, previous_commit=previous,
                        history_rewritten=rewritten, generation=new_generation, counts=counts,
                        duration_ms=_ms(started))
    # versions written since the last compaction: each may have made an older one invisible
    garbage = 0 if generation == 0 else (project.get("garbage") or 0) + len(upserts) + len(deleted)
    compact = garbage > max(COMPACT_MIN, counts.files // 10)
    projects.switch(project_id, from_generation=generation, result=result, source=source_key(project),
                    garbage=0 if compact else garbage)
    if compact:
        info(log, "compacted file versions", project=project_id,
             deleted=files.compact(project_id, new_generation))
    info(log, "synced project", project=project_id, commit=head, mode=mode, generation=new_generation,
         history_rewritten=rewritten, **counts.model_dump(exclude={"files"}))
    return result


def _diff(repo: GitRepository, previous: str, head: str, root: str) -> list[Change] | None:
    """Git's own diff from the synced commit, fetching that commit when the cache lacks it."""
    for attempt in range(2):
        try:
            return repo.diff(previous, head, root)
        except VllmbenchError:
            if attempt or not repo.fetch_commit(previous):
                return None
    return None


def _document(repo: GitRepository, change: Change, *, root: str, commit: str, options: GitOptions,
              counts: SyncCounts) -> dict[str, Any]:
    sha, mode = change.sha or "", change.mode or "100644"
    path = relative_to_root(root, change.path) or change.path
    if mode == "160000":
        size, data = 0, None
    else:
        size = repo.blob_size(sha)
        data = repo.read_blob(sha) if size <= options.max_file_bytes else None
        if data is not None:
            counts.read += 1
    doc = describe(path=path, repo_path=change.path, root=root, sha=sha, mode=mode, size=size, data=data,
                   commit=commit, max_bytes=options.max_file_bytes)
    status = doc["status"]
    if status == "invalid":
        counts.invalid += 1
    elif status == "binary":
        counts.binary += 1
    elif status == "too_large":
        counts.too_large += 1
    elif status == "symlink":
        counts.symlinks += 1
    return doc


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


__all__ = ["GitOptions", "TreeEntry", "open_repository", "source_key", "sync_project"]
