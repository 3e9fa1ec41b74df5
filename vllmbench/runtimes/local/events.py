"""Events about local objects, in the shape of the API's ``v1`` Event.

One append-only file per involved object (``<root>/events/<namespace>/<Kind>.<name>.jsonl``),
written by the runtime (controllers: SuccessfulCreate, ScalingReplicaSet, Completed, ...) and
by the shims (kubelet: Scheduled, Started, BackOff, Killing, Unhealthy, ...). Each line is one
O_APPEND write, so writers in several processes never interleave. Repeats of the same
reason and message in a row are folded into one event with a count, as the API does.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local.procs import append_line, rfc3339

KEEP_LINES = 1000  # an object's file is cut to its newest lines past this many


def _path(root: Path, namespace: str, kind: str, name: str) -> Path:
    return root / "events" / (namespace or "_cluster") / f"{kind}.{name}.jsonl"


def record(root: Path, obj: dict[str, Any], reason: str, message: str, *, type_: str = "Normal",
           component: str = "local-runtime") -> None:
    meta = obj.get("metadata") or {}
    line = {"ts": time.time(), "reason": reason, "message": message, "type": type_, "component": component,
            "apiVersion": obj.get("apiVersion", "v1"), "uid": meta.get("uid", "")}
    append_line(_path(root, meta.get("namespace", ""), obj["kind"], meta["name"]), json.dumps(line))


def read(root: Path, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    path = _path(root, namespace, kind, name)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    if len(lines) > KEEP_LINES:
        _trim(path, lines)
        lines = lines[-KEEP_LINES:]
    folded: list[dict[str, Any]] = []
    for raw in lines:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        last = folded[-1] if folded else None
        if last and last["reason"] == line["reason"] and last["message"] == line["message"]:
            last["count"] += 1
            last["lastTimestamp"] = rfc3339(line["ts"])
            continue
        folded.append({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{int(line['ts'] * 1e9):x}", "namespace": namespace,
                         "creationTimestamp": rfc3339(line["ts"])},
            "involvedObject": {"apiVersion": line.get("apiVersion", "v1"), "kind": kind, "name": name,
                               "namespace": namespace, "uid": line.get("uid", "")},
            "reason": line["reason"], "message": line["message"], "type": line["type"],
            "count": 1, "firstTimestamp": rfc3339(line["ts"]), "lastTimestamp": rfc3339(line["ts"]),
            "source": {"component": line.get("component", "local-runtime"), "host": "localhost"},
            "reportingComponent": line.get("component", "local-runtime"), "reportingInstance": "localhost",
        })
    return folded


def read_namespace(root: Path, namespace: str | None) -> list[dict[str, Any]]:
    """Every event of a namespace (None: all), for a list of kind Event."""
    base = root / "events"
    folders = [base / namespace] if namespace else sorted(p for p in base.glob("*") if p.is_dir())
    out = []
    for folder in folders:
        for path in sorted(folder.glob("*.jsonl")):
            kind, _, name = path.name[: -len(".jsonl")].partition(".")
            out += read(root, folder.name, kind, name)
    return sorted(out, key=lambda e: e["lastTimestamp"])


def forget(root: Path, namespace: str, kind: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(root, namespace, kind, name))


def _trim(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines[-KEEP_LINES:]) + "\n")
    os.replace(tmp, path)  # a line appended meanwhile may be lost: events are best effort, as in the API
