"""lm-evaluation-harness's results JSON (``results_<date>.json``) -> one accuracy record.

The file holds ``results`` (per task or group: ``"<metric>,<filter>"`` values and their
``"<metric>_stderr,<filter>"``, with ``alias`` and ``sample_len``), ``n-samples`` (per
task: ``original`` and ``effective``), ``higher_is_better`` (per task, per metric),
``versions``, ``n-shot``, ``config`` (``model``, ``model_args`` as a dict or a
``k=v,...`` string, ``limit``, seeds), ``date`` (unix time of the start),
``total_evaluation_time_seconds`` (a string) and ``lm_eval_version``.

Mapping: each metric becomes ``results.accuracy[task][name]`` with its value, stderr
(None where lm-eval wrote "N/A") and the samples it was computed over; the name is
lm-eval's without ``,none`` (``acc``, ``acc_norm``, ``exact_match,strict-match``).
lm-eval reports no HTTP requests and fails the whole run when one fails for good, so
``requests`` counts the samples evaluated, all succeeded; it measures no throughput
(``throughput`` stays empty) and no latency. The load is the ``num_concurrent``
requests it kept in flight.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import (
    AccuracyMetric, Harness, LoadProfile, RawInput, RequestCounts, Results, RunInfo, Scenario, StandardizedRecord,
)
from vllmbench.standardize._common import utc_from_unix

_NOT_METRICS = {"alias", "name", "sample_len", "samples", "sample_count"}


def _model_args(config: dict[str, Any]) -> dict[str, Any]:
    args = config.get("model_args")
    if isinstance(args, dict):
        return args
    if isinstance(args, str):  # older lm-eval: "model=x,base_url=...,num_concurrent=8"
        return dict(part.split("=", 1) for part in args.split(",") if "=" in part)
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _samples(data: dict[str, Any], task: str, entry: dict[str, Any]) -> int | None:
    counts = (data.get("n-samples") or {}).get(task)
    if isinstance(counts, dict) and isinstance(counts.get("effective"), int):
        return counts["effective"]
    return entry["sample_len"] if isinstance(entry.get("sample_len"), int) else None


def _task(data: dict[str, Any], task: str, entry: dict[str, Any], skipped: list[str]) -> dict[str, AccuracyMetric]:
    better = (data.get("higher_is_better") or {}).get(task) or {}
    samples = _samples(data, task, entry)
    metrics: dict[str, AccuracyMetric] = {}
    for key, value in entry.items():
        metric, _, filter_name = key.partition(",")
        if key in _NOT_METRICS or metric.endswith("_stderr"):
            continue
        number = _number(value)
        if number is None:
            skipped.append(f"{task}/{key}")
            continue
        stderr = _number(entry.get(f"{metric}_stderr,{filter_name}" if filter_name else f"{metric}_stderr"))
        name = metric if filter_name in ("", "none") else f"{metric},{filter_name}"
        hib = better.get(metric)
        metrics[name] = AccuracyMetric(value=number, stderr=abs(stderr) if stderr is not None else None,
                                       samples=samples, higher_is_better=hib if isinstance(hib, bool) else None)
    return metrics


def from_raw(raw: RawInput) -> list[StandardizedRecord]:
    data = raw.data
    results = data.get("results")
    if not isinstance(results, dict) or not results:
        raise ValidationFailed("lm-eval output needs a non-empty 'results' object (the results_<date>.json that "
                               f"`lm_eval --output_path` writes); got keys {sorted(data)[:10]}")
    skipped: list[str] = []
    accuracy: dict[str, dict[str, AccuracyMetric]] = {}
    for task, entry in results.items():
        if not isinstance(entry, dict):
            raise ValidationFailed(f"lm-eval results[{task!r}] is not an object")
        metrics = _task(data, str(task), entry, skipped)
        if metrics:
            accuracy[str(task)] = metrics
    if not accuracy:
        raise ValidationFailed("lm-eval results hold no numeric metric: " + ", ".join(skipped[:10] or list(results)[:10]))
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = _model_args(config)
    try:
        concurrency = max(1, int(args.get("num_concurrent") or 1))
    except (TypeError, ValueError):
        concurrency = 1
    evaluated = sum(n for n in ((data.get("n-samples") or {}).get(t, {}).get("effective") for t in results)
                    if isinstance(n, int)) or max((m.samples or 0 for t in accuracy.values() for m in t.values()), default=0)
    started = utc_from_unix(_number(data.get("date"))) or raw.started_at or dt.datetime.now(dt.timezone.utc)
    try:
        duration = float(data.get("total_evaluation_time_seconds"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        duration = None
    duration = duration if duration is not None and 0 <= duration < float("inf") else None
    tasks = ",".join(sorted(accuracy))
    labels = {"source_format": "lm-eval-results-json",
              "requests": "samples evaluated: lm-eval reports no HTTP requests, and a request failing for good fails "
                          "the run"}
    shots = data.get("n-shot") or {}
    if isinstance(shots, dict) and shots:
        labels["n_shot"] = ",".join(f"{t}={n}" for t, n in sorted(shots.items()))[:1000]
    versions = data.get("versions") or {}
    if isinstance(versions, dict) and versions:
        labels["task_versions"] = ",".join(f"{t}={v}" for t, v in sorted(versions.items()))[:1000]
    if config.get("limit") is not None:
        labels["limit"] = f"{config['limit']} samples per task (lm-eval --limit): not a full evaluation"
    if skipped:
        labels["skipped_metrics"] = "not numbers: " + ", ".join(skipped)[:1000]
    return [StandardizedRecord(
        run=RunInfo(run_id=raw.run_id, stage=0, project=raw.project, started_at=started,
                    ended_at=started + dt.timedelta(seconds=duration) if duration is not None else None,
                    duration_s=duration),
        scenario=Scenario(
            model=raw.model or str(args.get("model") or data.get("model_name") or "unknown"),
            load=LoadProfile(mode="concurrency", concurrency=concurrency, streaming=False,
                             endpoint="chat" if "chat" in str(config.get("model") or "") else "completions",
                             dataset=f"lm-eval:{tasks}"[:500]),
            harness=Harness(name="lm-eval", version=raw.harness.version or _text(data.get("lm_eval_version"))),
        ),
        results=Results(requests=RequestCounts(total=evaluated, succeeded=evaluated, failed=0), accuracy=accuracy),
        tags=list(raw.tags),
        labels=labels,
    )]


def _text(value: Any) -> str | None:
    return str(value)[:100] if value else None
