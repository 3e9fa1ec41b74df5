"""The ``deployments/`` folder: what the deployer applies, read from files or from a request. Pure.

Layout: ``deployments/<namespace>/<file>.yaml``, one or more Kubernetes objects per
file. The folder names the namespace: an object without ``metadata.namespace`` gets
it; one that names another namespace is refused. ``POST /deploy`` writes each object
to ``deployments/<namespace>/<kind>-<name>.yaml``.

A file that does not parse or breaks the policy (:mod:`vllmbench.reconcile.policy`)
is *held*: none of its objects is applied, and what it applied before stays as it
is (an invalid edit never deletes a running workload), until the file is fixed.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

import yaml

from gitops.yamldoc import InvalidYaml, documents_with_lines
from vllmbench.errors import ValidationFailed
from vllmbench.reconcile import policy
from vllmbench.reconcile.objects import Desired
from vllmbench.runtimes.base import ObjectRef

FOLDER = "deployments"


@dataclass
class Rendered:
    commit: str
    desired: list[Desired] = field(default_factory=list)
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def held(self) -> set[str]:
        return set(self.problems)


def object_path(namespace: str, obj: dict[str, Any]) -> str:
    """Where ``POST /deploy`` writes one object."""
    return f"{FOLDER}/{namespace}/{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def namespace_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == FOLDER else None


def parse(text: str, *, path: str, namespace: str, namespaces: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The objects of one file (or request body) placed in ``namespace``, and every problem found."""
    try:
        documents = documents_with_lines(text, path=path)
    except InvalidYaml as exc:
        return [], exc.details
    problems: list[dict[str, Any]] = []
    if namespace not in namespaces:
        return [], [{"loc": path, "msg": f"{path}: namespace {namespace!r} is not a benchmark namespace",
                     "expected": f"one of {', '.join(namespaces)}"}]
    objects = []
    for document, line in documents:
        found = policy.check(document, namespaces=namespaces, where=f"{path}:{line}")
        if isinstance(document, dict):
            meta = document.get("metadata")
            named = (meta or {}).get("namespace") if isinstance(meta, dict) else None
            if named is not None and named != namespace and not found:
                found.append(policy.Problem(f"{path}:{line}.metadata.namespace",
                                            f"{path}:{line}: metadata.namespace {named!r} differs from "
                                            f"{namespace!r}, the namespace it is deployed to", namespace))
        if found:
            problems += [p.to_detail() for p in found]
            continue
        document.setdefault("metadata", {})["namespace"] = namespace
        objects.append(document)
    if not documents:
        problems.append({"loc": path, "msg": f"{path}: no Kubernetes object in it", "expected": "at least one object"})
    return objects, problems


def render(files: dict[str, bytes], *, commit: str, namespaces: list[str]) -> Rendered:
    """The desired objects of the folder at ``commit`` (``files``: path -> content)."""
    rendered = Rendered(commit)
    seen: dict[ObjectRef, str] = {}
    for path, data in sorted(files.items()):
        namespace = namespace_of(path)
        if namespace is None:
            rendered.problems[path] = [{"loc": path, "msg": f"{path}: files go in {FOLDER}/<namespace>/",
                                        "expected": f"{FOLDER}/<namespace>/<name>.yaml"}]
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            rendered.problems[path] = [{"loc": path, "msg": f"{path}: not UTF-8 text", "expected": "YAML"}]
            continue
        objects, problems = parse(text, path=path, namespace=namespace, namespaces=namespaces)
        for obj in objects:
            ref = ObjectRef.of(obj)
            if ref in seen:
                problems.append({"loc": path, "msg": f"{path}: {ref} is defined in {seen[ref]} already",
                                 "expected": "each object in one file"})
        if problems:
            rendered.problems[path] = problems
            continue
        for obj in objects:
            seen[ObjectRef.of(obj)] = path
            rendered.desired.append(Desired(obj, path))
    return rendered


def request_files(text: str, *, namespace: str, namespaces: list[str]) -> dict[str, dict[str, Any]]:
    """Path -> object for a ``POST /deploy`` body; 422 with every problem when one is wrong."""
    objects, problems = parse(text, path="yaml_content", namespace=namespace, namespaces=namespaces)
    files: dict[str, dict[str, Any]] = {}
    for obj in objects:
        path = object_path(namespace, obj)
        if path in files:
            problems.append({"loc": "yaml_content", "msg": f"{ObjectRef.of(obj)} is given twice",
                             "expected": "each object once"})
        files[path] = obj
    if problems:
        first = problems[0]["msg"]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValidationFailed(f"{first}{more}; nothing was committed", details=problems)
    return files


def dump(obj: dict[str, Any]) -> bytes:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).encode()


def remove_from_file(text: str, *, path: str, refs: set[ObjectRef], namespace: str) -> bytes | None:
    """``text`` without the objects ``refs``; None when nothing would be left (delete the file)."""
    kept = []
    for document, _ in documents_with_lines(text, path=path):
        if isinstance(document, dict) and document.get("kind") and isinstance(document.get("metadata"), dict):
            probe = {**document, "metadata": {**document["metadata"],
                                              "namespace": document["metadata"].get("namespace", namespace)}}
            if ObjectRef.of(probe) in refs:
                continue
        kept.append(document)
    if not kept:
        return None
    return yaml.safe_dump_all(kept, sort_keys=False).encode()


def folder_of(path: str) -> str:
    return posixpath.dirname(path)
