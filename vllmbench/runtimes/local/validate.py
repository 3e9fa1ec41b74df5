"""What the API server refuses with 422, for the kinds the local runtime runs.

Only the checks that change what a user or the reconcile engine sees: names, the fields a
controller needs, and the immutable fields (a Job's template and selector, a Deployment's
selector, a Service's clusterIP, a Pod's spec), so that the engine's recreate path runs
the same here as against a cluster. Messages and details follow the API's
``<Kind>.<group> "<name>" is invalid: <field>: <reason>``.
"""

from __future__ import annotations

import re
from typing import Any

from vllmbench.errors import ValidationFailed

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

Problem = tuple[str, str, str]  # field, message, reason


def _qualified(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"].rpartition("/")[0] if "/" in obj["apiVersion"] else ""
    name = (obj.get("metadata") or {}).get("name", "")
    return f'{obj["kind"]}{"." + group if group else ""} "{name}"'


def fail(obj: dict[str, Any], problems: list[Problem]) -> ValidationFailed:
    text = ", ".join(f"{field}: {message}" for field, message, _ in problems)
    return ValidationFailed(f"{_qualified(obj)} is invalid: {text}", details=[
        {"loc": field.replace("[", ".").replace("]", "").split("."), "msg": message, "type": reason}
        for field, message, reason in problems])


def check(obj: dict[str, Any]) -> None:
    """Raise ValidationFailed when the API would refuse ``obj`` on create."""
    problems: list[Problem] = []
    if not isinstance(obj.get("metadata"), dict):
        raise fail(obj, [("metadata", "Required value", "FieldValueRequired")])
    name = obj["metadata"].get("name")
    kind = obj["kind"]
    if not name:
        problems.append(("metadata.name", "Required value: name or generateName is required", "FieldValueRequired"))
    elif kind == "Service" and not (LABEL_1035.match(name) and len(name) <= 63):
        problems.append(("metadata.name", f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
                         "alphanumeric characters or '-', start with a letter and end with an alphanumeric "
                         "character, at most 63 characters", "FieldValueInvalid"))
    elif not (SUBDOMAIN.match(name) and len(name) <= (63 if kind == "Job" else 253)):
        problems.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                         "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                         "alphanumeric character", "FieldValueInvalid"))
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        problems += _deployment(spec)
    elif kind == "Job":
        problems += _job(spec)
    elif kind == "Pod":
        problems += _pod_spec(spec, "spec", allowed_restart=("Always", "OnFailure", "Never", None))
    elif kind == "Service":
        problems += _service(spec)
    elif kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if not isinstance(value, str):
                problems.append((f"data[{key}]", "Invalid value: must be a string", "FieldValueInvalid"))
    if problems:
        raise fail(obj, problems)


def _deployment(spec: dict[str, Any]) -> list[Problem]:
    problems = []
    selector = (spec.get("selector") or {}).get("matchLabels")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not spec.get("selector"):
        problems.append(("spec.selector", "Required value", "FieldValueRequired"))
    elif selector is not None and any(labels.get(k) != v for k, v in selector.items()):
        problems.append(("spec.template.metadata.labels",
                         f"Invalid value: {labels}: `selector` does not match template `labels`", "FieldValueInvalid"))
    if (spec.get("replicas") or 0) < 0:
        problems.append(("spec.replicas", "Invalid value: must be greater than or equal to 0", "FieldValueInvalid"))
    return problems + _pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec",
                                allowed_restart=("Always", None))


def _job(spec: dict[str, Any]) -> list[Problem]:
    problems = []
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        problems.append(("spec.completions", "Required value: when completion mode is Indexed", "FieldValueRequired"))
    for field in ("parallelism", "completions", "backoffLimit"):
        if (spec.get(field) or 0) < 0:
            problems.append((f"spec.{field}", "Invalid value: must be greater than or equal to 0", "FieldValueInvalid"))
    pod = (spec.get("template") or {}).get("spec") or {}
    if pod.get("restartPolicy") not in ("OnFailure", "Never"):
        problems.append(("spec.template.spec.restartPolicy",
                         f'Unsupported value: "{pod.get("restartPolicy") or "Always"}": supported values: '
                         '"OnFailure", "Never"', "FieldValueNotSupported"))
    return problems + _pod_spec(pod, "spec.template.spec", allowed_restart=("OnFailure", "Never", None))


def _pod_spec(spec: dict[str, Any], at: str, *, allowed_restart: tuple[str | None, ...]) -> list[Problem]:
    problems = []
    containers = spec.get("containers") or []
    if not containers:
        problems.append((f"{at}.containers", "Required value", "FieldValueRequired"))
    if spec.get("restartPolicy") not in allowed_restart:
        supported = ", ".join(f'"{p}"' for p in allowed_restart if p)
        problems.append((f"{at}.restartPolicy", f'Unsupported value: "{spec.get("restartPolicy")}": supported values: '
                         f"{supported}", "FieldValueNotSupported"))
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            where = f"{at}.{group}[{i}]"
            if not container.get("name"):
                problems.append((f"{where}.name", "Required value", "FieldValueRequired"))
            elif not LABEL_1123.match(container["name"]):
                problems.append((f"{where}.name", f'Invalid value: "{container["name"]}": a lowercase RFC 1123 '
                                 "label", "FieldValueInvalid"))
            if not container.get("image"):
                problems.append((f"{where}.image", "Required value", "FieldValueRequired"))
    return problems


def _service(spec: dict[str, Any]) -> list[Problem]:
    problems = []
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        problems.append(("spec.ports", "Required value", "FieldValueRequired"))
    for i, port in enumerate(ports):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            problems.append((f"spec.ports[{i}].port", "Invalid value: must be between 1 and 65535, inclusive",
                             "FieldValueInvalid"))
        if len(ports) > 1 and not port.get("name"):
            problems.append((f"spec.ports[{i}].name", "Required value", "FieldValueRequired"))
    return problems


# -- immutable fields -------------------------------------------------------------------
def _at(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


IMMUTABLE: dict[str, tuple[str, ...]] = {
    "Job": ("spec.template", "spec.selector", "spec.completionMode"),
    "Deployment": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy"),
    "Service": ("spec.clusterIP",),
    "Pod": ("spec",),
}


def check_update(live: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise ValidationFailed when ``new`` changes a field the API keeps as it was created."""
    problems: list[Problem] = []
    for field in IMMUTABLE.get(new["kind"], ()):
        before, after = _at(live, field), _at(new, field)
        if field == "spec.clusterIP" and (not before or not after):
            continue  # unset means "keep what was assigned"
        if before != after:
            problems.append((field, "field is immutable", "FieldValueInvalid"))
    if new["kind"] == "Job":
        before, after = _at(live, "spec.completions"), _at(new, "spec.completions")
        indexed = _at(new, "spec.completionMode") == "Indexed"
        if before != after and not (indexed and after == _at(new, "spec.parallelism")):
            problems.append(("spec.completions", "field is immutable", "FieldValueInvalid"))
    if problems:
        raise fail(new, problems)
