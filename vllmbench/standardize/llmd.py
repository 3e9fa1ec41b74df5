"""The llm-d Benchmark Report v0.2, to and from the standardized record.

v0.2 has no goodput, no trust figures, no failure causes and no sample counts; on
export those travel in ``scenario.load.native.config.vllmbench`` (a free-form field of
the report), so that ``from_llmd(to_llmd(record)) == record``. Reports written by
other tools import with what they carry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import ValidationError

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import (
    Accelerator,
    Harness,
    LengthDistribution,
    LoadProfile,
    Parallelism,
    RawInput,
    RequestCounts,
    Results,
    RunInfo,
    Scenario,
    StandardizedRecord,
    Stats,
    Throughput,
)

VERSION = "0.2"
# our Stats field -> v0.2 Statistics field
_FIGURES = {"mean": "mean", "stddev": "stddev", "min": "min", "p50": "p50", "p90": "p90", "p95": "p95",
            "p99": "p99", "p999": "p99p9", "max": "max"}
_LATENCIES = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "tpot": "time_per_output_token",
              "ntpot": "normalized_time_per_output_token", "e2e": "request_latency"}
_DISTRIBUTIONS = {"fixed": "fixed", "normal": "gaussian", "uniform": "uniform", "dataset": "other", "other": "other"}
_SCALE_TO_MS = {"ms": 1.0, "s": 1000.0, "ms/token": 1.0, "s/token": 1000.0}


def _cfg_id(value: Any) -> str:
    return hashlib.md5(json.dumps(value, sort_keys=True, default=str).encode(), usedforsecurity=False).hexdigest()


def _stats_out(stats: Stats | None, units: str) -> dict[str, Any] | None:
    if stats is None:
        return None
    out: dict[str, Any] = {"units": units}
    for ours, theirs in _FIGURES.items():
        value = getattr(stats, ours)
        if value is not None:
            out[theirs] = value
    return out


def _length_out(dist: LengthDistribution | None) -> dict[str, Any] | None:
    if dist is None:
        return None
    out: dict[str, Any] = {"distribution": _DISTRIBUTIONS[dist.kind], "value": max(dist.mean, 1)}
    if dist.stddev is not None:
        out["std_dev"] = dist.stddev
    if dist.min is not None:
        out["min"] = dist.min
    if dist.max is not None:
        out["max"] = dist.max
    return out


def to_llmd(record: StandardizedRecord) -> dict[str, Any]:
    """The record as an llm-d Benchmark Report v0.2 document (JSON-ready)."""
    run, scenario, results = record.run, record.scenario, record.results
    load = scenario.load
    engine: dict[str, Any] = {"tool": scenario.engine, "tool_version": scenario.engine_version or "unknown",
                              "role": "aggregate", "model": {"name": scenario.model}}
    if scenario.accelerator is not None:
        engine["accelerator"] = {**scenario.accelerator.model_dump(),
                                 "parallelism": scenario.parallelism.model_dump()}
    load_std: dict[str, Any] = {
        "tool": scenario.harness.name, "tool_version": scenario.harness.version or "unknown",
        "source": "random" if (load.dataset in (None, "synthetic")) else "sampled",
        "stage": run.stage,
        "input_seq_len": _length_out(load.input_tokens) or {"distribution": "other", "value": 1},
    }
    if load.output_tokens is not None:
        load_std["output_seq_len"] = _length_out(load.output_tokens)
    if load.rate_rps is not None:
        load_std["rate_qps"] = load.rate_rps
    if load.concurrency is not None:
        load_std["concurrency"] = load.concurrency
    extras = record.model_dump(mode="json")  # everything, so import restores the record exactly
    report: dict[str, Any] = {
        "version": VERSION,
        "run": {"uid": run.run_id, "eid": run.experiment_id,
                "time": {"start": run.started_at.isoformat(),
                         "end": run.ended_at.isoformat() if run.ended_at else None,
                         "duration": f"PT{run.duration_s}S" if run.duration_s is not None else None}},
        "scenario": {
            "stack": [{"metadata": {"kind": "inference_engine", "schema_version": "0.0.1", "label": "engine-0",
                                    "cfg_id": _cfg_id(engine)},
                       "standardized": engine, "native": {}}],
            "load": {"metadata": {"schema_version": "0.0.1", "cfg_id": _cfg_id(load_std)},
                     "standardized": load_std, "native": {"config": {"vllmbench": extras}}},
        },
        "results": {"request_performance": {"aggregate": {
            "requests": {"total": results.requests.total, "failures": results.requests.failed,
                         "incomplete": results.requests.total - results.requests.succeeded - results.requests.failed,
                         "input_length": _stats_out(results.input_tokens, "count"),
                         "output_length": _stats_out(results.output_tokens, "count")},
            "latency": {theirs: _stats_out(getattr(results.latency, ours), "ms" if ours in ("ttft", "e2e") else "ms/token")
                        for ours, theirs in _LATENCIES.items()},
            # An accuracy-only record measured no throughput (llm-d's report has no accuracy fields).
            "throughput": None if results.throughput is None else {
                "input_token_rate": {"units": "tokens/s", "mean": results.throughput.input_tokens_per_s},
                "output_token_rate": {"units": "tokens/s", "mean": results.throughput.output_tokens_per_s},
                "total_token_rate": {"units": "tokens/s", "mean": results.throughput.total_tokens_per_s},
                "requests_rate": {"units": "queries/s", "mean": results.throughput.requests_per_s},
            },
        }}},
    }
    return _drop_none(report)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def from_llmd(report: dict[str, Any]) -> StandardizedRecord:
    """A standardized record from an llm-d v0.2 report (ours restores exactly)."""
    try:
        if str(report.get("version")) != VERSION:
            raise ValueError(f"version is {report.get('version')!r}; expected '0.2'")
        load = ((report.get("scenario") or {}).get("load") or {})
        ours = ((load.get("native") or {}).get("config") or {}).get("vllmbench") if isinstance(load, dict) else None
        if isinstance(ours, dict):
            return StandardizedRecord.model_validate(ours)
        return _foreign(report)
    except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValidationFailed(f"not a valid llm-d Benchmark Report v0.2: {exc}") from exc


def _stats_in(doc: dict[str, Any] | None, units: str) -> Stats | None:
    if not doc or doc.get("mean") is None:
        return None
    scale = _SCALE_TO_MS.get(str(doc.get("units")), 1.0) if units in ("ms", "ms/token") else 1.0
    figures = {ours: float(doc[theirs]) * scale for ours, theirs in _FIGURES.items() if doc.get(theirs) is not None}
    return Stats(units=units, **figures)  # type: ignore[arg-type]


def _length_in(doc: dict[str, Any] | None) -> LengthDistribution | None:
    if not doc:
        return None
    kinds = {"fixed": "fixed", "gaussian": "normal", "random": "uniform", "uniform": "uniform"}
    return LengthDistribution(kind=kinds.get(doc.get("distribution", ""), "other"),  # type: ignore[arg-type]
                              mean=float(doc["value"]), stddev=doc.get("std_dev"), min=doc.get("min"), max=doc.get("max"))


def _foreign(report: dict[str, Any]) -> StandardizedRecord:
    run = report["run"]
    times = run.get("time") or {}
    scenario = report.get("scenario") or {}
    engines = [c for c in scenario.get("stack") or [] if (c.get("metadata") or {}).get("kind") == "inference_engine"]
    engine = engines[0]["standardized"] if engines else {}
    accel = engine.get("accelerator")
    load = (scenario.get("load") or {}).get("standardized") or {}
    aggregate = report["results"]["request_performance"]["aggregate"]
    requests = aggregate.get("requests") or {}
    latency = aggregate.get("latency") or {}
    throughput = aggregate.get("throughput") or {}
    total, failed = int(requests.get("total", 0)), int(requests.get("failures") or 0)
    incomplete = int(requests.get("incomplete") or 0)
    concurrency = load.get("concurrency")
    rate = load.get("rate_qps")
    mode = "rate" if rate else "concurrency"
    return StandardizedRecord(
        run=RunInfo(run_id=str(run.get("uid") or _cfg_id(report))[:128], stage=int(load.get("stage", 0)),
                    experiment_id=run.get("eid"),
                    started_at=times.get("start") or dt.datetime.now(dt.timezone.utc), ended_at=times.get("end")),
        scenario=Scenario(
            model=(engine.get("model") or {}).get("name", "unknown"), engine=engine.get("tool", "unknown"),
            engine_version=engine.get("tool_version"),
            accelerator=Accelerator(model=accel["model"], count=accel["count"]) if accel else None,
            parallelism=Parallelism(**{k: v for k, v in (accel or {}).get("parallelism", {}).items()
                                       if k in ("tp", "pp", "dp", "ep")}),
            load=LoadProfile(mode=mode, rate_rps=rate,
                             concurrency=int(concurrency) if concurrency not in (None, float("inf")) else (None if rate else 1),
                             input_tokens=_length_in(load.get("input_seq_len")),
                             output_tokens=_length_in(load.get("output_seq_len")),
                             dataset="synthetic" if load.get("source") == "random" else load.get("source")),
            harness=Harness(name=str(load.get("tool", "unknown")), version=load.get("tool_version")),
        ),
        results=Results(
            requests=RequestCounts(total=total, failed=failed, succeeded=max(total - failed - incomplete, 0)),
            throughput=Throughput(
                requests_per_s=float((throughput.get("requests_rate") or {}).get("mean", 0)),
                input_tokens_per_s=float((throughput.get("input_token_rate") or {}).get("mean", 0)),
                output_tokens_per_s=float((throughput.get("output_token_rate") or {}).get("mean", 0)),
                total_tokens_per_s=float((throughput.get("total_token_rate") or {}).get("mean", 0))),
            latency={ours: _stats_in(latency.get(theirs), "ms" if ours in ("ttft", "e2e") else "ms/token")
                     for ours, theirs in _LATENCIES.items()},
            input_tokens=_stats_in(requests.get("input_length"), "tokens"),
            output_tokens=_stats_in(requests.get("output_length"), "tokens"),
        ),
    )


def from_raw(raw: RawInput) -> list[StandardizedRecord]:
    """Converter for raw input whose harness is ``llm-d``: the data is one report."""
    record = from_llmd(raw.data)
    return [record]
