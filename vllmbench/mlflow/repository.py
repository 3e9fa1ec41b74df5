"""The installation's configuration repository as the MLflow service uses it: rules in, files out.

It is opened like every function opens it (:mod:`gitops.installation`). Rules are read
at the branch head (``mlflow/*.yaml``, ``projects/*/mlflow/*.yaml``), parsed once per
head commit. Files are written through the one write path of the project
(:func:`gitops.commit.write`): one commit per change, built without a work tree, pushed
without force, replayed on the new head when another writer pushed first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from gitops import installation
from gitops.changes import FileEdit
from gitops.commit import Author, CommitResult, write
from gitops.paths import SUBMODULE_MODE, SYMLINK_MODE
from gitops.repo import GitRepository
from vllmbench.mlflow.rules import RuleSet, is_rule_path, load_rules

AUTHOR_NAME = "vllmbench-mlflow"
MAX_RULE_BYTES = 256 * 1024
_cache_lock = threading.Lock()
_rules_by_head: dict[tuple[str, str], RuleSet] = {}


@dataclass
class ConfigRepository:
    repo: GitRepository
    author: Author = Author(AUTHOR_NAME, "vllmbench@localhost")
    push_retries: int = 6
    url: str = ""  # as the settings name it, for dev.vllmbench.gitops.pushed

    @classmethod
    def from_settings(cls, settings: Any) -> "ConfigRepository":
        return cls(installation.open_repository(settings), installation.author(settings, AUTHOR_NAME),
                   push_retries=settings.git_push_retries, url=installation.repository_url(settings))

    @property
    def public(self) -> str:
        return self.repo.public

    def head(self) -> str:
        return installation.head(self.repo)

    def rules(self) -> RuleSet:
        """The rules at the branch head (parsed once per head commit)."""
        head = self.head()
        key = (self.repo.public, head)
        with _cache_lock:
            cached = _rules_by_head.get(key)
        if cached is not None:
            return cached
        texts: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for folder in ("mlflow", "projects"):  # only rule files are read, however big projects/ is
            for path, entry in self.repo.list_tree(head, folder).items():
                if not is_rule_path(path):
                    continue
                if entry.type != "blob" or entry.mode in (SYMLINK_MODE, SUBMODULE_MODE):
                    why = "a symbolic link: links are never followed" if entry.mode == SYMLINK_MODE else "not a file"
                elif (entry.size or 0) > MAX_RULE_BYTES:
                    why = f"{entry.size} bytes, over the {MAX_RULE_BYTES}-byte limit"
                else:
                    texts[path] = self.repo.read_blob(entry.sha).decode("utf-8", "replace")
                    continue
                problems.append({"loc": [path], "msg": f"{path}: {why}; skipped", "expected": "a rule file"})
        rules = load_rules(texts, commit=head)
        rules.problems[:0] = problems
        with _cache_lock:
            _rules_by_head.clear()  # one head per repository is all that is ever read again
            _rules_by_head[key] = rules
        return rules

    def write(self, files: dict[str, bytes], *, message: str) -> CommitResult:
        edits = [FileEdit(path, content) for path, content in sorted(files.items())]
        return write(self.repo, edits, message=message, author=self.author, retries=self.push_retries)

    def close(self) -> None:
        self.repo.close()
