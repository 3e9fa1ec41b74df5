"""The MLflow service's concepts: rules in Git, model versions as we saw them, and the
events in and out (``dev.vllmbench.model.version.registered``,
``dev.vllmbench.eval.completed``). One model per concept, shared by the API, the store
and the events."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from vllmbench.models.base import Open, Strict

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ALIAS = r"^[\w-]+$"  # MLflow's own rule for alias names (at most 255 characters)
# MLflow's stages, deprecated since 2.9 (aliases replace them) but still answered by every server.
Stage = Literal["None", "Staging", "Production", "Archived"]


# -- rules in Git: mlflow/<name>.yaml or projects/<p>/mlflow/<name>.yaml -----------------

class VersionSelector(Strict):
    """Which versions of a matching model follow the rule: every condition given must hold."""

    aliases: list[str] = Field(default_factory=list, description="The version holds one of these aliases.")
    tags: dict[str, str] = Field(default_factory=dict, description="The version has these tags ('*': any value).")
    stages: list[Stage] = Field(default_factory=list, description="Deprecated MLflow stages, e.g. [Production].")
    min_version: int = Field(1, ge=1, description="Skip older versions (e.g. those registered before the rule).")
    include_archived: bool = Field(False, description="Versions in the deprecated stage 'Archived' are skipped "
                                                      "unless this is true.")

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        return [_alias(a) for a in value]


class BenchmarkFollowUp(Strict):
    """What to benchmark a new version with, and what to do with the verdict."""

    enabled: bool = True
    project: str | None = Field(None, pattern=SLUG, description="Defaults to the project the rule lives in.")
    profile: str = Field(min_length=1, max_length=200, description="A benchmark profile of the project.")
    template: str | None = Field(None, max_length=200, description="The evaluation's job template (its default: ours).")
    baseline: str = Field("previous", pattern=r"^(previous|none|alias:[\w-]+|version:[1-9][0-9]{0,9})$", max_length=262,
                          description="'previous' (the last version written before it), 'alias:<name>', "
                                      "'version:<n>' or 'none'.")
    promote_alias: str | None = Field(None, pattern=ALIAS, max_length=255,
                                      description="Moved to the version on a 'better' or 'same' verdict.")


class MlflowRule(Strict):
    """``mlflow/<name>.yaml``: which registered models become ModelServers, and how."""

    name: str | None = Field(None, pattern=SLUG, description="Defaults to the file name.")
    description: str = Field("", max_length=2000)
    enabled: bool = True
    models: list[str] = Field(min_length=1, max_length=100,
                              description="Registered model names or glob patterns (llama-*), case-sensitive.")
    versions: VersionSelector = Field(default_factory=VersionSelector)
    follow_aliases: list[str] = Field(default_factory=list,
                                      description="Keep models/<ns>/<model>-<alias>.yaml on the version holding it.")
    namespace: str = Field("default", pattern=SLUG, description="The ModelServers' namespace (models/<ns>/).")
    server: dict[str, Any] = Field(default_factory=dict,
                                   description="The ModelServer template: string values are Jinja2 (sandboxed, "
                                               "strict); name and namespace are set by the rule.")
    helm_values: bool = Field(False, description="Also write the original service's Helm values "
                                                 "(helm-values/<ns>/<model>-v<N>.yaml).")
    benchmark: BenchmarkFollowUp | None = None

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item) > 256 or "/" in item or ":" in item:
                raise ValueError(f"{item!r} is not a registered model name or pattern (1-256 characters, "
                                 "no '/' or ':')")
        return value

    @field_validator("follow_aliases")
    @classmethod
    def _follow(cls, value: list[str]) -> list[str]:
        return [_alias(a) for a in value]

    @field_validator("server")
    @classmethod
    def _template(cls, value: dict[str, Any]) -> dict[str, Any]:
        from vllmbench.models.servers import ModelServerSpec

        for owned in ("name", "namespace"):
            if owned in value:
                raise ValueError(f"server.{owned} is set by the rule (<model>-v<N> in its namespace); remove it")
        unknown = sorted(set(value) - set(ModelServerSpec.model_fields))
        if unknown:
            raise ValueError(f"server.{unknown[0]} is not a field of a ModelServer (vllmbench/models/servers.py); "
                             f"known: {', '.join(sorted(set(ModelServerSpec.model_fields) - {'name', 'namespace'}))}")
        for where, text in _strings(value, "server"):
            problem = template_problem(text)
            if problem:
                raise ValueError(f"{where}: {problem}")
        return value

    @model_validator(mode="after")
    def _benchmark_alias(self) -> "MlflowRule":
        if self.benchmark and self.benchmark.promote_alias and self.benchmark.promote_alias in self.versions.aliases:
            raise ValueError(f"benchmark.promote_alias {self.benchmark.promote_alias!r} is also in versions.aliases: "
                             "a version would be chosen by the alias that its own verdict moves")
        return self

    def follows(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


def _alias(value: str) -> str:
    reserved = value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value)
    if not re.fullmatch(ALIAS, value) or len(value) > 255 or reserved:
        raise ValueError(f"{value!r} is not an MLflow alias (letters, digits, '_' and '-'; not 'latest' or v<N>)")
    return value


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _strings(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _strings(item, f"{where}[{i}]")]
    return []


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a Jinja2 template, or None."""
    if "{" not in text:
        return None
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment().parse(text)
    except TemplateSyntaxError as exc:
        return f"template line {exc.lineno}: {exc.message}"
    return None


