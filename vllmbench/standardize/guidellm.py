"""GuideLLM's JSON report (``benchmarks.json``) -> one standardized record per benchmark.

The report is ``{"args": {...}, "benchmarks": [GenerativeBenchmark, ...]}``; each
benchmark has ``config.strategy`` (``type_`` constant / poisson / concurrent /
synchronous / throughput, with ``rate`` or ``streams``), ``scheduler_metrics`` (unix
times) and ``metrics``, whose entries are status breakdowns (``successful``,
``incomplete``, ``errored``, ``total``) of distribution summaries (``mean``,
``std_dev``, ``min``, ``max``, ``count``, ``percentiles.{p50,p90,p95,p99,p999}``).

Mapping: GuideLLM's ``inter_token_latency_ms`` is a per-request average,
(last token - first token) / (tokens - 1), which is our TPOT; its
``time_per_output_token_ms`` is latency / tokens, our NTPOT. It has no every-gap ITL,
so ``latency.itl`` stays empty. ``request_latency`` is in seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import (
    Goodput, Harness, Latency, LoadProfile, RawInput, RequestCounts, Results, RunInfo, Scenario, Slo,
    StandardizedRecord, Stats, Throughput,
)
from vllmbench.standardize._common import number, stats_from, utc_from_unix


def _dist(metrics: dict[str, Any], name: str, *, scale: float = 1.0, units: str = "ms") -> Stats | None:
    entry = metrics.get(name)
    if not isinstance(entry, dict):
        return None
    dist = entry.get("successful")
    if not isinstance(dist, dict) or not dist.get("count"):
        return None
    where = f"metrics.{name}.successful"
    pct = dist.get("percentiles") or {}
    figures = {k: (number(pct[k], f"{where}.percentiles.{k}") * scale if k in pct else None)
               for k in ("p50", "p90", "p95", "p99", "p999")}
    figures["min"] = number(dist["min"], f"{where}.min") * scale if "min" in dist else None
    figures["max"] = number(dist["max"], f"{where}.max") * scale if "max" in dist else None
    stats, _ = stats_from(figures, count=int(dist["count"]), mean=number(dist.get("mean"), f"{where}.mean") * scale,
                          stddev=float(dist.get("std_dev") or 0.0) * scale, units=units)
    return stats


def _mean(metrics: dict[str, Any], name: str) -> float:
    try:
        return max(0.0, float(metrics[name]["successful"]["mean"]))
    except (KeyError, TypeError, ValueError):
        return 0.0


def _load(strategy: dict[str, Any], metrics: dict[str, Any]) -> LoadProfile:
    kind = str(strategy.get("type_") or strategy.get("type") or "")
    if kind in ("constant", "poisson"):
        rate = strategy.get("rate")
        if not isinstance(rate, (int, float)) or rate <= 0:
            raise ValidationFailed(f"GuideLLM strategy {kind!r} has no positive rate")
        return LoadProfile(mode="rate", arrival=kind, rate_rps=float(rate))  # type: ignore[arg-type]
    if kind == "synchronous":
        return LoadProfile(mode="concurrency", concurrency=1)
    if kind == "concurrent":
        return LoadProfile(mode="concurrency", concurrency=int(strategy.get("streams") or 1))
    if kind == "throughput":
        peak = (metrics.get("request_concurrency") or {}).get("successful", {}).get("max") or 1
        cap = strategy.get("max_concurrency") or round(peak)
        return LoadProfile(mode="concurrency", concurrency=max(1, int(cap)))
    raise ValidationFailed(f"GuideLLM strategy type {kind!r} is not one of constant, poisson, synchronous, "
                           "concurrent, throughput")


def _goodput(config: dict[str, Any], metrics: dict[str, Any]) -> Goodput | None:
    """GuideLLM 0.8's goodput (``--metrics`` with an ``slo``): attainment over the requests it could judge."""
    slo, attainment = config.get("slo") or {}, metrics.get("slo_attainment")
    if not isinstance(attainment, (int, float)) or not isinstance(slo, dict):
        return None
    judged = int(metrics.get("slo_determined_requests") or 0)
    return Goodput(slo=Slo(ttft_ms=slo.get("ttft_ms"), tpot_ms=slo.get("tpot_ms"), e2e_ms=slo.get("e2el_ms")),
                   good_requests=round(attainment * judged), requests_per_s=_mean(metrics, "request_goodput"),
                   fraction=min(1.0, max(0.0, float(attainment))))


