"""The installation's GitOps repository as the MLflow service uses it: rules in, files out.

Rules are read at the branch head (``mlflow/*.yaml``, ``projects/*/mlflow/*.yaml``),
parsed once per head commit. Files are written through the one write path of the
project (:func:`gitops.commit.write`): one commit per change, built without a work
tree, pushed without force, replayed on the new head when another writer pushed
first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from gitops import auth
from gitops.changes import FileEdit
from gitops.commit import Author, CommitResult, write
from gitops.mirror import GitOptions
from gitops.repo import GitRepository
from vllmbench.errors import DependencyUnavailable
from vllmbench.mlflow.rules import RuleSet, is_rule_path, load_rules

AUTHOR = Author("vllmbench-mlflow", "vllmbench-mlflow@localhost")
MAX_RULE_BYTES = 256 * 1024
_cache_lock = threading.Lock()
_rules_by_head: dict[tuple[str, str], RuleSet] = {}


@dataclass
class ConfigRepository:
    repo: GitRepository
    push_retries: int = 6

    @classmethod
    def from_settings(cls, settings: Any) -> "ConfigRepository":
        if not settings.gitops_repo_url:
            raise DependencyUnavailable("git", "GITOPS_REPO_URL is not set: the MLflow service writes ModelServers "
                                               "to the installation's configuration repository")
        options = GitOptions.from_settings(settings)
        credentials = auth.resolve("default", default_token=options.default_token,
                                   credentials_dir=options.credentials_dir)
        repo = GitRepository(settings.gitops_repo_url, settings.gitops_branch, cache_dir=options.cache_dir,
                             auth=credentials, depth=options.depth)
        return cls(repo, push_retries=options.push_retries)

    @property
    def public(self) -> str:
        return self.repo.public

    def head(self) -> str:
        with self.repo.lock():
            return self.repo.fetch()

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
        for folder in ("mlflow", "projects"):
            for path, entry in self.repo.list_tree(head, folder).items():
                if entry.type != "blob" or not is_rule_path(path):
                    continue
                if (entry.size or 0) > MAX_RULE_BYTES:
                    problems.append({"loc": [path], "msg": f"{path} is over {MAX_RULE_BYTES} bytes; skipped",
                                     "expected": "a small rule file"})
                    continue
                texts[path] = self.repo.read_blob(entry.sha).decode("utf-8", "replace")
        found = load_rules(texts, commit=head)
        found.problems[:0] = problems
        with _cache_lock:
            _rules_by_head.clear()  # one head per repository is all that is ever read again
            _rules_by_head[key] = found
        return found

    def write(self, files: dict[str, bytes], *, message: str) -> CommitResult:
        edits = [FileEdit(path, content) for path, content in sorted(files.items())]
        return write(self.repo, edits, message=message, author=AUTHOR, retries=self.push_retries)

    def close(self) -> None:
        self.repo.close()
