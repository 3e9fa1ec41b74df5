"""Local pods: the stored object, its folder, its shim, and the status the shim writes.

A pod is ``objects/pods/<ns>/<name>.json`` (what the API would store) plus its folder
``pods/<ns>/<name>/``: ``plan.json`` (what to run), ``status.json`` (written by the shim),
``shim.pid``, ``logs/``, the volumes. A read merges ``status.json`` into the object, so a
pod's status is always the shim's latest word, without a write per change.

A pod the runtime cannot run gets no shim: its status says why (a waiting reason), and it
stays Pending. A pod whose shim is gone while it should run is started again by the next
controller pass or by ``LocalRuntime.boot()``; a pod being deleted is removed once its
shim has stopped its containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmbench.runtimes.local import events, podspec
from vllmbench.runtimes.local.procs import (
    is_ours,
    read_json,
    read_pid,
    rfc3339,
    same_process,
    signal_group,
    spawn_detached,
    write_json,
)
from vllmbench.runtimes.local.shim import MODULE as SHIM

if TYPE_CHECKING:
    from vllmbench.runtimes.local.runtime import LocalRuntime

POD = ("v1", "Pod")
LOCAL_PORTS = "vllmbench.dev/local-ports"  # annotation: container port -> host port, per container
SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of the API's generated names
RELAUNCH_AFTER_S = 5.0  # a shim that died by itself is started again at most this often
TERMINAL = ("Succeeded", "Failed")

_status_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def suffix(n: int = 5) -> str:
    return "".join(secrets.choice(SUFFIX) for _ in range(n))


def folder(rt: "LocalRuntime", namespace: str, name: str) -> Path:
    return rt.root / "pods" / namespace / name


def raw_status(pod_dir: Path) -> dict[str, Any] | None:
    """The shim's status.json (with its private fields), read once per change of the file."""
    path = str(pod_dir / "status.json")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _status_cache.get(path)
    if hit is None or hit[0] != key:
        value = read_json(Path(path))
        if value is None:
            return None
        hit = (key, value)
        _status_cache[path] = hit
    return hit[1]


def public(status: dict[str, Any]) -> dict[str, Any]:
    """A status as the API shows it: without the shim's private fields."""
    out = {k: v for k, v in status.items() if not k.startswith("_")}
    for key in ("containerStatuses", "initContainerStatuses"):
        if key in out:
            out[key] = [{k: v for k, v in c.items() if not k.startswith("_")} for c in out[key]]
    return out


def pending(pod: dict[str, Any], reason: str = "ContainerCreating", message: str = "") -> dict[str, Any]:
    now = pod["metadata"].get("creationTimestamp") or rfc3339()
    waiting = {"reason": reason, **({"message": message} if message else {})}
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "phase": "Pending", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": now, "qosClass": "BestEffort",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                       {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                       {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                        "lastProbeTime": None, "lastTransitionTime": now},
                       {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": None,
                        "lastTransitionTime": now}],
        "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                               "started": False, "restartCount": 0, "state": {"waiting": dict(waiting)},
                               "lastState": {}} for c in containers],
    }


def with_status(rt: "LocalRuntime", pod: dict[str, Any]) -> dict[str, Any]:
    status = raw_status(folder(rt, pod["metadata"]["namespace"], pod["metadata"]["name"]))
    pod["status"] = public(status) if status else pending(pod)
    return pod


