"""MLflow's JSON (registered models, versions, runs) as our records: pure, no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.models.mlflow import ModelVersionRecord, RunSummary

# Tags the write-back sets: never part of what decides a file, or a verdict would rewrite it.
OWN_TAG_PREFIX = "vllmbench."
READY = "READY"
PENDING = "PENDING_REGISTRATION"


def _time(ms: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _pairs(items: Any) -> dict[str, str]:
    return {str(item.get("key")): str(item.get("value", "")) for item in items or [] if item.get("key") is not None}


def run_summary(run: dict[str, Any] | None) -> RunSummary | None:
    if not run:
        return None
    info, data = run.get("info") or {}, run.get("data") or {}
    metrics: dict[str, float] = {}
    for metric in data.get("metrics") or []:
        try:
            value = float(metric.get("value"))
        except (TypeError, ValueError):
            continue
        if value == value and value not in (float("inf"), float("-inf")):  # NaN and Infinity are not JSON
            metrics[str(metric.get("key"))] = value
    return RunSummary(run_id=str(info.get("run_id") or info.get("run_uuid") or ""),
                      experiment_id=info.get("experiment_id"), run_name=info.get("run_name"),
                      status=info.get("status"), params=_pairs(data.get("params")), metrics=metrics)


def version_record(version: dict[str, Any], run: dict[str, Any] | None = None) -> ModelVersionRecord:
    """One ``model_version`` of MLflow's REST answers (with its run, when it has one)."""
    return ModelVersionRecord(
        model=str(version["name"]), version=int(version["version"]), source=str(version.get("source") or ""),
        run_id=version.get("run_id") or None, run_link=version.get("run_link") or None,
        status=str(version.get("status") or READY), stage=str(version.get("current_stage") or "None"),
        description=str(version.get("description") or ""), tags=_pairs(version.get("tags")),
        aliases=sorted(str(a) for a in version.get("aliases") or []),
        created_at=_time(version.get("creation_timestamp")), updated_at=_time(version.get("last_updated_timestamp")),
        run=run_summary(run))


def model_aliases(model: dict[str, Any]) -> dict[str, int]:
    """alias -> version of a ``registered_model`` (search and get both carry them)."""
    found: dict[str, int] = {}
    for item in model.get("aliases") or []:
        try:
            found[str(item["alias"])] = int(item["version"])
        except (KeyError, TypeError, ValueError):
            continue
    return found


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags people set: without ours (``vllmbench.*``) and MLflow's internal ones (``mlflow.*``)."""
    return {k: v for k, v in tags.items() if not k.startswith((OWN_TAG_PREFIX, "mlflow."))}


def settled(version: dict[str, Any]) -> bool:
    """A version whose registration has finished (READY or FAILED): the cursor may pass it."""
    return str(version.get("status") or READY) != PENDING
