"""Schedules from Git at work: PingSources in a cluster, the minute tick under the local runtime.

``schedules/`` is read from the configuration repository at its head on every tick (a
commit there takes effect at the next minute, without a restart). With the ``kube``
runtime each enabled schedule is reconciled into a PingSource (owner ``eval``, partition
``schedules``: removed from Git, it is pruned and stops); a PingSource's event starts
the evaluation. With the ``local`` runtime the tick itself looks for fires since it last
looked. Either way one fire makes one evaluation (its id is the schedule and the
minute), and the concurrency policy (Forbid, Allow, Replace) applies as for a CronJob.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from vllmbench.errors import RetryableError, UserError
from vllmbench.evals import schedules
from vllmbench.logs import get_logger, info
from vllmbench.models.evaluations import EvaluateRequest, ScheduleSpec

log = get_logger("vllmbench.evals")
PINGSOURCE_PARTITION = "schedules"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def read(settings: Any) -> tuple[dict[str, ScheduleSpec], dict[str, str], str]:
    from gitops import installation

    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        folder = installation.read_folder(repo, commit, schedules.FOLDER)
    specs, problems = schedules.parse(folder.files)
    problems.update({path: f"{path}: {why}" for path, why in folder.skipped.items()})
    return specs, problems, commit


def listing(settings: Any) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from croniter import croniter

    specs, problems, commit = read(settings)
    now = _now()
    items = []
    for name, spec in sorted(specs.items()):
        upcoming = croniter(spec.schedule, now.astimezone(ZoneInfo(spec.timezone))).get_next(dt.datetime)
        items.append({"name": name, **spec.model_dump(mode="json", exclude_none=True),
                      "next_fire": upcoming.astimezone(dt.timezone.utc).isoformat() if spec.enabled else None})
    return {"commit": commit, "schedules": items, "problems": problems}


def request_of(spec: ScheduleSpec) -> EvaluateRequest:
    return EvaluateRequest(project=spec.project, benchmark=spec.benchmark, server=spec.server,
                           target_url=spec.target_url, model_name=spec.model_name, template=spec.template,
                           harness=spec.harness, repeat=spec.repeat, baseline=spec.baseline, labels=spec.labels,
                           timeout_s=spec.timeout_s)


def fire(ctx: Any, start: Callable[..., Any], evaluator: Any, name: str | None, event: Any,
         when: dt.datetime | None = None) -> dict[str, Any]:
    """One fire of schedule ``name`` (a PingSource's event, or the local tick)."""
    from vllmbench.store.evaluations import Evaluations

    if not name:
        return {"ignored": "a schedule event without a schedule name"}
    specs, problems, _ = read(ctx.settings)
    spec = specs.get(name)
    if spec is None or not spec.enabled:
        why = "disabled" if spec is not None else "not in schedules/ at the head" + (
            f" ({next(iter(problems.values()))})" if problems else "")
        return {"ignored": f"schedule {name!r} is {why}"}
    when = when or _fire_time(event)
    evaluation_id = schedules.evaluation_id(name, when)
    running = [ev for ev in Evaluations(ctx.db).active() if ev.get("schedule") == name and ev["_id"] != evaluation_id]
    if running and spec.concurrency_policy == "Forbid":
        info(log, "schedule skipped: previous run still active", schedule=name, active=[e["_id"] for e in running])
        return {"skipped": f"concurrency policy Forbid: {running[0]['_id']} is still {running[0]['state']}"}
    if running and spec.concurrency_policy == "Replace":
        for ev in running:
            evaluator.apply(ev["_id"], {"id": f"replaced-by-{evaluation_id}", "type": "cancel",
                                        "reason": f"replaced by {evaluation_id} (concurrency policy Replace)"})
    try:
        ev, created = start(ctx, request_of(spec), schedule=name, evaluation_id=evaluation_id)
    except UserError as exc:
        log.warning("schedule %s could not start an evaluation: %s", name, exc.message)
        return {"failed": exc.message}
    return {"evaluation": ev["_id"], "created": created, "state": ev["state"]}


def _fire_time(event: Any) -> dt.datetime:
    stamp = event.get("time") if hasattr(event, "get") else None
    try:
        when = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else _now()
    except ValueError:
        when = _now()
    return when.replace(second=0, microsecond=0)


def on_tick(ctx: Any, start: Callable[..., Any], evaluator: Any, runtime: Any) -> dict[str, Any]:
    """Keep the cluster's PingSources in step with Git, or (local runtime) fire what is due."""
    try:
        specs, problems, commit = read(ctx.settings)
    except RetryableError as exc:
        return {"error": exc.message}
    if runtime.name == "kube":
        return _reconcile_pingsources(ctx, runtime, specs, commit) | {"problems": problems}
    return _fire_due(ctx, start, evaluator, specs) | {"problems": problems}


def _reconcile_pingsources(ctx: Any, runtime: Any, specs: dict[str, ScheduleSpec], commit: str) -> dict[str, Any]:
    from vllmbench.reconcile.engine import Reconciler
    from vllmbench.reconcile.objects import Desired
    from vllmbench.runtimes.base import KINDS

    namespace = ctx.settings.functions_namespace
    desired = [Desired(schedules.pingsource(name, spec, namespace=namespace, sink_service="benchmark-eval"),
                       f"schedules/{name}.yaml") for name, spec in sorted(specs.items()) if spec.enabled]
    engine = Reconciler(runtime, ctx.db, owner="eval", namespaces=[namespace],
                        kinds=[KINDS[("sources.knative.dev/v1", "PingSource")]], partition=PINGSOURCE_PARTITION)
    outcome = engine.reconcile(desired, commit=commit, trigger="tick")
    return {"pingsources": outcome.plan.counts(), "errors": outcome.errors}


def _fire_due(ctx: Any, start: Callable[..., Any], evaluator: Any, specs: dict[str, ScheduleSpec]) -> dict[str, Any]:
    from vllmbench.store.evaluations import Evaluations

    store = Evaluations(ctx.db)
    now = _now()
    fired = {}
    for name, spec in sorted(specs.items()):
        checked = store.schedule_checked(name)
        if checked is None:  # a new schedule: it fires from now on, not for its past
            store.mark_schedule(name, now)
            continue
        when = schedules.last_fire(spec, after=checked if checked.tzinfo else checked.replace(tzinfo=dt.timezone.utc),
                                   now=now) if spec.enabled else None
        if when is not None:
            fired[name] = fire(ctx, start, evaluator, name, {}, when=when)  # a retryable failure re-fires next tick
        store.mark_schedule(name, now)
    return {"fired": fired}
