"""Moving evaluations: an event in, the transition stored (compare-and-set), its actions carried out.

Actions are re-derivable: a tick re-issues what a running evaluation needs (its Jobs are
reconciled again, a wait for the server asks again, a collected one is judged), so an
action that failed after its transition was stored is finished by the next tick, and a
redelivered event (already seen) changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from vllmbench.errors import Conflict, RetryableError, UserError
from vllmbench.evals import machine, verdict
from vllmbench.evals.prepare import render_job
from vllmbench.logs import get_logger, info
from vllmbench.reconcile.engine import Reconciler
from vllmbench.reconcile.objects import Desired
from vllmbench.runtimes.base import KINDS, ObjectRef
from vllmbench.services import Service
from vllmbench.store.evaluations import Evaluations
from vllmbench.store.leases import Leases

log = get_logger("vllmbench.evals")
OWNER = "eval"
PART_RUN = re.compile(r".+-r\d+-p\d+")  # <evaluation>-r<repeat>-p<pod>
JOB = KINDS[("batch/v1", "Job")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Evaluator:
    def __init__(self, settings: Any, db: Any, *, runtime: Callable[[], Any], emit: Callable[..., Any],
                 servers: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.store = Evaluations(db)
        self.leases = Leases(db)
        self._runtime = runtime
        self._emit = emit
        token = settings.api_token.get_secret_value() if settings.api_token else None
        self.results = Service("benchmark-results", settings.results_url, token=token)
        self.servers = servers

    # -- the one way an evaluation changes ---------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self, evaluation_id: str) -> Iterator[None]:
        """One transition of an evaluation at a time, across threads and replicas.

        The version compare-and-set alone is not enough on FerretDB v1, whose conditional
        replace is not atomic under concurrent writers (two could both match one version);
        a lease taken by an insert is.
        """
        holder = uuid.uuid4().hex
        self.leases.acquire(f"evaluation:{evaluation_id}", holder, ttl_s=30, wait_s=20,
                            what=f"a change of evaluation {evaluation_id}")
        try:
            yield
        finally:
            self.leases.release(f"evaluation:{evaluation_id}", holder)

    def apply(self, evaluation_id: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._exclusive(evaluation_id):
            stored, actions = self._transition(evaluation_id, event)
        return self.act(stored, actions)

    def _transition(self, evaluation_id: str, event: dict[str, Any]) -> tuple[dict[str, Any], list[machine.Action]]:
        for _ in range(5):
            current = self.store.get(evaluation_id)
            nxt, actions = machine.advance(current, event, _now())
            if nxt is current or nxt == current:
                return current, actions  # nothing to store (a tick that only re-issues actions)
            try:
                stored = self.store.replace(nxt)
            except Conflict:
                continue  # someone moved it meanwhile: read again, apply again (idempotent)
            if stored["state"] != current["state"]:
                info(log, "evaluation moved", evaluation=evaluation_id, state=stored["state"],
                     reason=stored["timeline"][-1]["reason"], event=event["type"])
            return stored, actions
        raise RetryableError(f"evaluation {evaluation_id!r} kept changing; try again")

    def act(self, ev: dict[str, Any], actions: list[machine.Action]) -> dict[str, Any]:
        for action in actions:
            if action.kind == "emit":
                self._announce(ev, action.data)
            elif action.kind == "apply_jobs":
                self.apply_jobs(ev)
            elif action.kind == "delete_jobs":
                self.delete_jobs(ev)
            elif action.kind == "ensure_server":
                ev = self.ensure_server(ev)
            elif action.kind == "judge":
                ev = self.judge(ev)
        return ev

    # -- actions ------------------------------------------------------------------------
    def _reconciler(self, ev: dict[str, Any]) -> Reconciler:
        return Reconciler(self._runtime(), self.db, owner=OWNER, namespaces=[ev["request"]["namespace"]],
                          kinds=[JOB], partition=ev["_id"][:63], lease_wait_s=10)

    def apply_jobs(self, ev: dict[str, Any]) -> None:
        """One Job per repeat through the engine, as the eval owner, in the evaluation's partition."""
        if ev["state"] != "running":
            return
        jobs = [render_job(self.settings, ev, i) for i in range(len(ev["repeats"]))]
        desired = [Desired(job, f"evaluation {ev['_id']} ({ev['request']['template']})") for job in jobs]
        outcome = self._reconciler(ev).reconcile(desired, commit=f"evaluation:{ev['_id']}", trigger="evaluation")
        errors = [r for r in outcome.results if r.get("error")]
        for error in errors:
            self.apply(ev["_id"], {"id": f"apply-{error['name']}", "type": "job", "job": error["name"],
                                   "state": "failed", "reason": f"the job could not be created: {error['error']}"})

    def delete_jobs(self, ev: dict[str, Any]) -> None:
        """Stop the evaluation's Jobs (a cancel or a timeout); what was stored stays."""
        try:
            self._reconciler(ev).reconcile([], commit=f"evaluation:{ev['_id']}", trigger="stop")
        except RetryableError as exc:
            log.warning("could not stop the jobs of %s yet: %s", ev["_id"], exc.message)

    def ensure_server(self, ev: dict[str, Any]) -> dict[str, Any]:
        if ev["state"] != "waiting" or self.servers is None:
            return ev
        try:
            state = self.servers.ensure(ev["server"])
        except RetryableError as exc:
            log.warning("the vLLM service cannot be asked for %s yet: %s", ev["_id"], exc.message)
            return ev
        if state["state"] == "ready":
            return self.apply(ev["_id"], {"id": f"ready-{state['url']}", "type": "server_ready", "url": state["url"],
                                          "model": state.get("model"), "reused": state.get("reused")})
        if state["state"] in ("failed", "pending"):
            return self.apply(ev["_id"], {"id": f"{state['state']}-{state.get('reason')}", "type": "server_failed",
                                          "pending": state["state"] == "pending", "reason": state.get("reason")})
        return ev

    def judge(self, ev: dict[str, Any]) -> dict[str, Any]:
        baseline, baseline_id = self._baseline(ev)
        chosen = ev["request"].get("verdict_metrics")
        result = verdict.judge(ev["repeats"], baseline["repeats"] if baseline else None, baseline_id=baseline_id,
                               threshold_percent=ev["request"].get("threshold_percent", verdict.DEFAULT_THRESHOLD_PERCENT),
                               metrics=tuple(chosen) if chosen else verdict.KEY_METRICS)
        with self._exclusive(ev["_id"]):
            current = self.store.get(ev["_id"])
            nxt, actions = machine.judged(current, result, _now())
            if nxt is current:
                return current
            stored = self.store.replace(nxt)
        info(log, "evaluation judged", evaluation=ev["_id"], verdict=result["verdict"], baseline=baseline_id)
        return self.act(stored, actions)

    def _baseline(self, ev: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        wanted = ev["request"].get("baseline")
        if wanted == "none":
            return None, None
        if wanted and wanted.startswith("server:"):  # the last passing run of this profile on another server
            namespace, _, name = wanted.split(":", 1)[1].partition("/")
            request = ev["request"]
            doc = self.store.last_passing(f"{request['project']}/{request['benchmark']}/{namespace}/{name}",
                                          exclude=ev["_id"])
            return (doc, doc["_id"]) if doc else (None, None)
        if wanted and wanted != "last":
            try:
                doc = self.store.get(wanted)
            except UserError:
                return None, None
            return (doc, wanted) if doc.get("state") == "done" else (None, None)
        doc = self.store.last_passing(ev["key"], exclude=ev["_id"])
        return (doc, doc["_id"]) if doc else (None, None)

    def _announce(self, ev: dict[str, Any], data: dict[str, Any]) -> None:
        kind = data["type"]
        body = {"evaluation": ev["_id"], "state": ev["state"], "reason": ev.get("reason"),
                "project": ev["request"]["project"], "benchmark": ev["request"]["benchmark"],
                "server": ev.get("server"), "target_url": ev.get("target_url"), "model": ev.get("model"),
                "run_ids": [r["run_id"] for r in ev["repeats"]], "schedule": ev.get("schedule"),
                "labels": ev["request"].get("labels") or {}}
        if "verdict" in data:
            body["verdict"] = data["verdict"]
        self._emit(kind, body, subject=ev["_id"], id=f"{ev['_id']}-{kind.rsplit('.', 1)[-1]}-{ev['state']}")

    # -- what arrives ---------------------------------------------------------------------
    def on_result(self, run_id: str, event_id: str) -> dict[str, Any] | None:
        """A repeat's results were stored (``dev.vllmbench.result.ingested``)."""
        if PART_RUN.fullmatch(run_id):
            return None  # one client pod's part: its shard 0 merges the parts and posts the repeat's run
        evaluation_id = run_id.rsplit("-r", 1)[0] if "-r" in run_id else None
        if not evaluation_id:
            return None
        try:
            self.store.get(evaluation_id)
        except UserError:
            return None  # a run that is not an evaluation's
        answer = self.results.get(f"/runs/{run_id}")
        records = answer.get("standardized") or []
        trustworthy, reasons = verdict.trust_of(records)
        return self.apply(evaluation_id, {
            "id": f"result-{event_id}", "type": "result", "run_id": run_id,
            "records": [f"{run_id}#{(r.get('run') or {}).get('stage', 0)}" for r in records],
            "metrics": verdict.metrics_of(records), "trustworthy": trustworthy if records else None,
            "trust_reasons": reasons})

    def tick(self) -> dict[str, Any]:
        """Scheduled starts, deadlines, job states, and whatever an earlier action left undone."""
        moved = {}
        for ev in self.store.active():
            try:
                after = self.apply(ev["_id"], {"type": "tick"})
                after = self._follow_jobs(after)
                if after["state"] in ("running", "collecting") and all(r["results"] for r in after["repeats"]):
                    after = self.judge(after)
                moved[ev["_id"]] = after["state"]
            except RetryableError as exc:
                log.warning("tick could not move evaluation %s: %s", ev["_id"], exc.message)
                moved[ev["_id"]] = f"retry later: {exc.message}"
        return moved

    def _follow_jobs(self, ev: dict[str, Any]) -> dict[str, Any]:
        from vllmbench.jobs import job_pods, last_lines
        from vllmbench.reconcile.health import health

        if ev["state"] not in ("running", "collecting"):
            return ev
        runtime = self._runtime()
        for repeat in ev["repeats"]:
            if not repeat["job"] or repeat["job_state"] in ("complete", "failed"):
                continue
            job = runtime.get(ObjectRef("batch/v1", "Job", ev["request"]["namespace"], repeat["job"]))
            if job is None:
                continue
            pods = job_pods(runtime, job)
            state = health(job, pods=pods)
            if state.state in ("failed",):
                tails = last_lines(runtime, ev["request"]["namespace"], pods, newest=2)
                state = health(job, pods=pods, logs=tails)
            mapped = {"complete": "complete", "failed": "failed", "running": "running", "unsupported": "failed"}.get(
                state.state)
            if mapped and mapped != repeat["job_state"]:
                ev = self.apply(ev["_id"], {"id": f"job-{repeat['job']}-{mapped}", "type": "job", "job": repeat["job"],
                                            "state": mapped, "reason": f"{state.reason}: {state.message}"})
        return ev