# -- what we saw in the registry ----------------------------------------------------------

class RunSummary(Strict):
    run_id: str
    experiment_id: str | None = None
    run_name: str | None = None
    status: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelVersionRecord(Strict):
    """One registered model version as the MLflow service saw it, and what it wrote for it."""

    model: str
    version: int
    source: str = ""
    run_id: str | None = None
    run_link: str | None = None
    status: str = "READY"
    stage: str = "None"
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    run: RunSummary | None = None
    rules: list[str] = Field(default_factory=list, description="The rule files that follow this version.")
    server: str | None = Field(None, description="Its ModelServer, <namespace>/<name>.")
    files: dict[str, str] = Field(default_factory=dict, description="Path in Git -> blob sha we wrote.")
    commit: str | None = None
    written_at: dt.datetime | None = None
    refused: str | None = Field(None, description="Why nothing could be written for it (a problem to fix).")
    skipped: str | None = Field(None, description="Why its rule does not take it.")
    benchmark: dict[str, Any] | None = None
    writeback: dict[str, Any] | None = None
    seen_at: dt.datetime | None = None


class RegisteredModelRecord(Strict):
    name: str
    k8s_name: str | None = None
    refused: str | None = None
    cursor: int = Field(0, description="Every version up to this one has been seen.")
    resynced_to: int = Field(0, description="How far the current full pass has read this model again.")
    resync_cycle: str | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    rules: list[str] = Field(default_factory=list)
    seen_at: dt.datetime | None = None


class VersionsQuery(Strict):
    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(None, ge=1, description="Versions numbered below this (the next page).")


class PollRequest(Strict):
    model: str | None = Field(None, min_length=1, max_length=256, description="Poll this registered model only.")
    full: bool = Field(False, description="Re-read every version of the followed models (tags, stages, "
                                          "descriptions), not only the new ones.")


# -- events ----------------------------------------------------------------------------

class VersionRegistered(Strict):
    """``dev.vllmbench.model.version.registered``: a new version's ModelServer is in Git."""

    model: str
    version: int
    source: str
    run_id: str | None = None
    server: str = Field(description="<namespace>/<name> of the ModelServer.")
    path: str
    commit: str
    rule: str
    benchmark: dict[str, Any] | None = Field(None, description="project, profile, template, baseline_server, "
                                                               "promote_alias, labels: what to evaluate it with.")


class EvalVerdict(Open):
    """The verdict an evaluation carries (``vllmbench.evals.verdict.judge``)."""

    verdict: str | None = Field(None, description="better, same, worse, no_baseline or untrustworthy.")
    summary: str = ""
    baseline: str | None = Field(None, description="The baseline evaluation's id.")
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                               description="s<stage>:<metric> -> {n, mean, stddev, ci95} across repeats.")
    comparisons: list[dict[str, Any]] = Field(default_factory=list,
                                              description="{metric, current, baseline, change_percent, verdict, reason}.")
    untrustworthy_repeats: list[dict[str, Any]] = Field(default_factory=list)


class EvalCompleted(Open):
    """``dev.vllmbench.eval.completed`` as the evaluations emit it (vllmbench/evals/runner.py).
    Open: fields the evaluations add later are kept; those below are what the write-back reads."""

    evaluation: str = Field(min_length=1, max_length=200, validation_alias=AliasChoices("evaluation", "evaluation_id"))
    state: Literal["done", "failed", "timed_out", "cancelled"] = "done"
    reason: str | None = Field(None, max_length=4000)
    project: str | None = None
    benchmark: str | None = None
    server: str | None = Field(None, description="<namespace>/<name> of the ModelServer evaluated.")
    model: str | None = None
    run_ids: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    verdict: EvalVerdict | None = Field(None, description="Only when the evaluation is done.")

    @field_validator("server", mode="before")
    @classmethod
    def _server_ref(cls, value: Any) -> Any:
        """The evaluations send the server as ``{namespace, name, path, commit}``; ``ns/name`` is kept too."""
        if isinstance(value, dict):
            namespace, name = value.get("namespace"), value.get("name")
            return f"{namespace}/{name}" if isinstance(namespace, str) and isinstance(name, str) else None
        return value


class WebhookPayload(Open):
    """What MLflow posts to a registry webhook: ``{entity, action, timestamp, data}``."""

    entity: str
    action: str
    timestamp: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}".lower()
