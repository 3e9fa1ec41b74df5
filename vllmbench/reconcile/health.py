"""Health of live objects in words a user can act on. Pure: objects, pods, events in.

States: ``ready`` (a Deployment available, a Service or ConfigMap in place),
``progressing``, ``running`` (a Job with active pods), ``complete`` (a Job that
succeeded), ``pending`` (pods that cannot start yet: unschedulable, image pulls),
``failed``, ``unsupported`` (the runtime cannot run it), ``missing``.

Pod reasons are lifted from the API: Unschedulable with the scheduler's message,
ImagePullBackOff / ErrImagePull, CrashLoopBackOff with the last log lines, OOMKilled,
CreateContainerConfigError, a Job's DeadlineExceeded or BackoffLimitExceeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_WAITING_ADVICE = {
    "ImagePullBackOff": "the image cannot be pulled: check its name and tag, and the registry's pull secret",
    "ErrImagePull": "the image cannot be pulled: check its name and tag, and the registry's pull secret",
    "InvalidImageName": "the image name is not valid",
    "CrashLoopBackOff": "the container keeps exiting; its last log lines are below",
    "CreateContainerConfigError": "the container's configuration refers to something missing (a ConfigMap, a Secret or a key)",
    "CreateContainerError": "the container could not be created",
    "ImageNotRunnableLocally": "the local runtime cannot run this image; use a cluster (set KUBECONFIG)",
    "NotSupportedLocally": "the local runtime cannot give the pod this (a Secret, a volume type); use a cluster",
}


@dataclass
class Health:
    state: str
    reason: str = ""
    message: str = ""
    ready: bool = False
    pods: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "message": self.message, "ready": self.ready,
                "pods": self.pods}


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def pod_problem(pod: dict[str, Any], logs: dict[str, list[str]] | None = None) -> tuple[str, str] | None:
    """(reason, message) of what keeps a pod from running, or None."""
    status = pod.get("status") or {}
    scheduled = conditions(pod).get("PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        reason = scheduled.get("reason") or "Unschedulable"
        return reason, f"cannot be scheduled: {scheduled.get('message') or 'no node fits'}"
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    for container in statuses:
        name = container.get("name", "?")
        state = container.get("state") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            reason = waiting["reason"]
            advice = _WAITING_ADVICE.get(reason, "")
            detail = waiting.get("message") or ""
            text = f"container {name}: {reason}" + (f" ({detail})" if detail else "") + (f"; {advice}" if advice else "")
            if last.get("reason") == "OOMKilled":
                text += f"; it was OOMKilled (exit {last.get('exitCode')}): raise its memory limit"
            if reason == "CrashLoopBackOff" and logs and logs.get(name):
                text += "; last log lines:\n" + "\n".join(logs[name][-10:])
            return reason, text
        terminated = state.get("terminated")
        if terminated and terminated.get("reason") == "OOMKilled":
            return "OOMKilled", f"container {name} was OOMKilled (exit {terminated.get('exitCode')}): raise its memory limit"
        if terminated and terminated.get("exitCode", 0) != 0 and status.get("phase") == "Failed":
            text = f"container {name} exited with {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'})"
            if terminated.get("message"):
                text += f": {terminated['message']}"
            if logs and logs.get(name):
                text += "; last log lines:\n" + "\n".join(logs[name][-10:])
            return terminated.get("reason") or "Error", text
    if status.get("phase") == "Failed":
        return status.get("reason") or "Failed", status.get("message") or "the pod failed"
    return None


def pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return {"name": (pod.get("metadata") or {}).get("name"), "phase": status.get("phase"),
            "node": (pod.get("spec") or {}).get("nodeName"),
            "ready": conditions(pod).get("Ready", {}).get("status") == "True",
            "restarts": sum(int(c.get("restartCount") or 0) for c in statuses)}


def health(obj: dict[str, Any] | None, *, pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
           logs: dict[str, dict[str, list[str]]] | None = None, unsupported: str | None = None) -> Health:
    """The health of one live object. ``logs`` maps pod name -> container -> last lines."""
    if obj is None:
        return Health("missing", "NotFound", "the object does not exist in the cluster")
    kind = obj.get("kind")
    summaries = [pod_summary(p) for p in pods]
    logs = logs or {}
    problems = [(p, pod_problem(p, logs.get((p.get("metadata") or {}).get("name", "")))) for p in pods]
    problems = [(p, found) for p, found in problems if found]
    if kind == "Deployment":
        result = _deployment(obj, problems)
    elif kind == "Job":
        result = _job(obj, pods, problems)
    elif kind == "StatefulSet":
        status = obj.get("status") or {}
        want = (obj.get("spec") or {}).get("replicas", 1)
        ready = int(status.get("readyReplicas") or 0)
        result = (Health("ready", "Ready", f"{ready}/{want} replicas ready", True) if ready >= want else
                  _with_problem(Health("progressing", "Progressing", f"{ready}/{want} replicas ready"), problems))
    else:
        result = Health("ready", "Applied", f"{kind} is in place", True)
    if unsupported and result.state not in ("failed",):
        result = Health("unsupported", "NotRunnable", unsupported, False)
    result.pods = summaries
    return result


_PENDING_REASONS = {"Unschedulable", "ImagePullBackOff", "ErrImagePull", "SchedulingGated"}


def _with_problem(result: Health, problems: list[Any]) -> Health:
    """``result`` unless a pod has a problem: then the first problem, in words."""
    if not problems:
        return result
    pod, (reason, message) = problems[0]
    name = (pod.get("metadata") or {}).get("name")
    state = ("unsupported" if reason in ("ImageNotRunnableLocally", "NotSupportedLocally") else
             "pending" if reason in _PENDING_REASONS else "failed")
    return Health(state, reason, f"pod {name}: {message}")


def _deployment(obj: dict[str, Any], problems: list[Any]) -> Health:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    want = spec.get("replicas", 1)
    ready = int(status.get("readyReplicas") or 0)
    conds = conditions(obj)
    progressing = conds.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        base = Health("failed", "ProgressDeadlineExceeded",
                      f"no progress within spec.progressDeadlineSeconds: {ready}/{want} replicas ready")
        if problems:
            pod, (reason, message) = problems[0]
            base.message += f"; pod {(pod.get('metadata') or {}).get('name')}: {message}"
        return base
    observed = status.get("observedGeneration")
    current = observed is None or observed >= (obj.get("metadata") or {}).get("generation", 0)
    if want == 0:
        return Health("ready", "ScaledToZero", "0 replicas wanted", True)
    if current and ready >= want and int(status.get("updatedReplicas") or 0) >= want \
            and conds.get("Available", {}).get("status") == "True":
        return Health("ready", "Available", f"{ready}/{want} replicas ready", True)
    return _with_problem(Health("progressing", "Progressing", f"{ready}/{want} replicas ready"), problems)


def _job(obj: dict[str, Any], pods: list[dict[str, Any]], problems: list[Any]) -> Health:
    status = obj.get("status") or {}
    conds = conditions(obj)
    succeeded, failed, active = (int(status.get(k) or 0) for k in ("succeeded", "failed", "active"))
    complete = conds.get("Complete") or conds.get("SuccessCriteriaMet")
    if complete and complete.get("status") == "True":
        return Health("complete", "Complete", f"{succeeded} pod(s) succeeded", True)
    failure = conds.get("Failed") or conds.get("FailureTarget")
    if failure and failure.get("status") == "True":
        reason = failure.get("reason") or "Failed"
        words = {"DeadlineExceeded": "ran longer than spec.activeDeadlineSeconds",
                 "BackoffLimitExceeded": f"{failed} pod(s) failed, over spec.backoffLimit"}.get(reason, "")
        message = failure.get("message") or words
        if problems:
            pod, (_, detail) = problems[-1]
            message += f"; pod {(pod.get('metadata') or {}).get('name')}: {detail}"
        return Health("failed", reason, message)
    if problems:
        return _with_problem(Health("progressing", "Starting", f"{active} active"), problems)
    if active:
        return Health("running", "Running", f"{active} pod(s) running, {succeeded} succeeded, {failed} failed")
    return Health("progressing", "Starting", "waiting for the Job's pods")
