"""The Job controller, as a decision: a Job and its pods in, what to do and the new status out.

Semantics of the API's job controller: ``parallelism`` pods at a time until ``completions``
pods succeeded (any one success when completions is unset); ``completionMode: Indexed``
gives each pod an index (label and annotation ``batch.kubernetes.io/job-completion-index``,
env ``JOB_COMPLETION_INDEX``) and completes when every index succeeded; a failed pod is
replaced after the controller's back-off (10 s doubling, at most 6 min) until more than
``backoffLimit`` failures (restarts count with ``OnFailure``), then Failed with
BackoffLimitExceeded; ``activeDeadlineSeconds`` gives DeadlineExceeded; ``suspend`` stops
the pods; ``ttlSecondsAfterFinished`` deletes the Job. Conditions as Kubernetes 1.31+
writes them (SuccessCriteriaMet + Complete, FailureTarget + Failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vllmbench.runtimes.local.pods import is_active, is_ready
from vllmbench.runtimes.local.procs import parse_time, rfc3339

INDEX = "batch.kubernetes.io/job-completion-index"
BACKOFF_S, BACKOFF_MAX_S = 10.0, 360.0


@dataclass
class Plan:
    status: dict[str, Any]
    create: list[int | None] = field(default_factory=list)  # one entry per new pod: its index (or None)
    terminate: list[str] = field(default_factory=list)  # pod names
    events: list[tuple[str, str, str]] = field(default_factory=list)  # reason, message, type
    wake_at: float | None = None  # when the controller wants another look
    delete: bool = False


def pod_labels(job: dict[str, Any], index: int | None) -> tuple[dict[str, str], dict[str, str]]:
    meta = job["metadata"]
    labels = {"batch.kubernetes.io/controller-uid": meta["uid"], "batch.kubernetes.io/job-name": meta["name"],
              "controller-uid": meta["uid"], "job-name": meta["name"]}
    annotations = {}
    if index is not None:
        labels[INDEX] = str(index)
        annotations[INDEX] = str(index)
    return labels, annotations


def index_env() -> dict[str, Any]:
    return {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}}}


def _ranges(indexes: set[int]) -> str:
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _condition(type_: str, reason: str, message: str, now: float) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": rfc3339(now), "lastTransitionTime": rfc3339(now)}


def _finished_at(pod: dict[str, Any]) -> float:
    times = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for c in (pod.get("status") or {}).get("containerStatuses") or []]
    return max([t for t in times if t] or [0.0])


def decide(job: dict[str, Any], pods: list[dict[str, Any]], now: float) -> Plan:
    spec = job.get("spec") or {}
    status = dict(job.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or []]
    plan = Plan(status=status)
    uid = job["metadata"]["uid"]
    mine = [p for p in pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]
    active = [p for p in mine if is_active(p)]
    phase = lambda p: (p.get("status") or {}).get("phase")  # noqa: E731
    succeeded = [p for p in mine if phase(p) == "Succeeded"]
    failed = [p for p in mine if phase(p) == "Failed"]
    indexed = spec.get("completionMode") == "Indexed"
    index_of = lambda p: int(p["metadata"].get("annotations", {}).get(INDEX, -1))  # noqa: E731
    done_indexes = {index_of(p) for p in succeeded} if indexed else set()
    n_succeeded = len(done_indexes) if indexed else len(succeeded)
    completions = spec.get("completions")
    parallelism = spec.get("parallelism", 1)
    policy = (spec.get("template") or {}).get("spec", {}).get("restartPolicy")
    restarts = sum(c.get("restartCount", 0) for p in mine for c in (p.get("status") or {}).get(
        "containerStatuses") or []) if policy == "OnFailure" else 0
    finished = next((c["type"] for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"),
                    None)

    def counts(still_active: list[dict[str, Any]], *, stopped: int = 0) -> None:
        # succeeded and failed are totals, as in the API: pods deleted later still count
        totals = (("active", len(still_active)), ("succeeded", max(len(succeeded), status.get("succeeded", 0))),
                  ("failed", max(len(failed) + stopped, status.get("failed", 0))))
        for key, value in totals:
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["ready"] = sum(1 for p in still_active if is_ready(p))
        status["terminating"] = sum(1 for p in mine if p["metadata"].get("deletionTimestamp")
                                    and phase(p) not in ("Succeeded", "Failed"))
        if indexed:
            status["completedIndexes"] = _ranges(done_indexes)
        status["conditions"] = conditions
        if not conditions:
            status.pop("conditions")

    def stop_all(*, count_failed: bool = False) -> None:
        for p in active:
            plan.terminate.append(p["metadata"]["name"])
            plan.events.append(("SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}", "Normal"))
        counts([], stopped=len(active) if count_failed else 0)

    if finished:
        stop_all()
        done_at = parse_time(status.get("completionTime")) or parse_time(conditions[-1].get("lastTransitionTime"))
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None and done_at is not None:
            plan.delete = now >= done_at + ttl
            plan.wake_at = None if plan.delete else done_at + ttl
        return plan
    if spec.get("suspend"):
        if not any(c["type"] == "Suspended" for c in conditions):
            conditions.append({**_condition("Suspended", "JobSuspended", "Job suspended", now), "status": "True"})
        stop_all()
        return plan
    conditions = [c for c in conditions if c["type"] != "Suspended"]
    status.setdefault("startTime", rfc3339(now))
    started = parse_time(status["startTime"]) or now
    deadline = spec.get("activeDeadlineSeconds")

    def fail(reason: str, message: str) -> None:
        conditions.extend([_condition("FailureTarget", reason, message, now), _condition("Failed", reason, message, now)])
        stop_all(count_failed=True)
        plan.events.append((reason, message, "Warning"))

    if len(failed) + restarts > spec.get("backoffLimit", 6):
        fail("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        return plan
    if deadline is not None and now >= started + deadline:
        fail("DeadlineExceeded", "Job was active longer than specified deadline")
        return plan
    complete = (n_succeeded >= completions) if completions is not None else (n_succeeded >= 1 and not active)
    if complete:
        message = "Reached expected number of succeeded pods"
        conditions.extend([_condition("SuccessCriteriaMet", "CompletionsReached", message, now),
                           _condition("Complete", "CompletionsReached", message, now)])
        status["completionTime"] = rfc3339(now)
        plan.events.append(("Completed", "Job completed", "Normal"))
        stop_all()
        return plan
    if indexed:
        busy = {index_of(p) for p in active}
        todo = [i for i in range(completions) if i not in done_indexes and i not in busy]
        want: list[int | None] = list(todo[: max(0, parallelism - len(active))])
    else:
        room = parallelism if completions is None else min(parallelism, completions - n_succeeded)
        if completions is None and n_succeeded:
            room = 0  # a work queue: once one pod succeeded, no new ones
        want = [None] * max(0, room - len(active))
    if want and failed:
        retry_at = max(_finished_at(p) for p in failed) + min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (len(failed) - 1))
        if now < retry_at:
            plan.wake_at, want = retry_at, []
    plan.create = want
    if deadline is not None:
        plan.wake_at = min(plan.wake_at or started + deadline, started + deadline)
    counts(active)
    if active or want:
        status["active"] = len(active) + len(want)
    return plan
