"""Writing desired state: one commit per logical change, pushed without force.

The commit is built without a work tree (a private index file, ``write-tree``,
``commit-tree``) on top of the fetched head. When the push is rejected because
the remote moved, the head is fetched again and the change is replayed on it
(:func:`gitops.changes.plan_replay` decides whether that is safe), with a bounded
number of tries and jittered exponential backoff. A file that changed differently
meanwhile is a :class:`~vllmbench.errors.Conflict` naming it; an edit that is
already on the new head is not committed twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from dataclasses import dataclass, field

from gitops.changes import FileEdit, plan_replay
from gitops.paths import SUBMODULE_MODE, SYMLINK_MODE, parents
from gitops.repo import GitRepository, PushRejected
from vllmbench.errors import RetryableError, UserError
from vllmbench.logs import get_logger, info

log = get_logger("vllmbench.gitops")
_ZERO = "0" * 40


@dataclass(frozen=True)
class Author:
    name: str = "vllmbench"
    email: str = "vllmbench@localhost"


@dataclass
class CommitResult:
    commit: str
    """The head after the change (the new commit, or the head that already held it)."""
    previous: str
    created: bool
    attempts: int
    files: list[str] = field(default_factory=list)


class BranchKeptMoving(RetryableError):
    code = "branch_busy"


def write(repo: GitRepository, edits: list[FileEdit], *, message: str, author: Author,
          retries: int = 6, backoff_s: float = 0.1) -> CommitResult:
    """Commit ``edits`` as one commit on ``repo.branch`` and push it (see module docstring)."""
    if not edits:
        raise UserError("a change needs at least one file")
    if len({edit.path for edit in edits}) != len(edits):
        raise UserError("a change names the same file twice")
    if not message.strip():
        raise UserError("a commit needs a message")
    with repo.lock():
        head = repo.fetch()
        _check_paths(repo, head, edits)
        base = _blobs(repo, head, edits)
        for attempt in range(1, retries + 1):
            todo = plan_replay(edits, base=base, head=base if attempt == 1 else _blobs(repo, head, edits))
            if not todo:
                info(log, "change already on the branch", repo=repo.public, commit=head, attempts=attempt)
                return CommitResult(head, head, False, attempt, [])
            commit = _commit(repo, head, todo, message=message, author=author)
            try:
                repo.push(commit)
            except PushRejected:
                if attempt == retries:
                    break
                time.sleep(backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random()))
                head = repo.fetch()
                _check_paths(repo, head, todo)
                continue
            info(log, "pushed commit", repo=repo.public, branch=repo.branch, commit=commit,
                 attempts=attempt, files=[edit.path for edit in todo])
            return CommitResult(commit, head, True, attempt, [edit.path for edit in todo])
    raise BranchKeptMoving(f"{repo.public} branch {repo.branch} kept moving: the push was rejected "
                           f"{retries} times; try again")


def _blobs(repo: GitRepository, commit: str, edits: list[FileEdit]) -> dict[str, str | None]:
    found = repo.entries(commit, [edit.path for edit in edits])
    return {edit.path: (found[edit.path].sha if edit.path in found else None) for edit in edits}


def _check_paths(repo: GitRepository, head: str, edits: list[FileEdit]) -> None:
    """Refuse edits through symbolic links, of folders, of submodules, or below a file."""
    wanted = sorted({p for edit in edits for p in [*parents(edit.path), edit.path]})
    found = repo.entries(head, wanted)
    for edit in edits:
        for folder in parents(edit.path):
            entry = found.get(folder)
            if entry is not None and entry.mode == SYMLINK_MODE:
                raise UserError(f"{edit.path}: {folder} is a symbolic link in the repository; "
                                "links are never followed")
            if entry is not None and entry.type != "tree":
                raise UserError(f"{edit.path}: {folder} is a file, not a folder")
        entry = found.get(edit.path)
        if entry is None:
            continue
        if entry.mode == SYMLINK_MODE:
            raise UserError(f"{edit.path} is a symbolic link in the repository; links are never "
                            "followed or edited")
        if entry.type == "tree":
            raise UserError(f"{edit.path} is a folder, not a file")
        if entry.mode == SUBMODULE_MODE:
            raise UserError(f"{edit.path} is a submodule")


def _commit(repo: GitRepository, head: str, edits: list[FileEdit], *, message: str, author: Author) -> str:
    lines = []
    for edit in edits:
        if edit.content is None:
            lines.append(f"0 {_ZERO}\t{edit.path}")
        else:
            lines.append(f"100644 {repo.store_blob(edit.content)}\t{edit.path}")
    fd, index_path = tempfile.mkstemp(prefix="index-", dir=repo.path)
    os.close(fd)
    os.unlink(index_path)  # git wants to create the index itself
    try:
        env = {"GIT_INDEX_FILE": index_path}
        repo.repo.git.read_tree(head, env=env)
        with tempfile.TemporaryFile() as stdin:
            stdin.write(("\x00".join(lines) + "\x00").encode())
            stdin.seek(0)
            repo.repo.git.update_index("-z", "--index-info", istream=stdin, env=env)
        tree = repo.repo.git.write_tree(env=env)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(index_path)
    stamp = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
             "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email}
    return repo.repo.git.commit_tree(tree, "-p", head, "-m", message, env=stamp)
