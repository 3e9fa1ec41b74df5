"""The evaluation lifecycle: every event in every state, duplicates, out of order (table tests)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from vllmbench.evals import machine

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def new(*, url: str | None = None, repeats: int = 2, at: dt.datetime = T0) -> dict[str, Any]:
    return machine.new("e1", request={"project": "demo"}, at=at, timeout_s=3600, repeats=repeats, now=T0,
                       server=None if url else {"namespace": "default", "name": "opt"}, target_url=url, model="m")


def at(state: str, **kw: Any) -> dict[str, Any]:
    ev = new(**kw)
    ev["state"] = state
    for r in ev["repeats"]:
        r["job"] = f"e1-r{r['index']}"
    return ev


def kinds(actions: list[machine.Action]) -> list[str]:
    return [a.kind if a.kind != "emit" else f"emit:{a.data['type'].rsplit('.', 1)[-1]}" for a in actions]


def step(ev: dict[str, Any], event: dict[str, Any], minutes: float = 0) -> tuple[dict[str, Any], list[str]]:
    nxt, actions = machine.advance(ev, event, T0 + dt.timedelta(minutes=minutes))
    return nxt, kinds(actions)


TICK = {"type": "tick"}
READY = {"id": "r", "type": "server_ready", "url": "http://s:8000", "model": "m"}
FAILED_SERVER = {"id": "f", "type": "server_failed", "reason": "No available memory for the cache blocks"}
PENDING_SERVER = {"id": "p", "type": "server_failed", "pending": True, "reason": "needs 2 x H100"}
JOB_OK = {"id": "j", "type": "job", "job": "e1-r0", "state": "complete"}
JOB_FAIL = {"id": "jf", "type": "job", "job": "e1-r0", "state": "failed", "reason": "OOMKilled"}
RESULT = {"id": "x", "type": "result", "run_id": "e1-r0", "records": ["e1-r0#0"], "metrics": {"s0:ttft_p50": 20.0},
          "trustworthy": True}
CANCEL = {"id": "c", "type": "cancel", "reason": "no longer needed"}


@pytest.mark.parametrize("state, event, minutes, expected_state, expected_actions", [
    ("scheduled", {"id": "s", "type": "start"}, 0, "waiting", ["emit:state", "ensure_server"]),
    ("scheduled", TICK, 0, "waiting", ["emit:state", "ensure_server"]),
    ("scheduled", TICK, 61, "timed_out", ["emit:state", "delete_jobs", "emit:completed"]),
    ("scheduled", READY, 0, "scheduled", []),
    ("scheduled", CANCEL, 0, "cancelled", ["emit:state", "delete_jobs", "emit:completed"]),
    ("waiting", READY, 1, "running", ["emit:state", "apply_jobs"]),
    ("waiting", FAILED_SERVER, 1, "failed", ["emit:state", "emit:completed"]),
    ("waiting", PENDING_SERVER, 1, "waiting", []),
    ("waiting", TICK, 1, "waiting", ["ensure_server"]),
    ("waiting", JOB_OK, 1, "waiting", []),
    ("running", READY, 1, "running", []),
    ("running", TICK, 1, "running", ["apply_jobs"]),
    ("running", JOB_FAIL, 1, "failed", ["emit:state", "emit:completed"]),
    ("running", JOB_OK, 1, "running", []),
    ("running", RESULT, 1, "running", []),
    ("running", CANCEL, 1, "cancelled", ["emit:state", "delete_jobs", "emit:completed"]),
    ("collecting", TICK, 1, "collecting", []),
    ("done", TICK, 1, "done", []),
    ("done", CANCEL, 1, "done", []),
    ("failed", READY, 1, "failed", []),
    ("cancelled", JOB_OK, 1, "cancelled", []),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_event_in_every_state(state: str, event: dict, minutes: float, expected_state: str,
                                    expected_actions: list[str]) -> None:
    nxt, actions = step(at(state), event, minutes)
    assert nxt["state"] == expected_state
    assert actions == expected_actions


def test_a_given_target_url_skips_the_wait_for_a_server() -> None:
    nxt, actions = step(new(url="http://given:8000"), {"id": "s", "type": "start"})
    assert nxt["state"] == "running" and actions == ["emit:state", "apply_jobs"]


def test_a_scheduled_time_in_the_future_waits_for_the_tick() -> None:
    ev = new(at=T0 + dt.timedelta(minutes=10))
    assert step(ev, {"id": "s", "type": "start"})[0]["state"] == "scheduled"
    assert step(ev, TICK, 5)[0]["state"] == "scheduled"
    assert step(ev, TICK, 10)[0]["state"] == "waiting"


def test_results_and_jobs_in_any_order_end_in_judging_once() -> None:
    ev = at("running")
    r0 = {**RESULT, "id": "x0"}
    r1 = {**RESULT, "id": "x1", "run_id": "e1-r1", "records": ["e1-r1#0"]}
    j0, j1 = {**JOB_OK, "id": "j0"}, {**JOB_OK, "id": "j1", "job": "e1-r1"}
    # results first, then jobs
    a, _ = step(ev, r0)
    a, acts = step(a, r1)
    assert acts == ["judge"]
    # jobs first, then results: collecting in between
    b, _ = step(ev, j0)
    b, acts = step(b, j1)
    assert b["state"] == "collecting" and acts == ["emit:state"]
    b, _ = step(b, r1)
    b, acts = step(b, r0)
    assert acts == ["judge"]


def test_a_duplicate_event_changes_nothing() -> None:
    ev, _ = step(at("running"), RESULT)
    again, actions = step(ev, RESULT)
    assert again is ev and actions == []


def test_collecting_fails_when_no_results_arrive_in_time() -> None:
    ev = at("running", repeats=1)
    ev, _ = step(ev, JOB_OK)
    assert ev["state"] == "collecting"
    ev, actions = step(ev, TICK, machine.COLLECT_GRACE_S / 60 + 1)
    assert ev["state"] == "failed" and "no results arrived for e1-r0" in ev["reason"]


def test_a_failed_job_after_its_results_does_not_fail_the_evaluation() -> None:
    ev = at("running", repeats=1)
    ev, _ = step(ev, RESULT)
    ev, actions = step(ev, JOB_FAIL)
    assert ev["state"] == "running" and actions == ["judge"]


def test_judged_finishes_with_the_verdict_and_announces_it() -> None:
    ev, _ = step(at("running", repeats=1), RESULT)
    done, actions = machine.judged(ev, {"verdict": "same", "summary": "3 metrics within threshold"}, T0)
    assert done["state"] == "done" and done["verdict"]["verdict"] == "same"
    assert kinds(actions) == ["emit:state", "emit:completed"]
    assert machine.judged(done, {"verdict": "worse"}, T0)[0] is done  # judged once


def test_the_timeline_says_why() -> None:
    ev, _ = step(at("waiting"), FAILED_SERVER, 1)
    assert ev["timeline"][-1]["reason"] == "the server did not start: No available memory for the cache blocks"
    ev, _ = step(at("waiting"), PENDING_SERVER, 1)
    assert ev["timeline"][-1]["reason"] == "server pending: needs 2 x H100"
