"""The installation's configuration repository (``GITOPS_REPO_URL``, ``GITOPS_BRANCH``).

Projects may live in repositories of their own (the Manager mirrors those), but the
folders the functions reconcile from live in the one repository of the installation:
``deployments/`` (the deployer), ``models/`` (the vLLM service), ``schedules/`` (the
evaluations). This module opens it with the installation's credentials and reads a
folder of one commit; writes go through :func:`gitops.commit.write` like every edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.auth import GitAuth
from gitops.commit import Author
from gitops.paths import SUBMODULE_MODE, SYMLINK_MODE
from gitops.repo import GitRepository
from vllmbench.errors import DependencyUnavailable
from vllmbench.logs import redact


@dataclass(frozen=True)
class Folder:
    """The files under one folder at one commit (path -> content), and what could not be read."""

    commit: str
    files: dict[str, bytes]
    skipped: dict[str, str]


def repository_url(settings: Any) -> str:
    """``GITOPS_REPO_URL``, or the embedded stack's local bare repository."""
    return settings.gitops_repo_url or str(Path(settings.data_dir) / "gitops.git")


def open_repository(settings: Any) -> GitRepository:
    """The installation repository's bare cache (no I/O until used)."""
    url = repository_url(settings)
    if not settings.gitops_repo_url and not (Path(url) / "HEAD").exists():
        raise DependencyUnavailable("git", "no configuration repository: set GITOPS_REPO_URL "
                                    "(make run creates a local one)")
    token = settings.github_token.get_secret_value() if settings.github_token else None
    redact(token)
    cache = settings.git_cache_dir or Path(settings.data_dir) / "git-cache"
    return GitRepository(url, settings.gitops_branch, cache_dir=cache, auth=GitAuth(token),
                         depth=settings.git_fetch_depth)


def author(settings: Any, name: str | None = None) -> Author:
    """The author of commits a function makes (``name`` e.g. "vllmbench-mlflow")."""
    return Author(name or settings.git_author_name, settings.git_author_email)


def head(repo: GitRepository) -> str:
    """Fetch the branch and return its head commit."""
    with repo.lock():
        return repo.fetch()


def read_folder(repo: GitRepository, commit: str, folder: str, *, max_bytes: int = 4 * 1024 * 1024,
                suffixes: tuple[str, ...] = (".yaml", ".yml")) -> Folder:
    """Every file under ``folder`` at ``commit`` whose name ends with one of ``suffixes``."""
    files: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    for path, entry in sorted(repo.list_tree(commit, folder.strip("/")).items()):
        if not path.lower().endswith(suffixes):
            continue
        if entry.mode == SYMLINK_MODE:
            skipped[path] = "a symbolic link: links are never followed"
        elif entry.mode == SUBMODULE_MODE or entry.type != "blob":
            skipped[path] = "not a file"
        elif (entry.size or 0) > max_bytes:
            skipped[path] = f"{entry.size} bytes, over the {max_bytes}-byte limit"
        else:
            files[path] = repo.read_blob(entry.sha)
    return Folder(commit, files, skipped)
