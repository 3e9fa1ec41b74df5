"""The Manager's use cases that are not a sync or an edit: projects, file reads, fan-out syncs."""

from __future__ import annotations

import re
from typing import Any

from gitops import auth
from gitops.mirror import GitOptions, open_repository, source_key, sync_project
from gitops.paths import confine, normalize_root
from gitops.webhook import normalize_repo_url
from vllmbench.errors import (BadGateway, Conflict, DependencyUnavailable, NotFound, RetryableError,
                              ValidationFailed, VllmbenchError)
from vllmbench.logs import get_logger, info
from vllmbench.models.projects import ConfigFileContent, FileQuery, Project, ProjectCreate, ProjectUpdate, PushedData
from vllmbench.store.config_files import ConfigFileStore
from vllmbench.store.projects import ProjectStore

log = get_logger("vllmbench.gitops")


# What git says when the URL names no repository: the caller's mistake, not an outage.
_NO_REPOSITORY = re.compile(r"does not appear to be a git repository|repository .* not found|not found|"
                            r"could not resolve host|no such file or directory|not a git repository|"
                            r"unable to find remote helper|protocol .* is not supported", re.IGNORECASE)


def _check_reachable(project: dict[str, Any], options: GitOptions) -> None:
    """The repository answers and has the branch. A missing branch or a URL with no
    repository behind it is the caller's mistake (422 naming the field); a git server that
    does not answer is 502 (retry later, or check the URL)."""
    with open_repository(project, options) as repo:
        try:
            repo.remote_head()
        except NotFound as exc:
            raise ValidationFailed(exc.message, details=[{"loc": "body.branch", "msg": exc.message,
                                                          "type": "branch_not_found",
                                                          "expected": "an existing branch"}]) from exc
        except DependencyUnavailable as exc:
            if exc.dependency != "git":
                raise
            public = auth.public_url(project["repository"])
            # git's whole answer (the message keeps only its last line); only the matched words are shown
            said = f"{getattr(exc.__cause__, 'stderr', '')}\n{exc.message}"
            found = _NO_REPOSITORY.search(said)
            if found:
                message = f"no git repository can be read at {public} (git: {found.group(0).lower()}); check the URL"
                raise ValidationFailed(message, details=[{"loc": "body.repository", "msg": message,
                                                          "type": "repository_not_found",
                                                          "expected": "the clone URL of an existing repository"}]) from exc
            raise BadGateway(f"the git server of {public} did not answer ({exc.message.split(': ', 2)[-1]}); "
                             "check the URL, or retry if the server is down") from exc


def create_project(db: Any, body: ProjectCreate, options: GitOptions) -> Project:
    root = normalize_root(body.root)
    auth.check_reference(body.credentials)
    store = ProjectStore(db)
    try:
        store.doc(body.name)
    except NotFound:
        pass
    else:
        raise Conflict(f"project {body.name!r} exists already; choose another name or PATCH it")
    _check_reachable({**body.model_dump(), "root": root}, options)
    project = store.create(body, repo_key=normalize_repo_url(body.repository), root=root)
    info(log, "project created", project=project.id, repository=auth.public_url(body.repository),
         branch=body.branch)
    return project


def update_project(db: Any, project_id: str, body: ProjectUpdate, options: GitOptions) -> Project:
    store = ProjectStore(db)
    current = store.doc(project_id)
    changes = body.model_dump(exclude_none=True)
    if "root" in changes:
        changes["root"] = normalize_root(changes["root"])
    if "credentials" in changes:
        auth.check_reference(changes["credentials"])
    merged = {**current, **changes}
    if source_key(merged) != source_key(current) or "credentials" in changes:
        _check_reachable(merged, options)
    if "repository" in changes:
        changes["repo_key"] = normalize_repo_url(changes["repository"])
    project = store.update(project_id, changes)
    info(log, "project updated", project=project_id, fields=sorted(changes))
    return project


def delete_project(db: Any, project_id: str) -> None:
    ProjectStore(db).delete(project_id)
    ConfigFileStore(db).delete_project(project_id)
    info(log, "project deleted", project=project_id)


def check_git(options: GitOptions) -> None:
    """Readiness: git runs and the cache folder is writable."""
    import shutil
    import subprocess

    from vllmbench.errors import DependencyUnavailable

    if shutil.which("git") is None:
        raise DependencyUnavailable("git", "the git executable is not on PATH")
    try:
        options.cache_dir.mkdir(parents=True, exist_ok=True)
        probe = options.cache_dir / ".ready"
        probe.write_text("ok")
        probe.unlink()
        subprocess.run(["git", "--version"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DependencyUnavailable("git", f"cannot use git or the cache {options.cache_dir}: {exc}") from exc


def list_files(db: Any, project_id: str, query: FileQuery) -> dict[str, Any]:
    project = ProjectStore(db).doc(project_id)
    generation = project.get("generation") or 0
    files = ConfigFileStore(db).list(project_id, generation, query)
    return {"project": project_id, "commit": project.get("commit"), "generation": generation,
            "count": len(files), "files": files}


def get_file(db: Any, project_id: str, path: str) -> ConfigFileContent:
    project = ProjectStore(db).doc(project_id)
    confine(normalize_root(project.get("root")), path)  # refuses '..', absolute paths, ...
    return ConfigFileContent.model_validate(
        ConfigFileStore(db).get(project_id, project.get("generation") or 0, path.strip("/")).model_dump())


def sync_pushed(db: Any, data: PushedData, options: GitOptions) -> dict[str, Any]:
    """Sync the projects that follow the pushed repository and branch."""
    if data.branch is None:
        return {"synced": [], "failed": {}, "reason": "not a branch push"}
    keys = {normalize_repo_url(url) for url in [data.repository, *data.aliases]}
    outcome = _sync_each(db, ProjectStore(db).ids_for(keys, data.branch), options)
    retry = {pid: message for pid, (message, retryable) in outcome.pop("errors").items() if retryable}
    if retry:
        # Not 2xx: the broker redelivers, and the projects that did sync answer "unchanged" then.
        raise RetryableError("sync after the push failed for " + "; ".join(f"{p}: {m}" for p, m in retry.items()))
    return outcome


def sync_all(db: Any, options: GitOptions) -> dict[str, Any]:
    """The periodic safety net: failures are reported and logged; the next tick tries again."""
    outcome = _sync_each(db, ProjectStore(db).all_ids(), options)
    outcome.pop("errors")
    return outcome


def _sync_each(db: Any, project_ids: list[str], options: GitOptions) -> dict[str, Any]:
    """One project failing does not stop the others; failures are reported and logged."""
    synced: dict[str, str] = {}
    failed: dict[str, str] = {}
    errors: dict[str, tuple[str, bool]] = {}
    for project_id in project_ids:
        try:
            result = sync_project(db, project_id, options)
            synced[project_id] = result.commit
        except VllmbenchError as exc:
            failed[project_id] = exc.message
            errors[project_id] = (exc.message, isinstance(exc, RetryableError))
            log.warning("sync of project %s failed: %s", project_id, exc.message)
    return {"synced": synced, "failed": failed, "errors": errors}
