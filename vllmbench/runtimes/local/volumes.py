"""A pod's volumes, the local way: folders under the pod's folder at the mount path made relative.

Each volume is materialized once in ``<pod dir>/.volumes/<name>``: a configMap as its files
(``items``, ``defaultMode`` and ``binaryData`` honoured), an emptyDir as an empty folder, a
persistentVolumeClaim as a link to the claim's folder ``<root>/volumes/<ns>/<claim>``, kept
across pods. Each volumeMount is a link at ``<pod dir>/<mountPath without the leading />``
(to ``subPath`` inside the volume when given). Arguments and env values that start with a
mount path are rewritten to that link, so that ``--dataset /data/prompts.jsonl`` works as
written; a program that builds absolute paths by itself does not see the mounts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOT_SUPPORTED = "NotSupportedLocally"
CONFIG_ERROR = "CreateContainerConfigError"

ConfigMaps = Callable[[str], dict[str, Any] | None]


class Blocked(Exception):
    """The pod cannot start: (reason, message) as a waiting container shows them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def materialize(pod: dict[str, Any], pod_dir: Path, configmap: ConfigMaps) -> list[tuple[str, str]]:
    """Materialize the volumes in ``<pod dir>/.volumes/<name>`` and each mount at its path made
    relative; returns (mount path, local path), longest first, for rewriting arguments."""
    spec = pod.get("spec") or {}
    store = pod_dir / ".volumes"
    for volume in spec.get("volumes") or []:
        target = store / volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = pod_dir.parents[2] / "volumes" / pod["metadata"]["namespace"] / volume["persistentVolumeClaim"][
                "claimName"]
            claim.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to(claim)
            continue
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            _configmap_files(volume, target, configmap)
    mounts = []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for mount in c.get("volumeMounts") or []:
            local = pod_dir / mount["mountPath"].strip("/")
            source = store / mount["name"] / mount.get("subPath", "")
            if not (store / mount["name"]).exists():
                raise Blocked(NOT_SUPPORTED, f"volumeMount {mount['name']!r} names no volume of the pod")
            local.parent.mkdir(parents=True, exist_ok=True)
            if not local.is_symlink() and not local.exists():
                local.symlink_to(source)
            mounts.append((mount["mountPath"].rstrip("/") or "/", str(local)))
    return sorted(set(mounts), key=lambda m: -len(m[0]))


def _configmap_files(volume: dict[str, Any], target: Path, configmap: ConfigMaps) -> None:
    ref = volume["configMap"]
    cm = configmap(ref.get("name", ""))
    if cm is None:
        if ref.get("optional"):
            return
        raise Blocked(CONFIG_ERROR, f'configmap "{ref.get("name")}" not found')
    files = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    items = ref.get("items") or [{"key": k, "path": k} for k in files]
    for item in items:
        if item["key"] not in files:
            raise Blocked(CONFIG_ERROR, f'configmap "{ref.get("name")}" has no key {item["key"]}')
        path = target / item.get("path", item["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[item["key"]])
        path.chmod(item.get("mode", ref.get("defaultMode", 0o644)) & 0o777)


def remap(text: str, mounts: list[tuple[str, str]]) -> str:
    """``text`` with a leading mount path replaced by its folder under the pod's folder."""
    for mount, local in mounts:
        if text == mount or text.startswith(mount + "/"):
            return local + text[len(mount):]
    return text
