"""The files a model version becomes in Git: pure, values in and bytes out.

- ``models/<ns>/<model>-v<N>.yaml``: the ModelServer, rendered from the rule's
  template. Each string value of the template is a Jinja2 template (sandboxed, strict:
  an unknown name is an error naming the field). Values are rendered into the mapping,
  never into YAML text, so a tag's value cannot inject YAML; the mapping is then read
  by the ModelServer schema (``gitops.kinds``), and what it read is what is written:
  ``"4096"`` from a template becomes the number a ``max_model_len`` is.
- ``models/<ns>/<model>-<alias>.yaml``: the same for the version that holds an alias
  the rule follows. Aliases are in no other file, so an alias moving rewrites this
  file only.
- ``helm-values/<ns>/<model>-v<N>.yaml``: the original service's Helm values
  (``global.experimentId``, ``runid``, ``timestamp``) when the rule asks for them.

Every file starts with a comment naming where it came from, including the version's
tags (what people set; never ``vllmbench.*``), so a change in MLflow is a change here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from gitops import kinds
from vllmbench.errors import ValidationFailed
from vllmbench.mlflow import names
from vllmbench.mlflow.records import user_tags
from vllmbench.mlflow.rules import LoadedRule
from vllmbench.models.mlflow import ModelVersionRecord

AUTHOR = "vllmbench-mlflow"


def version_path(namespace: str, model: str, version: int) -> str:
    return f"models/{namespace}/{names.version_server(model, version)}.yaml"


def alias_path(namespace: str, model: str, alias: str) -> str:
    return f"models/{namespace}/{names.alias_server(model, alias)}.yaml"


def values_path(namespace: str, model: str, version: int) -> str:
    return f"helm-values/{namespace}/{names.version_server(model, version)}.yaml"


def context(loaded: LoadedRule, record: ModelVersionRecord, *, server_name: str,
            alias: str | None = None) -> dict[str, Any]:
    """What a template may use (documented in docs/mlflow.md). No aliases but ``alias``:
    an alias moving must not change the version's own file."""
    run = record.run
    return {
        "model": {"name": record.model, "k8s_name": names.model_part(record.model)},
        "version": {"number": record.version, "source": record.source, "run_id": record.run_id or "",
                    "stage": record.stage, "status": record.status, "description": record.description,
                    "tags": user_tags(record.tags),
                    "created_at": record.created_at.isoformat() if record.created_at else ""},
        "run": {"id": run.run_id, "experiment_id": run.experiment_id or "", "name": run.run_name or "",
                "params": dict(run.params), "metrics": dict(run.metrics)} if run else
               {"id": "", "experiment_id": "", "name": "", "params": {}, "metrics": {}},
        "server_name": server_name,
        "namespace": loaded.rule.namespace,
        "alias": alias,
        "rule": loaded.name,
    }


def render_server(loaded: LoadedRule, record: ModelVersionRecord, *, server_name: str,
                  alias: str | None = None) -> dict[str, Any]:
    """The ModelServer mapping; :class:`ValidationFailed` naming the field when a value fails."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    values = context(loaded, record, server_name=server_name, alias=alias)

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, f"{where}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if not isinstance(value, str) or "{" not in value:
            return value
        try:
            text = env.from_string(value).render(values)
        except TemplateError as exc:
            raise ValidationFailed(f"{loaded.path}: {where} does not render for {record.model!r} version "
                                   f"{record.version}: {exc}",
                                   details=[{"loc": [loaded.path, *where.split(".")], "msg": str(exc),
                                             "expected": "a template whose names exist (docs/mlflow.md)"}]) from exc
        return text

    rendered: dict[str, Any] = {"name": server_name, "namespace": loaded.rule.namespace}
    rendered.update(walk(loaded.rule.server, "server"))
    rendered.setdefault("model_name", record.source)
    return rendered


def typed(document: dict[str, Any], *, path: str) -> dict[str, Any]:
    """``document`` as the ModelServer schema reads it; :class:`ValidationFailed` naming the
    file and field when it does not."""
    kinds.validate("model_server", [document], path=path)
    schema = kinds.SCHEMAS["model_server"]
    return schema.model_validate(document).model_dump(mode="json", exclude_unset=True)


def _comment(text: str, limit: int = 200) -> str:
    """One line of a YAML comment: no line breaks (they would end the comment), bounded."""
    flat = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def header(loaded: LoadedRule, record: ModelVersionRecord, *, alias: str | None = None) -> str:
    what = f"alias {alias!r} of" if alias else "version"
    lines = [
        f"# Written by {AUTHOR} for {what} MLflow registered model {record.model!r} "
        + (f"(now version {record.version})" if alias else f"{record.version}") + f", rule {loaded.path}.",
        f"# source: {record.source}" + (f"; run: {record.run_id}" if record.run_id else ""),
    ]
    if record.stage not in ("", "None"):
        lines.append(f"# stage: {record.stage} (deprecated in MLflow)")
    tags = user_tags(record.tags)
    if tags:
        lines.append("# tags: " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))
    if record.description:
        lines.append(f"# description: {record.description}")
    lines.append("# A change in MLflow rewrites this file; an edit here stays until the version changes there.")
    return "\n".join(_comment(line, 400) for line in lines) + "\n"


def server_file(loaded: LoadedRule, record: ModelVersionRecord, *, alias: str | None = None) -> tuple[str, bytes, dict[str, Any]]:
    """(path, content, the ModelServer mapping) of a version's or an alias's ModelServer."""
    namespace = loaded.rule.namespace
    if alias:
        path, name = alias_path(namespace, record.model, alias), names.alias_server(record.model, alias)
    else:
        path, name = version_path(namespace, record.model, record.version), names.version_server(record.model,
                                                                                                 record.version)
    document = typed(render_server(loaded, record, server_name=name, alias=alias), path=path)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return path, (header(loaded, record, alias=alias) + body).encode(), document


def values_file(loaded: LoadedRule, record: ModelVersionRecord, server: dict[str, Any]) -> tuple[str, bytes]:
    """The original service's Helm values for one version."""
    run = record.run
    document = {
        "global": {"experimentId": (run.experiment_id if run else None) or "", "modelName": record.model,
                   "modelVersion": str(record.version)},
        "runid": record.run_id or "",
        "timestamp": record.created_at.isoformat() if record.created_at else "",
        "model": {"name": server["name"], "namespace": server["namespace"], "source": record.source,
                  "model_name": server.get("model_name", record.source)},
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return values_path(loaded.rule.namespace, record.model, record.version), (header(loaded, record) + body).encode()
