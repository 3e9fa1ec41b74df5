"""Boot and shutdown of the local runtime, for the embedded stack (``make run``).

The shims and forwarders are detached: they outlive the process that started them, so a
stack that died (kill -9) leaves its workloads running, and the next boot finds them.
``boot()`` finds each pod's shim again (its pid, and ``/proc/<pid>/cmdline`` naming our shim
and the pod's folder), starts the shim again of each pod that should run and has none,
removes deleted pods whose shims are gone, runs every controller once and reopens every
Service's forwarder. ``shutdown()`` marks the runtime stopped (no process is started until
the next boot), asks every shim to stop its containers, waits for them, and closes the
forwarders; the state stays.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from vllmbench.runtimes.local import controllers, pods, services
from vllmbench.runtimes.local.controllers import CONTROLLED
from vllmbench.runtimes.local.procs import is_ours, read_pid, wait_gone
from vllmbench.runtimes.local.shim import MODULE as SHIM

if TYPE_CHECKING:
    from vllmbench.runtimes.local.runtime import LocalRuntime

API_VERSIONS = {"Deployment": "apps/v1", "Job": "batch/v1"}


def boot(rt: "LocalRuntime") -> dict[str, Any]:
    (rt.root / "stopped").unlink(missing_ok=True)
    found = restarted = forwarders = 0
    problems: list[str] = []
    pod_kind = rt.kind_of(*pods.POD)
    with rt.store.lock():
        for namespace in rt.store.namespaces(pod_kind):
            for pod in rt.store.list(pod_kind, namespace):
                pod = pods.with_status(rt, pod)
                state = pods.shim_state(rt, pod)
                found += state == "running"
                if controllers.needs_tending(rt, pod) or state == "lost":
                    restarted += controllers.tend(rt, pod, force=True) == "revived"
        for kind_name in CONTROLLED:
            for obj in rt.store.list(rt.kind_of(API_VERSIONS[kind_name], kind_name), None):
                controllers.sync(rt, obj)
        for svc in rt.store.list(rt.kind_of("v1", "Service"), None):
            alive = services.forwarder_alive(rt, svc["metadata"]["namespace"], svc["metadata"]["name"])
            try:
                services.ensure(rt, svc)
            except OSError as exc:  # one Service's port must not keep the rest from running
                problems.append(str(exc))
                continue
            forwarders += not alive
    report: dict[str, Any] = {"pods_running": found, "pods_restarted": restarted, "forwarders_restarted": forwarders}
    if problems:
        report["problems"] = problems
    return report


def shutdown(rt: "LocalRuntime", *, timeout_s: float = 60.0) -> dict[str, int]:
    pod_kind = rt.kind_of(*pods.POD)
    shims = []
    with rt.store.lock():
        rt.root.mkdir(parents=True, exist_ok=True)
        (rt.root / "stopped").write_text(str(time.time()))
        for namespace in rt.store.namespaces(pod_kind):
            for pod in rt.store.list(pod_kind, namespace):
                pod_dir = pods.folder(rt, namespace, pod["metadata"]["name"])
                pid = read_pid(pod_dir / "shim.pid")
                if pid and is_ours(pid, SHIM, pod_dir):
                    pods.terminate(rt, pod, why="delete" if pod["metadata"].get("deletionTimestamp") else "shutdown")
                    shims.append(pid)
    # outside the lock: a shim that ends a deleted pod takes it for its last look
    deadline = time.monotonic() + timeout_s
    stopped = sum(wait_gone(pid, max(0.0, deadline - time.monotonic())) for pid in shims)
    for svc in rt.store.list(rt.kind_of("v1", "Service"), None):
        services.stop(rt, svc["metadata"]["namespace"], svc["metadata"]["name"], keep_ports=True)
    return {"shims_stopped": stopped, "shims_left": len(shims) - stopped}
