"""The known kinds of desired-state files: where they live and what they must contain.

A file's kind comes from its path (the layout of DESIGN.md). Kinds with a schema
are validated on every edit (``PUT /projects/{id}/files/{path}``) and flagged by
sync when they fail; other YAML only has to parse. Schemas forbid unknown fields,
so a typo is an error instead of a silently ignored setting.

| kind | path | checked |
| --- | --- | --- |
| project | ``projects/<p>/project.yaml`` | :class:`ProjectSpec` |
| benchmark | ``projects/<p>/benchmarks/<name>.yaml`` | :class:`BenchmarkSpec` |
| template | ``projects/<p>/templates/<name>.yaml`` | a mapping |
| deployment | ``deployments/<ns>/<kind>-<name>.yaml`` | Kubernetes objects (apiVersion, kind, metadata.name) |
| model_server | ``models/<ns>/<server>.yaml`` | :class:`vllmbench.models.servers.ModelServerSpec` |
| schedule | ``schedules/<name>.yaml`` | :class:`vllmbench.models.evaluations.ScheduleSpec` |
| mlflow_rule | ``mlflow/<name>.yaml``, ``projects/<p>/mlflow/<name>.yaml`` | :class:`~vllmbench.models.mlflow.MlflowRule` |
| yaml / text | anything else | YAML parses / nothing |
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from vllmbench.errors import ValidationFailed
from vllmbench.models.base import Open, Strict
from vllmbench.models.evaluations import ScheduleSpec
from vllmbench.models.mlflow import MlflowRule
from vllmbench.models.results import Harness, LoadProfile, Slo
from vllmbench.models.servers import ModelServerSpec

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

_LAYOUT: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"projects/[^/]+/project\.ya?ml"), "project"),
    (re.compile(r"projects/[^/]+/benchmarks/.+\.ya?ml"), "benchmark"),
    (re.compile(r"projects/[^/]+/templates/.+\.ya?ml"), "template"),
    (re.compile(r"deployments/[^/]+/[^/]+\.ya?ml"), "deployment"),
    (re.compile(r"models/[^/]+/[^/]+\.ya?ml"), "model_server"),
    (re.compile(r"schedules/[^/]+\.ya?ml"), "schedule"),
    (re.compile(r"(projects/[^/]+/)?mlflow/[^/]+\.ya?ml"), "mlflow_rule"),
]
# A repository (or root folder) that holds one project keeps the project's files at its top.
_PROJECT_RELATIVE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"project\.ya?ml"), "project"),
    (re.compile(r"benchmarks/.+\.ya?ml"), "benchmark"),
    (re.compile(r"templates/.+\.ya?ml"), "template"),
    (re.compile(r"mlflow/[^/]+\.ya?ml"), "mlflow_rule"),
]


class ProjectSpec(Strict):
    """``project.yaml``: settings of one benchmarking project."""

    name: str = Field(pattern=SLUG, description="The project's name (lower case, digits, '-').")
    description: str = Field("", max_length=2000)
    owners: list[str] = Field(default_factory=list, description="People or teams to ask.")
    namespace: str | None = Field(None, pattern=SLUG, description="Kubernetes namespace of its jobs.")
    default_model: str | None = Field(None, max_length=300)
    labels: dict[str, str] = Field(default_factory=dict)


class VerdictPolicy(Strict):
    """How an evaluation of this profile is judged against its baseline."""

    threshold_percent: float = Field(5.0, gt=0, le=100, description="A change smaller than this is 'same'.")
    metrics: list[str] | None = Field(
        None, max_length=50, description="The metrics that decide (default: TTFT, ITL, TPOT and e2e p50 and p99, "
        "throughput, goodput, accuracy); tails (p99) are noisier and want more repeats.")


class AccuracySpec(Strict):
    """A profile's ``accuracy`` section: the lm-evaluation-harness tasks the ``lm-eval`` template runs."""

    tasks: list[str] = Field(min_length=1, max_length=100,
                             description="lm-eval task or group names, e.g. gsm8k, or tasks under include_path.")
    num_fewshot: int | None = Field(None, ge=0, le=100, description="Few-shot examples; default: each task's.")
    limit: int | None = Field(None, ge=1, description="Samples per task; default: every sample.")
    tokenizer_backend: Literal["none", "remote", "huggingface"] = Field(
        "none", description="none for generate-only tasks; remote (the server's /tokenize) or huggingface "
                            "for loglikelihood tasks (acc, acc_norm).")
    concurrency: int | None = Field(None, ge=1, le=1024, description="Requests in flight; default: the "
                                    "load's concurrency (1 for a rate load).")
    max_gen_toks: int | None = Field(None, ge=1, description="Output tokens per generation; default lm-eval's 256.")
    include_path: str | None = Field(None, max_length=500, description="Folder of custom task YAMLs in the harness "
                                     "container (an image or volume of yours).")

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: list[str]) -> list[str]:
        for task in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}", task):
                raise ValueError(f"task {task!r}: letters, digits, '_', '.', ':' and '-' only")
        return value


