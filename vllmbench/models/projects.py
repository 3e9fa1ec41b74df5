"""Projects and their mirrored configuration files: one model per concept, shared by
the Manager's API, the store and the events."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from vllmbench.models.base import Strict

PROJECT_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
BRANCH = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"
CREDENTIALS = r"^(default|none|file:[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")
FileStatus = Literal["ok", "invalid", "binary", "too_large", "symlink", "submodule"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_repository(value: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        # git would take a newline as the end of a command line; NUL cannot reach git at all.
        raise ValueError("must not hold control characters (CR, LF, NUL, tab, ...)")
    if value.startswith(("https://", "http://", "ssh://", "file://")):
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise ValueError("is not a valid URL") from exc
        if parts.username is not None or parts.password is not None:
            # Never echo the value: it may hold a token.
            raise ValueError("must not carry credentials; name them in 'credentials' instead")
        if not parts.hostname and not value.startswith("file://"):
            raise ValueError("needs a host")
        return value
    if value.startswith("/") or _SCP_LIKE.match(value):
        return value
    raise ValueError("must be an https://, ssh://, file:// URL, user@host:path, or an absolute path")


def _check_branch(value: str | None) -> str | None:
    if value is not None and (".." in value or "//" in value or "@{" in value
                              or value.endswith(("/", ".lock", "."))):
        raise ValueError("is not a valid branch name")
    return value


class ProjectCreate(Strict):
    name: str = Field(pattern=PROJECT_NAME, description="Unique; also the project's id.")
    repository: str = Field(min_length=1, max_length=1000,
                            description="Clone URL (https, ssh, file) or a local path; no credentials.")
    branch: str = Field("main", pattern=BRANCH)
    root: str = Field("", max_length=500, description="Folder inside the repository; '' for all of it.")
    credentials: str = Field("default", pattern=CREDENTIALS,
                             description="'default' (the installation's token), 'none', or 'file:<name>'.")

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        return _check_repository(value)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return _check_branch(value) or value


class ProjectUpdate(Strict):
    repository: str | None = Field(None, min_length=1, max_length=1000)
    branch: str | None = Field(None, pattern=BRANCH)
    root: str | None = Field(None, max_length=500)
    credentials: str | None = Field(None, pattern=CREDENTIALS)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else _check_repository(value)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        return _check_branch(value)


class SyncCounts(Strict):
    files: int = Field(0, ge=0, description="Files in the snapshot after the sync.")
    added: int = 0
    modified: int = 0
    deleted: int = 0
    renamed: int = 0
    read: int = Field(0, description="Blobs read from git by this sync.")
    invalid: int = Field(0, description="Files that fail to parse or break their kind's schema.")
    binary: int = 0
    too_large: int = 0
    symlinks: int = 0


class SyncResult(Strict):
    project: str
    mode: Literal["full", "incremental", "unchanged"]
    commit: str
    previous_commit: str | None = None
    history_rewritten: bool | None = Field(
        False, description="The branch was force-pushed since the last sync (None: cannot tell).")
    generation: int
    counts: SyncCounts = Field(default_factory=SyncCounts)
    duration_ms: float = 0.0


class Project(Strict):
    id: str
    name: str
    repository: str
    branch: str
    root: str
    credentials: str
    created_at: dt.datetime
    updated_at: dt.datetime
    commit: str | None = Field(None, description="The commit of the current snapshot.")
    generation: int = Field(0, description="Snapshot generation readers see.")
    synced_at: dt.datetime | None = None
    last_sync: SyncResult | None = None
    last_error: str | None = None


class ConfigFile(Strict):
    """A configuration file in a project's current snapshot (metadata)."""

    path: str = Field(description="Relative to the project root.")
    repo_path: str
    kind: str
    sha: str = Field(description="Git blob sha; also the ETag.")
    size: int
    status: FileStatus
    problems: list[dict] = Field(default_factory=list)
    commit: str


class ConfigFileContent(ConfigFile):
    content: str | None = Field(None, description="The text; None for binary, too large or links.")
    target: str | None = Field(None, description="Where a symbolic link points (never followed).")


class FileQuery(Strict):
    kind: str | None = Field(None, max_length=50)
    folder: str | None = Field(None, max_length=500, description="Only files under this folder.")
    status: FileStatus | None = None
    limit: int = Field(1000, ge=1, le=10000)
    offset: int = Field(0, ge=0)


class FileWritten(Strict):
    path: str
    sha: str | None = Field(description="The new blob sha (None after a delete).")
    commit: str
    created_commit: bool = Field(description="False when the branch already held this content.")
    attempts: int
    sync: SyncResult


class PushedData(Strict):
    """Data of ``dev.vllmbench.gitops.pushed``."""

    repository: str
    aliases: list[str] = Field(default_factory=list)
    branch: str | None
    before: str = ""
    after: str = ""
    forced: bool = False
    deleted: bool = False