def _benchmark(raw: RawInput, index: int, bench: dict[str, Any], model: str, version: str | None) -> StandardizedRecord:
    metrics = bench.get("metrics")
    config = bench.get("config") or {}
    if not isinstance(metrics, dict):
        raise ValidationFailed(f"GuideLLM benchmarks[{index}] has no 'metrics' object")
    totals = metrics.get("request_totals") or {}
    ok = int(totals.get("successful", 0))
    errored, incomplete = int(totals.get("errored", 0)), int(totals.get("incomplete", 0))
    sched = bench.get("scheduler_metrics") or {}
    started = utc_from_unix(sched.get("measure_start_time") or bench.get("start_time")) or raw.started_at \
        or dt.datetime.now(dt.timezone.utc)
    ended = utc_from_unix(sched.get("measure_end_time") or bench.get("end_time"))
    failures = {k: v for k, v in (("errored", errored), ("incomplete", incomplete)) if v}
    in_rate, out_rate = _mean(metrics, "prompt_tokens_per_second"), _mean(metrics, "output_tokens_per_second")
    return StandardizedRecord(
        run=RunInfo(run_id=raw.run_id, stage=index, project=raw.project, started_at=started,
                    ended_at=ended if ended and ended >= started else None,
                    duration_s=(ended - started).total_seconds() if ended and ended >= started else None),
        scenario=Scenario(model=model, load=_load(config.get("strategy") or {}, metrics),
                          harness=Harness(name="guidellm", version=version)),
        results=Results(
            requests=RequestCounts(total=ok + errored + incomplete, succeeded=ok, failed=errored + incomplete,
                                   failures_by_cause=failures),
            throughput=Throughput(requests_per_s=_mean(metrics, "requests_per_second"), input_tokens_per_s=in_rate,
                                  output_tokens_per_s=out_rate,
                                  total_tokens_per_s=_mean(metrics, "tokens_per_second") or in_rate + out_rate),
            latency=Latency(
                ttft=_dist(metrics, "time_to_first_token_ms"),
                tpot=_dist(metrics, "inter_token_latency_ms", units="ms/token"),
                ntpot=_dist(metrics, "time_per_output_token_ms", units="ms/token"),
                e2e=_dist(metrics, "request_latency", scale=1000.0),
            ),
            input_tokens=_dist(metrics, "prompt_token_count", units="tokens"),
            output_tokens=_dist(metrics, "output_token_count", units="tokens"),
            token_counts_from="unknown",
            goodput=_goodput(config, metrics),
        ),
        tags=list(raw.tags),
        labels={"source_format": "guidellm-benchmarks-json", "itl": "not reported (GuideLLM averages per request)"},
    )


def from_raw(raw: RawInput) -> list[StandardizedRecord]:
    data = raw.data
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list) or not benchmarks:
        raise ValidationFailed("GuideLLM report needs a non-empty 'benchmarks' list (the benchmarks.json that "
                               f"`guidellm benchmark run --output-path` writes); got keys {sorted(data)[:10]}")
    args = data.get("args") if isinstance(data.get("args"), dict) else {}
    spec = (data.get("config") or {}).get("spec") if isinstance(data.get("config"), dict) else None  # 0.8.1
    backend = (spec or {}).get("backend") if isinstance(spec, dict) else None
    model = raw.model or args.get("model") or (backend or {}).get("model") or "unknown"
    version = raw.harness.version or (data.get("metadata") or {}).get("guidellm_version")
    out = []
    for index, bench in enumerate(benchmarks):
        if not isinstance(bench, dict):
            raise ValidationFailed(f"GuideLLM benchmarks[{index}] is not an object")
        try:
            out.append(_benchmark(raw, index, bench, str(model), version))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationFailed):
                raise
            raise ValidationFailed(f"GuideLLM benchmarks[{index}] is malformed: {exc.__class__.__name__}: {exc}") from exc
    return out
