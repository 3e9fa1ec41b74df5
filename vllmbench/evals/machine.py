"""The evaluation lifecycle: a state machine moved only by events. Pure: (evaluation, event) in,
(evaluation, actions) out; the eval function carries the actions out.

    scheduled -> waiting (for the server) -> running (one Job per repeat) -> collecting
              -> done (with a verdict)      or failed / timed_out / cancelled, with the reason

Events: ``tick`` (the PingSource: scheduled times and deadlines), ``server_ready`` /
``server_failed`` (the vLLM service), ``job`` (a Job's state: running, complete, failed
with the pod's reason and last lines), ``result`` (a repeat's results stored:
``dev.vllmbench.result.ingested``), ``cancel``.

Every transition is idempotent: an event seen before (by id) changes nothing, an
event that no longer matters in the current state is ignored with a note, and events
may arrive out of order (results before the Job's completion, a tick after the end).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("scheduled", "waiting", "running", "collecting")
TERMINAL = ("done", "failed", "timed_out", "cancelled")
SEEN_KEEP = 200
COLLECT_GRACE_S = 600  # a finished job's results must arrive within this


@dataclass
class Action:
    """Something the function must do after the transition is stored."""

    kind: str  # ensure_server | apply_jobs | delete_jobs | judge | emit
    data: dict[str, Any] = field(default_factory=dict)


def _now_iso(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).isoformat()


def new(evaluation_id: str, *, request: dict[str, Any], at: dt.datetime, timeout_s: float, repeats: int,
        now: dt.datetime, server: dict[str, Any] | None, target_url: str | None, model: str | None,
        schedule: str | None = None) -> dict[str, Any]:
    """A new evaluation, scheduled at ``at``."""
    return {
        "_id": evaluation_id, "state": "scheduled", "request": request, "schedule": schedule,
        "at": at, "deadline_at": at + dt.timedelta(seconds=timeout_s), "created_at": now,
        "server": server, "target_url": target_url, "server_url": target_url, "model": model,
        "repeats": [{"index": i, "run_id": f"{evaluation_id}-r{i}", "job": None, "job_state": None,
                     "job_reason": None, "results": [], "metrics": None, "trustworthy": None,
                     "trust_reasons": []} for i in range(repeats)],
        "timeline": [{"at": _now_iso(now), "state": "scheduled", "reason": f"scheduled for {_now_iso(at)}"}],
        "verdict": None, "reason": None, "seen": [],
    }


def advance(evaluation: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> tuple[dict[str, Any], list[Action]]:
    """The evaluation after ``event`` and what to do now. ``event``: {"id", "type", ...}."""
    ev = _copy(evaluation)
    event_id = event.get("id")
    if event_id and event_id in ev["seen"]:
        return evaluation, []
    if event_id:
        ev["seen"] = (ev["seen"] + [event_id])[-SEEN_KEEP:]
    kind = event["type"]
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise ValueError(f"unknown evaluation event {kind!r}")
    actions = handler(ev, event, now)
    return ev, actions


def _copy(evaluation: dict[str, Any]) -> dict[str, Any]:
    out = dict(evaluation)
    out["repeats"] = [dict(r) for r in evaluation["repeats"]]
    out["timeline"] = list(evaluation["timeline"])
    out["seen"] = list(evaluation.get("seen") or [])
    return out


def _move(ev: dict[str, Any], state: str, reason: str, now: dt.datetime) -> list[Action]:
    ev["state"] = state
    ev["timeline"].append({"at": _now_iso(now), "state": state, "reason": reason})
    if state in TERMINAL:
        ev["reason"] = reason
        ev["finished_at"] = now
    actions = [Action("emit", {"type": "dev.vllmbench.eval.state", "state": state, "reason": reason})]
    if state in ("timed_out", "cancelled"):
        actions.append(Action("delete_jobs", {"keep_results": True}))  # stop what still runs
    if state in ("failed", "timed_out", "cancelled"):
        # a failed job is kept (its pods' logs explain the failure) until its TTL removes it
        actions.append(Action("emit", {"type": "dev.vllmbench.eval.completed", "state": state, "reason": reason}))
    return actions


def _note(ev: dict[str, Any], reason: str, now: dt.datetime) -> None:
    """A fact on the timeline that changes no state (an event that came too late, say)."""
    ev["timeline"].append({"at": _now_iso(now), "state": ev["state"], "reason": reason})


def _name_jobs(ev: dict[str, Any], now: dt.datetime) -> str:
    """Name the Jobs (and, for several client pods, fix their shared start once: a Job is rendered
    again on every tick and must come out the same). Returns what starts, for the timeline."""
    from vllmbench.evals.templates import job_name

    for repeat in ev["repeats"]:
        repeat["job"] = repeat["job"] or job_name(ev["_id"], repeat["index"])
    jobs = f"{len(ev['repeats'])} job(s)"
    pods = int(ev["request"].get("pods") or 1)
    if pods <= 1:
        return jobs
    ev["start_at"] = ev.get("start_at") or now + dt.timedelta(seconds=float(ev["request"].get("shard_lead_s") or 60))
    return f"{jobs} of {pods} client pods each, sending together from {_now_iso(_aware(ev['start_at']))}"


def _start(ev: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["target_url"]:
        jobs = _name_jobs(ev, now)
        return _move(ev, "running", f"target {ev['target_url']} given: starting {jobs}", now) + [Action("apply_jobs")]
    server = ev["server"] or {}
    return _move(ev, "waiting", f"waiting for ModelServer {server.get('namespace')}/{server.get('name')} "
                 "to be placed and ready", now) + [Action("ensure_server")]


def _on_tick(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    state = ev["state"]
    if state in TERMINAL:
        return []
    if now >= _aware(ev["deadline_at"]):
        return _move(ev, "timed_out", f"not done by its deadline {_now_iso(_aware(ev['deadline_at']))} "
                     f"(it was {state})", now)
    if state == "scheduled" and now >= _aware(ev["at"]):
        return _start(ev, now)
    if state == "waiting":
        return [Action("ensure_server")]  # ask again: the ready event may have been lost
    if state == "collecting" and ev.get("collect_by") and now >= _aware(ev["collect_by"]):
        missing = [r["run_id"] for r in ev["repeats"] if not r["results"]]
        return _move(ev, "failed", f"the job(s) finished but no results arrived for {', '.join(missing)} within "
                     f"{COLLECT_GRACE_S} s: see the job's logs (GET /evaluations/{ev['_id']})", now)
    if state == "running":
        return [Action("apply_jobs")]  # the jobs exist (a no-op) or are created again after a crash
    return []


def _on_server_ready(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["state"] != "waiting":
        if ev["state"] == "scheduled":
            ev["server_url"], ev["model"] = event["url"], event.get("model") or ev["model"]
            _note(ev, f"server ready at {event['url']} before the scheduled time", now)
        return []
    ev["server_url"] = event["url"]
    ev["model"] = event.get("model") or ev["model"]
    jobs = _name_jobs(ev, now)
    reuse = " (reused an identical running server)" if event.get("reused") else ""
    return _move(ev, "running", f"server ready at {event['url']}{reuse}: starting {jobs}", now) + [Action("apply_jobs")]


def _on_server_failed(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["state"] != "waiting":
        return []
    if event.get("pending"):
        _note(ev, f"server pending: {event.get('reason')}", now)
        return []
    return _move(ev, "failed", f"the server did not start: {event.get('reason') or 'no reason given'}", now)


def _repeat(ev: dict[str, Any], event: dict[str, Any]) -> dict[str, Any] | None:
    run_id = event.get("run_id")
    job = event.get("job")
    for repeat in ev["repeats"]:
        if (run_id and repeat["run_id"] == run_id) or (job and repeat["job"] == job):
            return repeat
    return None


def _on_job(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    repeat = _repeat(ev, event)
    if repeat is None or ev["state"] not in ("running", "collecting"):
        return []
    state, before = event["state"], repeat["job_state"]
    if state == before:
        return []
    repeat["job_state"], repeat["job_reason"] = state, event.get("reason")
    if state == "failed":
        if repeat["results"]:
            _note(ev, f"job {repeat['job']} failed after its results arrived: {event.get('reason')}", now)
            return _maybe_collected(ev, now)
        return _move(ev, "failed", f"repeat {repeat['index']} (job {repeat['job']}) failed: "
                     f"{event.get('reason') or 'no reason given'}", now)
    if state == "complete":
        if all(r["results"] for r in ev["repeats"]):
            return [Action("judge")]
        if ev["state"] == "running" and all(r["job_state"] == "complete" or r["results"] for r in ev["repeats"]):
            ev["collect_by"] = now + dt.timedelta(seconds=COLLECT_GRACE_S)
            return _move(ev, "collecting", "every job finished: waiting for their results", now)
    return []


def _on_result(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    repeat = _repeat(ev, event)
    if repeat is None:
        return []
    if ev["state"] in TERMINAL:
        _note(ev, f"results of {repeat['run_id']} arrived after the end ({ev['state']}); kept, not judged", now)
        return []
    ids = sorted(set(repeat["results"]) | set(event.get("records") or []))
    repeat["results"] = ids
    repeat["metrics"] = event.get("metrics") or repeat["metrics"]
    repeat["trustworthy"] = event.get("trustworthy")
    repeat["trust_reasons"] = event.get("trust_reasons") or []
    if ev["state"] in ("scheduled", "waiting"):
        _note(ev, f"results of {repeat['run_id']} arrived before its job was started here; kept", now)
        return []
    return _maybe_collected(ev, now)


def _maybe_collected(ev: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["state"] not in ("running", "collecting") or not all(r["results"] for r in ev["repeats"]):
        return []
    return [Action("judge")]


def judged(evaluation: dict[str, Any], verdict: dict[str, Any], now: dt.datetime) -> tuple[dict[str, Any], list[Action]]:
    """Record the verdict and finish (the function computed it: :mod:`vllmbench.evals.verdict`)."""
    ev = _copy(evaluation)
    if ev["state"] in TERMINAL:
        return evaluation, []
    ev["verdict"] = verdict
    actions = _move(ev, "done", f"verdict: {verdict.get('verdict')} ({verdict.get('summary', '')})".strip(), now)
    actions.append(Action("emit", {"type": "dev.vllmbench.eval.completed", "state": "done", "verdict": verdict}))
    return ev, actions


def _on_cancel(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["state"] in TERMINAL:
        return []
    return _move(ev, "cancelled", event.get("reason") or "cancelled by a user", now)


def _on_start(ev: dict[str, Any], event: dict[str, Any], now: dt.datetime) -> list[Action]:
    if ev["state"] != "scheduled" or now < _aware(ev["at"]):
        return []
    return _start(ev, now)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


_HANDLERS = {
    "start": _on_start,
    "tick": _on_tick,
    "server_ready": _on_server_ready,
    "server_failed": _on_server_failed,
    "job": _on_job,
    "result": _on_result,
    "cancel": _on_cancel,
}
