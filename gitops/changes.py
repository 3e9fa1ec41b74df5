"""Change planning: pure functions over blob shas, no git and no store.

Two questions are answered here:

- *Sync*: what changed between the last synced tree and the new head
  (:func:`parse_raw_diff` for git's own diff, :func:`diff_entries` when only
  the stored snapshot is known)?
- *Write*: may an edit prepared on one head be replayed on another
  (:func:`plan_replay`)? A file that moved on in between is a conflict, unless it
  already holds what we want (then the edit landed already and is skipped, which
  is what makes a retried push land exactly once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vllmbench.errors import Conflict, PreconditionFailed

Status = Literal["added", "modified", "deleted", "renamed"]
_CODES: dict[str, Status] = {"A": "added", "M": "modified", "T": "modified", "D": "deleted", "R": "renamed",
                             "C": "added"}


def blob_sha(data: bytes) -> str:
    """The git (SHA-1) object id of a blob holding ``data``."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Change:
    """One changed path; ``sha`` and ``mode`` describe the new side (None when deleted)."""

    status: Status
    path: str
    old_path: str | None = None
    sha: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class FileEdit:
    """One file of a change: new content, or ``None`` to delete it.

    ``if_match`` is the blob sha the file must have on the head the edit lands on
    (``"*"``: the file must exist); a mismatch is a 412 and nothing is written.
    """

    path: str
    content: bytes | None
    if_match: str | None = None

    @property
    def desired_sha(self) -> str | None:
        return None if self.content is None else blob_sha(self.content)


def parse_raw_diff(output: str) -> list[Change]:
    """Parse ``git diff-tree -r -M --raw -z`` output (``:oldmode newmode old new status``)."""
    fields = output.split("\x00")
    changes: list[Change] = []
    i = 0
    while i < len(fields):
        header = fields[i]
        if not header.startswith(":"):
            i += 1
            continue
        _old_mode, new_mode, _old_sha, new_sha, code = header[1:].split(" ")
        status = _CODES.get(code[0])
        if status is None:
            raise ValueError(f"unknown git status {code!r}")
        if code[0] in "RC":
            old, new = fields[i + 1], fields[i + 2]
            changes.append(Change("renamed" if code[0] == "R" else "added", new,
                                  old if code[0] == "R" else None, new_sha, new_mode))
            i += 3
        elif status == "deleted":
            changes.append(Change(status, fields[i + 1]))
            i += 2
        else:
            changes.append(Change(status, fields[i + 1], None, new_sha, new_mode))
            i += 2
    return changes


def diff_entries(old: Mapping[str, str], new: Mapping[str, tuple[str, str]]) -> list[Change]:
    """Changes from ``old`` (path -> blob sha) to ``new`` (path -> (blob sha, mode)).

    A file that moved with its content unchanged is a rename.
    """
    added = [path for path in new if path not in old]
    deleted = [path for path in old if path not in new]
    changes = [Change("modified", path, None, *new[path]) for path in new
               if path in old and old[path] != new[path][0]]
    gone_by_sha: dict[str, list[str]] = {}
    for path in deleted:
        gone_by_sha.setdefault(old[path], []).append(path)
    for path in added:
        candidates = gone_by_sha.get(new[path][0])
        if candidates:
            changes.append(Change("renamed", path, candidates.pop(0), *new[path]))
        else:
            changes.append(Change("added", path, None, *new[path]))
    changes.extend(Change("deleted", path) for paths in gone_by_sha.values() for path in paths)
    return changes


def plan_replay(
    edits: list[FileEdit], *, base: Mapping[str, str | None], head: Mapping[str, str | None]
) -> list[FileEdit]:
    """The edits still to apply on ``head``, given they were prepared on ``base``.

    ``base`` and ``head`` map each edited path to its blob sha there (None: absent);
    on the first try ``base`` is ``head``. ``if_match`` is checked against ``base``.
    Raises :class:`PreconditionFailed` for a failed ``if_match`` and :class:`Conflict`
    when a file changed differently on ``head``; both name the file.
    """
    todo: list[FileEdit] = []
    for edit in edits:
        before, current = base.get(edit.path), head.get(edit.path)
        if edit.if_match is not None:
            _check_precondition(edit, before)
        if current == edit.desired_sha:
            continue
        if current != before:
            if edit.if_match is not None:
                raise PreconditionFailed(
                    f"{edit.path} changed on the branch while the edit was pushed (now blob "
                    f"{_short(current)}); read it again to get its current ETag"
                )
            raise Conflict(
                f"{edit.path} changed on the branch meanwhile (now blob {_short(current)}, "
                f"the edit was made on {_short(before)}); fetch it again and redo the edit"
            )
        todo.append(edit)
    return todo


def _check_precondition(edit: FileEdit, current: str | None) -> None:
    if edit.if_match == "*":
        if current is None:
            raise PreconditionFailed(f"{edit.path} does not exist (If-Match: * needs an existing file)")
        return
    if current != edit.if_match:
        raise PreconditionFailed(
            f"{edit.path} is at blob {_short(current)}, not {_short(edit.if_match)} as If-Match requires; "
            "read it again to get its current ETag"
        )


def _short(sha: str | None) -> str:
    return "(absent)" if sha is None else sha[:12]
