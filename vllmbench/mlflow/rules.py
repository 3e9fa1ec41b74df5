"""Rules in Git: which registered models and versions become ModelServers. Pure.

A rule lives in ``mlflow/<name>.yaml`` (for the whole installation) or
``projects/<p>/mlflow/<name>.yaml`` (a project's; its benchmark defaults to that
project). Each registered model follows one rule: the first enabled one, in path
order, whose ``models`` match its name; a later rule that matches too is reported as
shadowed. An invalid rule file is reported with its problems and skipped; the others
still apply.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from vllmbench.models.mlflow import MlflowRule, ModelVersionRecord

RULE_PATH = re.compile(r"^(?:mlflow|projects/(?P<project>[^/]+)/mlflow)/(?P<name>[^/]+)\.ya?ml$")


@dataclass(frozen=True)
class LoadedRule:
    path: str
    rule: MlflowRule
    project: str | None = None

    @property
    def name(self) -> str:
        return self.rule.name or posixpath.splitext(posixpath.basename(self.path))[0]

    @property
    def benchmark_project(self) -> str | None:
        benchmark = self.rule.benchmark
        return (benchmark.project if benchmark and benchmark.project else None) or self.project


@dataclass
class RuleSet:
    rules: list[LoadedRule] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    commit: str | None = None

    @property
    def fingerprint(self) -> str:
        """Changes whenever a rule does: then every followed version is looked at again."""
        text = "\n".join(f"{r.path}\n{r.rule.model_dump_json()}" for r in self.rules)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def for_model(self, model: str) -> LoadedRule | None:
        for loaded in self.rules:
            if loaded.rule.enabled and loaded.rule.follows(model):
                return loaded
        return None

    def shadowed(self, model: str) -> list[str]:
        """Rule files that match ``model`` too but do not apply (the first one wins)."""
        matching = [r.path for r in self.rules if r.rule.enabled and r.rule.follows(model)]
        return matching[1:]

    def exact_names(self) -> list[str]:
        return sorted({p for r in self.rules if r.rule.enabled for p in r.rule.models if not _is_pattern(p)})

    def patterns(self) -> list[str]:
        return sorted({p for r in self.rules if r.rule.enabled for p in r.rule.models if _is_pattern(p)})


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def like_prefix(pattern: str) -> str:
    """A ``LIKE`` filter that finds every name the glob ``pattern`` may match (a superset)."""
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?["), default=len(pattern))
    return pattern[:cut] + "%"


def is_rule_path(path: str) -> bool:
    return bool(RULE_PATH.fullmatch(path))


def load_rules(files: dict[str, str], *, commit: str | None = None) -> RuleSet:
    """Parse rule files (path -> text); invalid ones become problems naming file and field."""
    from gitops import kinds
    from gitops.yamldoc import check_documents

    found = RuleSet(commit=commit)
    for path in sorted(files):
        match = RULE_PATH.fullmatch(path)
        if not match:
            continue
        documents, problem = check_documents(files[path], path=path)
        if problem is not None:
            found.problems.append(problem.to_detail())
            continue
        issues = kinds.problems("mlflow_rule", documents, path=path)
        if issues:
            found.problems.extend(issues)
            continue
        found.rules.append(LoadedRule(path, MlflowRule.model_validate(documents[0]), match["project"]))
    return found


def selects(loaded: LoadedRule, record: ModelVersionRecord) -> str | None:
    """Why the rule does not take this version, or None when it does."""
    chosen = loaded.rule.versions
    if record.status != "READY":
        return f"its registration is {record.status}"
    if record.version < chosen.min_version:
        return f"the rule starts at version {chosen.min_version}"
    if record.stage == "Archived" and not chosen.include_archived:
        return "it is archived (stage Archived) and the rule does not include archived versions"
    if chosen.stages and record.stage not in chosen.stages:
        return f"its stage is {record.stage}, not one of {', '.join(chosen.stages)}"
    for key, value in chosen.tags.items():
        if key not in record.tags:
            return f"it has no tag {key!r}"
        if value != "*" and record.tags[key] != value:
            return f"its tag {key!r} is {record.tags[key]!r}, not {value!r}"
    if chosen.aliases and not set(chosen.aliases) & set(record.aliases):
        return f"it holds none of the aliases {', '.join(chosen.aliases)}"
    return None
