"""Jobs in the benchmark namespaces: find one by name, say how it is doing, stream its logs.

Used by the deployer's ``/jobs/{name}/...`` routes (and by the evaluations, which follow
their own Jobs). Works on either workload runtime.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from vllmbench.errors import Conflict, NotFound, RetryableError, UserError
from vllmbench.reconcile.health import conditions, health
from vllmbench.runtimes.base import KINDS, ObjectRef, Runtime

JOB = KINDS[("batch/v1", "Job")]
POLL_S = 1.0


def find_job(runtime: Runtime, namespaces: list[str], name: str, namespace: str | None) -> dict[str, Any]:
    """The Job ``name`` in ``namespace`` (or the one benchmark namespace that has it)."""
    if namespace is not None:
        if namespace not in namespaces:
            raise UserError(f"namespace {namespace!r} is not a benchmark namespace; allowed: {', '.join(namespaces)}")
        candidates = [namespace]
    else:
        candidates = namespaces
    found = [job for ns in candidates if (job := runtime.get(ObjectRef("batch/v1", "Job", ns, name)))]
    if not found:
        where = namespace or " or ".join(namespaces)
        raise NotFound(f"no job {name!r} in {where}")
    if len(found) > 1:
        spaces = ", ".join(j["metadata"]["namespace"] for j in found)
        raise Conflict(f"job {name!r} exists in several namespaces ({spaces}); add ?namespace=")
    return found[0]


def job_pods(runtime: Runtime, job: dict[str, Any]) -> list[dict[str, Any]]:
    meta = job["metadata"]
    pods = runtime.pods(meta["namespace"], {"job-name": meta["name"]})
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")


def finished(job: dict[str, Any]) -> bool:
    conds = conditions(job)
    return any(conds.get(c, {}).get("status") == "True"
               for c in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"))


def last_lines(runtime: Runtime, namespace: str, pods: list[dict[str, Any]], *, lines: int = 10,
               newest: int = 3) -> dict[str, dict[str, list[str]]]:
    """Pod -> container -> its last log lines, for the ``newest`` pods (what a failure message quotes)."""
    tails: dict[str, dict[str, list[str]]] = {}
    for pod in pods[-newest:]:
        status_of = pod.get("status") or {}
        # init containers too: a harness that runs before our posting step fails in one
        for status in (status_of.get("initContainerStatuses") or []) + (status_of.get("containerStatuses") or []):
            try:
                tails.setdefault(pod["metadata"]["name"], {})[status["name"]] = list(
                    runtime.logs(namespace, pod["metadata"]["name"], container=status["name"], tail_lines=lines))
            except (UserError, RetryableError):
                continue
    return tails


def job_status(runtime: Runtime, namespaces: list[str], name: str, namespace: str | None) -> dict[str, Any]:
    job = find_job(runtime, namespaces, name, namespace)
    pods = job_pods(runtime, job)
    state = health(job, pods=pods)
    if state.state in ("failed", "pending"):
        state = health(job, pods=pods, logs=last_lines(runtime, job["metadata"]["namespace"], pods))
    status = job.get("status") or {}
    meta = job["metadata"]
    return {
        "name": meta["name"], "namespace": meta["namespace"],
        "managed_by": (meta.get("labels") or {}).get("vllmbench.dev/owner"),
        "state": state.state, "reason": state.reason, "message": state.message,
        "active": status.get("active", 0), "succeeded": status.get("succeeded", 0), "failed": status.get("failed", 0),
        "start_time": status.get("startTime"), "completion_time": status.get("completionTime"),
        "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                       for c in status.get("conditions") or []],
        "pods": state.pods,
        "events": [_event(e) for e in runtime.events(meta["namespace"], kind="Job", name=meta["name"])][-20:],
    }


def _event(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": event.get("type"), "reason": event.get("reason"), "message": event.get("message"),
            "count": event.get("count"), "time": event.get("lastTimestamp") or event.get("eventTime")}


def log_lines(runtime: Runtime, namespaces: list[str], name: str, query: Any,
              client_gone: Any = lambda: False) -> Iterator[bytes]:
    """Find the job now (so a wrong name is a 404 before streaming starts); stream its lines.
    ``client_gone()`` is asked now and then while following: a client that left ends the stream."""
    job = find_job(runtime, namespaces, name, query.namespace)
    pods = job_pods(runtime, job)
    if query.pod is not None:
        pods = [p for p in pods if p["metadata"]["name"] == query.pod]
        if not pods:
            raise NotFound(f"job {name!r} has no pod {query.pod!r}")
    if not query.follow:
        return _static(runtime, job, pods, query)
    return _follow(runtime, job, query, client_gone)


def _static(runtime: Runtime, job: dict[str, Any], pods: list[dict[str, Any]], query: Any) -> Iterator[bytes]:
    namespace = job["metadata"]["namespace"]
    prefix = len(pods) > 1
    # Open every stream first: a missing container is an error now, not half way through the body.
    streams = [(pod["metadata"]["name"], runtime.logs(namespace, pod["metadata"]["name"], container=query.container,
                                                      tail_lines=query.tail, since_seconds=query.since,
                                                      timestamps=query.timestamps))
               for pod in pods if _started(pod)]

    def lines() -> Iterator[bytes]:
        for pod_name, stream in streams:
            for line in stream:
                yield (f"[{pod_name}] {line}\n" if prefix else f"{line}\n").encode()

    return lines()


def _started(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
               or (s.get("lastState") or {}).get("terminated") for s in statuses)


def _follow(runtime: Runtime, job: dict[str, Any], query: Any, client_gone: Any) -> Iterator[bytes]:
    """Lines of every pod of the job as they come, new pods included, until the job has ended
    and every stream is drained. A client that goes away ends it at the next line."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue(maxsize=10_000)
    streams: dict[str, Any] = {}
    done = threading.Event()

    def pump(pod_name: str, stream: Any) -> None:
        try:
            for line in stream:
                if done.is_set():
                    break
                lines.put((pod_name, line))
        except (UserError, RetryableError) as exc:
            lines.put((pod_name, f"(log stream ended: {exc.message})"))
        finally:
            lines.put((pod_name, None))

    def open_new(pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            if pod_name in streams or not _started(pod) or (query.pod and pod_name != query.pod):
                continue
            try:
                stream = runtime.logs(namespace, pod_name, container=query.container, tail_lines=query.tail,
                                      since_seconds=query.since, follow=True, timestamps=query.timestamps)
            except (UserError, RetryableError):
                continue  # not ready yet: the next poll tries again
            streams[pod_name] = stream
            threading.Thread(target=pump, args=(pod_name, stream), daemon=True, name=f"logs-{pod_name}").start()

    def generate() -> Iterator[bytes]:
        open_streams = 0
        ended: set[str] = set()
        next_poll = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_poll:
                    if client_gone():
                        return
                    current = runtime.get(ObjectRef("batch/v1", "Job", namespace, name))
                    before = len(streams)
                    open_new(job_pods(runtime, current or job))
                    open_streams += len(streams) - before
                    next_poll = now + POLL_S
                    if (current is None or finished(current)) and len(ended) >= len(streams):
                        return
                try:
                    pod_name, line = lines.get(timeout=POLL_S / 2)
                except queue.Empty:
                    continue
                if line is None:
                    ended.add(pod_name)
                    continue
                yield (f"[{pod_name}] {line}\n" if len(streams) > 1 or query.pod is None and open_streams > 1
                       else f"{line}\n").encode()
        finally:
            done.set()
            for stream in streams.values():
                stream.close()

    return generate()
