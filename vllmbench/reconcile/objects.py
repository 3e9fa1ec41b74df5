"""Desired objects: ownership marks, content hashes, apply order. Pure: dicts in, dicts out.

Every object an owner applies carries (DESIGN.md "Reconcile"):

- labels ``app.kubernetes.io/managed-by: vllmbench`` and ``vllmbench.dev/owner: <owner>``
  (and ``vllmbench.dev/partition`` when the owner reconciles in parts, e.g. one
  evaluation's Jobs); the owner's inventory is what carries them. Deployments and
  Jobs carry them on their pod template too, so that one pod listing per namespace
  finds every pod of an owner.
- annotations ``vllmbench.dev/source`` (the file in Git) and ``vllmbench.dev/commit``
  (the commit whose content it shows: the last one that changed it, so that a commit
  which leaves an object alone does not rewrite it), and ``vllmbench.dev/applied-hash``,
  the hash of what was applied, so that an unchanged object is never written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vllmbench.runtimes.base import (
    APPLIED_HASH,
    COMMIT,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    OWNER,
    PARTITION,
    SOURCE,
    ObjectRef,
)

IMMUTABLE_HASH = "vllmbench.dev/immutable-hash"
_OUR_ANNOTATIONS = (COMMIT, APPLIED_HASH, IMMUTABLE_HASH)

# Fields the API refuses to change in place: a change means delete and create again
# (Flux's ``force``). Paths are dotted; a missing field counts as null.
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Job": ("spec.template", "spec.selector", "spec.completionMode", "spec.completions"),
    "Deployment": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy"),
    "Service": ("spec.clusterIP", "spec.clusterIPs", "spec.ipFamilies"),
    "PersistentVolumeClaim": ("spec.storageClassName", "spec.accessModes", "spec.volumeMode", "spec.selector"),
}

# Apply in this order (what others refer to first); prune in the reverse order.
APPLY_ORDER = ("Namespace", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
               "Deployment", "StatefulSet", "Job", "CronJob", "PingSource")
_WITH_POD_TEMPLATE = {"Deployment", "StatefulSet", "Job"}


@dataclass(frozen=True)
class Desired:
    """One object as Git (or an owner's renderer) wants it, and the file it came from."""

    obj: dict[str, Any]
    source: str


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars): several times faster than deepcopy."""
    if isinstance(value, dict):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_copy(item) for item in value]
    return value


def order(kind: str) -> int:
    """Position of ``kind`` in the apply order (unknown kinds last)."""
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)


def owner_labels(owner: str, partition: str | None = None) -> dict[str, str]:
    """The labels that put an object in an owner's inventory."""
    labels = {MANAGED_BY: MANAGED_BY_VALUE, OWNER: owner}
    if partition:
        labels[PARTITION] = partition
    return labels


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:32]


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path, or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def mark(obj: dict[str, Any], *, owner: str, source: str, commit: str, partition: str | None = None) -> dict[str, Any]:
    """A copy of ``obj`` with the owner's labels and annotations, its applied hash included.

    The hash covers the object as applied except the commit and hash annotations
    themselves, so that the same content from a later commit hashes the same.
    """
    marked = plain_copy(obj)
    meta = marked.setdefault("metadata", {})
    labels = owner_labels(owner, partition)
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _OUR_ANNOTATIONS}
    annotations[SOURCE] = source
    meta["annotations"] = annotations
    if marked.get("kind") in _WITH_POD_TEMPLATE:
        template = marked.setdefault("spec", {}).setdefault("template", {})
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    content_hash = digest(marked)
    immutable = immutable_hash(marked)
    annotations[COMMIT] = commit
    annotations[APPLIED_HASH] = content_hash
    if immutable is not None:
        annotations[IMMUTABLE_HASH] = immutable
    return marked


def immutable_hash(obj: dict[str, Any]) -> str | None:
    """Hash of the fields of ``obj`` that cannot change in place (None for kinds without any)."""
    fields = IMMUTABLE_FIELDS.get(obj.get("kind", ""))
    if not fields:
        return None
    return digest({path: get_path(obj, path) for path in fields})


def annotation(obj: dict[str, Any] | None, key: str) -> str | None:
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


def label(obj: dict[str, Any] | None, key: str) -> str | None:
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def owned_by(obj: dict[str, Any], owner: str) -> bool:
    return label(obj, MANAGED_BY) == MANAGED_BY_VALUE and label(obj, OWNER) == owner


def ownership(obj: dict[str, Any]) -> str:
    """Who an existing object belongs to, in words (for "exists, not ours")."""
    if label(obj, MANAGED_BY) != MANAGED_BY_VALUE or not label(obj, OWNER):
        return "created outside vllmbench (no vllmbench.dev/owner label)"
    return f"owned by vllmbench's {label(obj, OWNER)!r} owner"


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    return ObjectRef.of(obj)
