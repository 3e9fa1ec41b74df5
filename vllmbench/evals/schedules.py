"""Schedules in Git (``schedules/<name>.yaml``): when they fire, and their PingSources. Pure.

In a cluster each enabled schedule becomes a Knative PingSource (``eval-<name>``, in the
functions' namespace) that sends ``{"job": "schedule", "schedule": <name>}`` to the eval
function; they are applied by the reconcile engine as the ``eval`` owner, so one
removed from Git is pruned and stops. Under ``make run`` (the local runtime, no
PingSources) the eval function's minute tick asks :func:`last_fire` of every schedule
in the synced configuration instead: the same schedules fire, added or removed without
a restart.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.models.evaluations import ScheduleSpec

FOLDER = "schedules"


def name_of(path: str, spec: ScheduleSpec) -> str:
    return spec.name or path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def last_fire(spec: ScheduleSpec, *, after: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest fire time in ``(after, now]``, or None. Missed fires are not caught up one by
    one: a tick that was late starts the schedule once, as a CronJob does."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    zone = ZoneInfo(spec.timezone)
    it = croniter(spec.schedule, now.astimezone(zone))
    previous = it.get_prev(dt.datetime).astimezone(dt.timezone.utc)
    return previous if previous > after else None


def evaluation_id(schedule: str, fire: dt.datetime) -> str:
    """One evaluation per schedule and fire time, whoever notices the fire first (idempotent)."""
    return f"{schedule}-{fire.astimezone(dt.timezone.utc).strftime('%Y%m%d-%H%M')}"[:63].strip("-")


def pingsource(name: str, spec: ScheduleSpec, *, namespace: str, sink_service: str) -> dict[str, Any]:
    """The PingSource of one schedule (Knative's ``sources.knative.dev/v1``)."""
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": f"eval-{name}"[:63], "namespace": namespace,
                     "labels": {"vllmbench.dev/schedule": name}},
        "spec": {
            "schedule": spec.schedule,
            "timezone": spec.timezone,
            "contentType": "application/json",
            "data": f'{{"job": "schedule", "schedule": "{name}"}}',
            "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": sink_service},
                     "uri": "/events"},
        },
    }


def parse(files: dict[str, bytes]) -> tuple[dict[str, ScheduleSpec], dict[str, str]]:
    """Schedule name -> spec for every valid file; path -> problem for the others."""
    import yaml
    from pydantic import ValidationError

    specs: dict[str, ScheduleSpec] = {}
    problems: dict[str, str] = {}
    for path, data in sorted(files.items()):
        try:
            document = yaml.safe_load(data.decode("utf-8"))
            spec = ScheduleSpec.model_validate(document)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problems[path] = f"{path}: not valid YAML: {exc}"
            continue
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            problems[path] = f"{path}: {'.'.join(str(p) for p in first['loc']) or '(file)'}: {first['msg']}"
            continue
        name = name_of(path, spec)
        if name in specs:
            problems[path] = f"{path}: schedule {name!r} is defined twice"
            continue
        specs[name] = spec
    return specs, problems
