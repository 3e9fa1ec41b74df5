"""Edit one configuration file of a project: validate, commit, push, re-sync."""

from __future__ import annotations

from typing import Any

from gitops.changes import FileEdit, blob_sha
from gitops.commit import Author, write
from gitops.mirror import GitOptions, open_repository, sync_project
from gitops.paths import confine, normalize_root
from gitops.snapshot import check_edit
from vllmbench.errors import NotFound
from vllmbench.models.projects import FileWritten
from vllmbench.store.projects import ProjectStore


def parse_if_match(header: str | None) -> str | None:
    """The blob sha of an ``If-Match`` header (``"<sha>"``, ``W/"<sha>"`` or ``*``)."""
    if header is None or not header.strip():
        return None
    value = header.strip().split(",")[0].strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def edit_file(db: Any, project_id: str, path: str, content: bytes | None, *, if_match: str | None,
              options: GitOptions, author: Author) -> FileWritten:
    """Write (``content``) or delete (``None``) ``path`` of the project as one commit."""
    project = ProjectStore(db).doc(project_id)
    root = normalize_root(project.get("root"))
    repo_path = confine(root, path)
    if content is not None:
        kind = check_edit(path=path, repo_path=repo_path, root=root, data=content,
                          max_bytes=options.max_file_bytes)
        message = f"Update {repo_path} ({kind}) in project {project_id}"
    else:
        message = f"Delete {repo_path} from project {project_id}"
    with open_repository(project, options) as repo:
        outcome = write(repo, [FileEdit(repo_path, content, if_match)], message=message, author=author,
                        retries=options.push_retries)
    if content is None and not outcome.created and if_match is None:
        # Nothing was there to delete (deleting is not a way to learn that a file exists).
        raise NotFound(f"no file {path!r} on branch {project['branch']} of project {project_id!r}")
    result = sync_project(db, project_id, options)
    return FileWritten(path=path, sha=None if content is None else blob_sha(content), commit=outcome.commit,
                       created_commit=outcome.created, attempts=outcome.attempts, sync=result)