def shim_state(rt: "LocalRuntime", pod: dict[str, Any]) -> str:
    """'running' (its shim is at work), 'ended' (the shim finished), 'blocked' (cannot run here),
    or 'lost' (no shim, though the pod has not ended)."""
    pod_dir = folder(rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
    status = raw_status(pod_dir) or {}
    if status.get("_blocked"):
        return "blocked"
    if status.get("_exited"):
        return "ended" if status.get("phase") in TERMINAL or status.get("_stopped") == "delete" else "lost"
    return "running" if is_ours(read_pid(pod_dir / "shim.pid"), SHIM, pod_dir) else "lost"


# -- making and starting pods -------------------------------------------------------------
def build(owner: dict[str, Any], template: dict[str, Any], name: str, *, labels: dict[str, str],
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta = owner["metadata"]
    tmeta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {
        "name": name, "namespace": meta["namespace"], "labels": {**(tmeta.get("labels") or {}), **labels},
        "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
                             "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
    }
    if tmeta.get("annotations") or annotations:
        pod_meta["annotations"] = {**(tmeta.get("annotations") or {}), **(annotations or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": json.loads(json.dumps(template["spec"]))}


def create(rt: "LocalRuntime", pod: dict[str, Any], *, kick_at: list[float] | None = None) -> dict[str, Any]:
    """Store a new pod and start it (under the lock). ``pod`` has name, namespace and spec."""
    import uuid

    meta = pod["metadata"]
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=rfc3339())
    pod_dir = folder(rt, meta["namespace"], meta["name"])
    pod_dir.mkdir(parents=True, exist_ok=True)
    stored = rt.store.put(pod)
    events.record(rt.root, stored, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to "
                  "localhost", component="default-scheduler")
    if not rt.stopped:
        launch(rt, stored, kick_at=kick_at)
    return stored


def launch(rt: "LocalRuntime", pod: dict[str, Any], *, kick_at: list[float] | None = None) -> None:
    """Plan the pod and start its shim, or record why it cannot start."""
    meta = pod["metadata"]
    pod_dir = folder(rt, meta["namespace"], meta["name"])
    previous = read_json(pod_dir / "plan.json")
    try:
        plan = podspec.plan(pod, pod_dir, rt.sources(meta["namespace"]), previous=previous)
    except podspec.Blocked as blocked:
        status = raw_status(pod_dir) or {}
        if status.get("_blocked") != blocked.message:
            events.record(rt.root, pod, "Failed", f"Error: {blocked.message}", type_="Warning", component="kubelet")
        write_json(pod_dir / "status.json", {**pending(pod, blocked.reason, blocked.message), "_blocked": blocked.message,
                                             "_retry": blocked.reason == podspec.CONFIG_ERROR, "_at": time.time()})
        return
    plan["kick_at"] = kick_at or (previous or {}).get("kick_at") or []
    write_json(pod_dir / "plan.json", plan)
    ports = {c["name"]: c["ports"] for c in plan["init"] + plan["containers"] if c["ports"]}
    if ports and (meta.get("annotations") or {}).get(LOCAL_PORTS) != json.dumps(ports, sort_keys=True):
        meta.setdefault("annotations", {})[LOCAL_PORTS] = json.dumps(ports, sort_keys=True)
        rt.store.put(pod)
    with contextlib.suppress(FileNotFoundError):
        (pod_dir / "stop").unlink()
    status = raw_status(pod_dir) or {}
    if status.get("_blocked"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pod_dir / "status.json")  # the shim starts from a clean status, not from "cannot run"
    elif status.get("_exited"):
        # The new shim reads the old status for its counts; without the end marks, nobody
        # takes this pod for one without a shim while the new one starts.
        write_json(pod_dir / "status.json", {k: v for k, v in status.items() if k not in ("_exited", "_stopped")})
    (pod_dir / "launched").write_text(str(time.time()))
    spawn_detached(SHIM, pod_dir, log=pod_dir / "shim.log")


def revive(rt: "LocalRuntime", pod: dict[str, Any], *, force: bool = False) -> bool:
    """Start the shim again of a pod that should run but has none (under the lock). True when started."""
    if rt.stopped or pod["metadata"].get("deletionTimestamp"):
        return False
    pod_dir = folder(rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
    state = shim_state(rt, pod)
    status = raw_status(pod_dir) or {}
    if state == "blocked":
        if status.get("_retry") and time.time() - status.get("_at", 0) > 2.0:
            launch(rt, pod)
            return True
        return False
    if state != "lost":
        return False
    try:
        launched = float((pod_dir / "launched").read_text())
    except (OSError, ValueError):
        launched = 0.0
    if not force and time.time() - launched < RELAUNCH_AFTER_S:
        return False
    launch(rt, pod)
    return True


# -- stopping and removing ----------------------------------------------------------------
def terminate(rt: "LocalRuntime", pod: dict[str, Any], *, why: str = "delete") -> None:
    """Ask the pod's shim to stop its containers (``why``: 'delete' or 'shutdown')."""
    pod_dir = folder(rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
    pid = read_pid(pod_dir / "shim.pid")
    if pod_dir.exists():
        (pod_dir / "stop").write_text(why)
    if is_ours(pid, SHIM, pod_dir):  # also a shim that ended its pod and waits to look in on its Job again
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def mark_deleted(rt: "LocalRuntime", pod: dict[str, Any]) -> dict[str, Any]:
    """Graceful deletion: the deletion mark on the object, SIGTERM to the shim (under the lock)."""
    if not pod["metadata"].get("deletionTimestamp"):
        pod["metadata"]["deletionTimestamp"] = rfc3339()
        pod["metadata"]["deletionGracePeriodSeconds"] = int((pod.get("spec") or {}).get(
            "terminationGracePeriodSeconds", 30))
        pod = rt.store.put(pod)
    terminate(rt, pod, why="delete")
    return pod


def collect(rt: "LocalRuntime", pod: dict[str, Any]) -> bool:
    """Remove a deleted pod whose shim has stopped (under the lock); True once it is gone."""
    meta = pod["metadata"]
    if not meta.get("deletionTimestamp"):
        return False
    pod_dir = folder(rt, meta["namespace"], meta["name"])
    if shim_state(rt, pod) == "running":
        return False
    for c in ((raw_status(pod_dir) or {}).get("containerStatuses") or []):
        proc = c.get("_proc")
        if proc and same_process(*proc):  # left behind by a shim that died: never orphaned
            signal_group(proc[0], signal.SIGKILL)
    pid = read_pid(pod_dir / "shim.pid")
    if is_ours(pid, SHIM, pod_dir):  # done with the pod, finishing its last look or waiting for a next one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    rt.store.remove(rt.kind_of(*POD), meta["namespace"], meta["name"])
    rt.store.wipe(pod_dir)
    _status_cache.pop(str(pod_dir / "status.json"), None)
    events.forget(rt.root, meta["namespace"], "Pod", meta["name"])
    return True


def is_active(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in TERMINAL


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get(
        "conditions") or [])


def ready_since(pod: dict[str, Any]) -> float | None:
    from vllmbench.runtimes.local.procs import parse_time

    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None
