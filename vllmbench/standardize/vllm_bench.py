"""``vllm bench serve --save-result`` JSON -> one standardized record.

The result holds ``date`` (%Y%m%d-%H%M%S), ``model_id``, ``request_rate`` (a number or
"inf"), ``burstiness``, ``max_concurrency``, ``duration`` (s), ``completed``,
``failed``, ``total_input_tokens``, ``total_output_tokens``, ``request_throughput``,
``request_goodput``, ``output_throughput``, ``total_token_throughput`` and, per metric
(ttft, tpot, itl, e2el), ``mean_X_ms``, ``median_X_ms``, ``std_X_ms`` and ``pN_X_ms``
for the percentiles asked for (p99 by default). With ``--save-detailed`` it adds
per-request ``ttfts`` and ``itls`` (seconds); then every statistic is computed from
them. Otherwise percentiles it did not report are filled from the nearest reported
one, and the record's labels say so. Its ITL is every gap, like ours.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import (
    Goodput, Harness, Latency, LoadProfile, RawInput, RequestCounts, Results, RunInfo, Scenario, Slo,
    StandardizedRecord, Stats, Throughput,
)
from vllmbench.standardize._common import number, stats_from
from vllmbench.stats import summarize

REQUIRED = ("completed", "duration", "request_throughput", "output_throughput")
PCT = {"p50": "50", "p90": "90", "p95": "95", "p99": "99", "p999": "99.9"}


def _metric(data: dict[str, Any], name: str, units: str = "ms") -> tuple[Stats | None, bool]:
    mean = data.get(f"mean_{name}_ms")
    if not isinstance(mean, (int, float)):
        return None, False
    figures: dict[str, float | None] = {k: data.get(f"p{v}_{name}_ms") for k, v in PCT.items()}
    if figures["p50"] is None:
        figures["p50"] = data.get(f"median_{name}_ms")
    count = int(data.get("completed", 0))
    return stats_from(figures, count=count, mean=float(mean), stddev=float(data.get(f"std_{name}_ms") or 0.0), units=units)


def _detailed(data: dict[str, Any]) -> tuple[Stats | None, Stats | None]:
    ttfts = [t * 1000 for t in data.get("ttfts") or [] if isinstance(t, (int, float)) and t > 0]
    itls = [g * 1000 for row in data.get("itls") or [] if isinstance(row, list) for g in row if isinstance(g, (int, float))]
    return summarize(ttfts) if ttfts else None, summarize(itls) if itls else None


def _started(data: dict[str, Any], raw: RawInput) -> dt.datetime:
    date = data.get("date")
    if isinstance(date, str):
        try:
            return dt.datetime.strptime(date, "%Y%m%d-%H%M%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return raw.started_at or dt.datetime.now(dt.timezone.utc)


def from_raw(raw: RawInput) -> list[StandardizedRecord]:
    data = raw.data
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValidationFailed(f"vllm bench serve result lacks {', '.join(missing)}: expected the JSON written by "
                               "`vllm bench serve --save-result`")
    completed = int(number(data["completed"], "completed"))
    failed = int(data.get("failed") or max(0, int(data.get("num_prompts") or completed) - completed))
    duration = number(data["duration"], "duration")
    rate, concurrency = data.get("request_rate"), data.get("max_concurrency")
    if isinstance(rate, (int, float)) and rate > 0:
        burst = float(data.get("burstiness") or 1.0)
        # gamma arrivals: shape 1 is Poisson; a shape of 100 or more is within 10% (CV) of a constant rate
        arrival = "poisson" if burst == 1.0 else "constant" if burst >= 100 else "burst"
        load = LoadProfile(mode="rate", arrival=arrival, rate_rps=float(rate),  # type: ignore[arg-type]
                           max_in_flight=concurrency if isinstance(concurrency, int) and concurrency > 0 else None,
                           request_count=data.get("num_prompts") or None)
    else:
        load = LoadProfile(mode="concurrency",
                           concurrency=int(concurrency) if isinstance(concurrency, int) and concurrency > 0
                           else max(1, int(data.get("num_prompts") or completed or 1)),
                           request_count=data.get("num_prompts") or None)
    ttft, ttft_filled = _metric(data, "ttft")
    itl, itl_filled = _metric(data, "itl")
    tpot, tpot_filled = _metric(data, "tpot", "ms/token")
    e2e, e2e_filled = _metric(data, "e2el")
    detail_ttft, detail_itl = _detailed(data)
    ttft, itl = detail_ttft or ttft, detail_itl or itl
    filled = [n for n, f, d in (("ttft", ttft_filled, detail_ttft), ("itl", itl_filled, detail_itl),
                                 ("tpot", tpot_filled, None), ("e2e", e2e_filled, None)) if f and d is None]
    started = _started(data, raw)
    total_in = float(data.get("total_input_tokens") or 0)
    goodput = None
    if isinstance(data.get("request_goodput"), (int, float)) and data["request_goodput"] >= 0:
        good = min(completed, round(data["request_goodput"] * duration))
        goodput = Goodput(slo=Slo(), good_requests=good, requests_per_s=float(data["request_goodput"]),
                          fraction=good / (completed + failed) if completed + failed else 0.0)
    labels = {"source_format": "vllm-bench-serve-result-json"}
    if filled:
        labels["filled_percentiles"] = "percentiles not in the result were filled from the nearest reported one: " + ", ".join(filled)
    if goodput is not None:
        labels["goodput_slo"] = "given to vllm bench serve with --goodput; not in its result file"
    return [StandardizedRecord(
        run=RunInfo(run_id=raw.run_id, stage=0, project=raw.project, started_at=started,
                    ended_at=started + dt.timedelta(seconds=duration), duration_s=duration),
        scenario=Scenario(model=raw.model or str(data.get("model_id") or "unknown"), load=load,
                          harness=Harness(name="vllm-bench-serve", version=raw.harness.version)),
        results=Results(
            requests=RequestCounts(total=completed + failed, succeeded=completed, failed=failed,
                                   failures_by_cause={"failed": failed} if failed else {}),
            throughput=Throughput(
                requests_per_s=number(data["request_throughput"], "request_throughput"),
                input_tokens_per_s=total_in / duration if duration > 0 else 0.0,
                output_tokens_per_s=number(data["output_throughput"], "output_throughput"),
                total_tokens_per_s=float(data.get("total_token_throughput") or 0.0),
            ),
            latency=Latency(ttft=ttft, itl=itl, tpot=tpot, e2e=e2e),
            token_counts_from="unknown",
            goodput=goodput,
        ),
        tags=list(raw.tags),
        labels=labels,
    )]
