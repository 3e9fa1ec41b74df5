"""Health in words a user can act on (pod reasons lifted from the API)."""

from __future__ import annotations

from typing import Any

from vllmbench.reconcile.health import health


def pod(name: str = "p", *, phase: str = "Running", ready: bool = True, scheduled: dict | None = None,
        state: dict | None = None, last: dict | None = None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled:
        conditions.append({"type": "PodScheduled", "status": "False", **scheduled})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if state is not None:
        status["containerStatuses"] = [{"name": "c", "state": state, "lastState": last or {}, "restartCount": 3}]
    return {"metadata": {"name": name}, "spec": {"nodeName": "n"}, "status": status}


def deployment(ready: int = 0, want: int = 1, conditions: list | None = None) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "d", "generation": 1},
            "spec": {"replicas": want, "selector": {"matchLabels": {"app": "d"}}},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": ready,
                       "conditions": conditions or []}}


def job(conditions: list | None = None, **status: int) -> dict[str, Any]:
    return {"kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": conditions or [], **status}}


def test_available_deployment_is_ready() -> None:
    result = health(deployment(1, conditions=[{"type": "Available", "status": "True"}]), pods=[pod()])
    assert (result.state, result.ready) == ("ready", True)


def test_unschedulable_pod_says_the_schedulers_message() -> None:
    message = "0/5 nodes are available: 5 Insufficient nvidia.com/gpu."
    result = health(deployment(), pods=[pod(phase="Pending", ready=False,
                                            scheduled={"reason": "Unschedulable", "message": message})])
    assert result.state == "pending" and result.reason == "Unschedulable"
    assert message in result.message


def test_image_pull_backoff_says_what_to_check() -> None:
    result = health(deployment(), pods=[pod(phase="Pending", ready=False, state={
        "waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}})])
    assert result.reason == "ImagePullBackOff" and "name and tag" in result.message and "nope:1" in result.message


def test_crash_loop_carries_the_last_log_lines_and_oomkilled() -> None:
    crashing = pod(ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}},
                   last={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    result = health(deployment(), pods=[crashing], logs={"p": {"c": ["loading weights", "Killed"]}})
    assert result.state == "failed" and result.reason == "CrashLoopBackOff"
    assert "OOMKilled" in result.message and "Killed" in result.message and "memory limit" in result.message


def test_progress_deadline_is_failed() -> None:
    result = health(deployment(conditions=[{"type": "Progressing", "status": "False",
                                            "reason": "ProgressDeadlineExceeded"}]))
    assert result.state == "failed" and result.reason == "ProgressDeadlineExceeded"


def test_job_states() -> None:
    assert health(job([{"type": "Complete", "status": "True"}], succeeded=1)).state == "complete"
    assert health(job(active=1), pods=[pod()]).state == "running"
    failed = health(job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]))
    assert failed.state == "failed" and "activeDeadlineSeconds" in failed.message
    errored = pod(phase="Failed", ready=False, state={"terminated": {"exitCode": 2, "reason": "Error"}})
    result = health(job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], failed=1),
                    pods=[errored], logs={"p": {"c": ["Traceback", "ValueError: bad rate"]}})
    assert "exited with 2" in result.message and "ValueError: bad rate" in result.message


def test_unsupported_by_the_runtime_and_missing() -> None:
    assert health(deployment(), unsupported="the local runtime cannot run it").state == "unsupported"
    assert health(None).state == "missing"