class BenchmarkSpec(Strict):
    """``benchmarks/<name>.yaml``: one benchmark profile (load, dataset, SLOs, accuracy tasks).

    The dataset is ``load.dataset`` (``synthetic``, ``sharegpt`` or a file name), as in
    the standardized result, so that a result shows the profile it ran.
    """

    name: str | None = Field(None, pattern=SLUG, description="Defaults to the file name.")
    description: str = Field("", max_length=2000)
    model: str | None = Field(None, max_length=300)
    server: str | None = Field(None, max_length=300, description="A ModelServer, as <namespace>/<server>.")
    load: LoadProfile
    sweep: list[LoadProfile] = Field(default_factory=list, description="Further load stages, run in order.")
    slo: Slo | None = None
    harness: Harness | None = None
    repeat: int = Field(1, ge=1, le=100)
    tags: list[str] = Field(default_factory=list)
    verdict: VerdictPolicy | None = Field(None, description="Threshold of the evaluations' verdicts.")
    accuracy: AccuracySpec | None = Field(None, description="Tasks of the lm-eval template (accuracy runs).")


class _Metadata(Open):
    name: str = Field(min_length=1, max_length=253)


class KubernetesObject(Open):
    """What the deployer needs of any object it applies; the rest is the cluster's business."""

    apiVersion: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    metadata: _Metadata


class Mapping(Open):
    """Any YAML mapping: the kind has no schema of its own yet."""


SCHEMAS: dict[str, type[BaseModel]] = {
    "project": ProjectSpec,
    "benchmark": BenchmarkSpec,
    "deployment": KubernetesObject,
    "template": Mapping,
    "model_server": ModelServerSpec,
    "schedule": ScheduleSpec,
    "mlflow_rule": MlflowRule,
}
SINGLE_DOCUMENT = {"project", "benchmark", "model_server", "mlflow_rule"}


def classify(repo_path: str, *, root: str = "") -> str:
    """The kind of a file from its path in the repository (``yaml`` or ``text`` when unknown)."""
    for pattern, kind in _LAYOUT:
        if pattern.fullmatch(repo_path):
            return kind
    relative = repo_path[len(root) + 1:] if root and repo_path.startswith(root + "/") else repo_path
    for pattern, kind in _PROJECT_RELATIVE:
        if pattern.fullmatch(relative):
            return kind
    return "yaml" if repo_path.lower().endswith((".yaml", ".yml")) else "text"


def problems(kind: str, documents: list[Any], *, path: str) -> list[dict[str, Any]]:
    """Every schema problem of ``documents`` as ``{"loc", "msg", "expected"}``; empty when valid."""
    schema = SCHEMAS.get(kind)
    if schema is None:
        return []
    found: list[dict[str, Any]] = []
    if kind in SINGLE_DOCUMENT and len(documents) != 1:
        found.append({"loc": [path], "msg": f"{path}: a {kind} file holds exactly one document, "
                      f"found {len(documents)}", "expected": f"one {schema.__name__} mapping"})
        return found
    for index, document in enumerate(documents):
        prefix: list[Any] = [path] if len(documents) == 1 else [path, f"document {index + 1}"]
        if not isinstance(document, dict):
            found.append({"loc": prefix, "msg": f"{path}: a {kind} document must be a mapping, "
                          f"not {type(document).__name__}", "expected": schema.__name__})
            continue
        try:
            schema.model_validate(document)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                found.append({"loc": prefix + list(error["loc"]), "msg": error["msg"],
                              "expected": schema.__name__})
    return found


def validate(kind: str, documents: list[Any], *, path: str) -> None:
    """Raise :class:`ValidationFailed` naming the file when ``documents`` break their schema."""
    found = problems(kind, documents, path=path)
    if found:
        fields = ", ".join(".".join(str(p) for p in d["loc"][1:]) or d["msg"] for d in found[:5])
        raise ValidationFailed(f"{path} is not a valid {kind}: {fields}", details=found)


def known_kinds() -> list[str]:
    return sorted(SCHEMAS)
