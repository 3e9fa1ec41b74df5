"""Request records of one stage -> one standardized record. Pure.

Definitions (docs/loadgen.md): TTFT runs from the send to the first non-empty token;
ITL is every gap between tokens; TPOT = (e2e - TTFT) / (output tokens - 1); NTPOT =
e2e / output tokens; e2e runs from the send to the end of the response, and
``e2e_from_schedule`` from the planned send time, so that a client backlog shows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from vllmbench.harness.config import RunConfig
from vllmbench.harness.lengths import LengthSpec
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.trust import ClientFacts, assess
from vllmbench.models.results import (
    Goodput, Harness, Latency, LoadProfile, RequestCounts, Results, RunInfo, Scenario, Slo,
    StandardizedRecord, Throughput,
)
from vllmbench.stats import summarize

HARNESS = "vllmbench"


@dataclass(frozen=True)
class StageFacts:
    """What the runner observed besides the records."""

    index: int
    mode: str
    rate: float | None
    concurrency: int | None
    started_at: dt.datetime
    ended_at: dt.datetime
    wall_s: float
    cpu_s_by_process: tuple[float, ...]
    model: str
    planned_span_ns: int = 0
    harness_version: str | None = None
    clients: tuple[ClientFacts, ...] = ()


def measured(records: list[RequestRecord], cfg: RunConfig, facts: StageFacts) -> list[RequestRecord]:
    """Records scheduled inside the measurement window (warm-up and cool-down cut)."""
    start = int(cfg.warmup_s * 1e9)
    if facts.mode == "rate" and facts.planned_span_ns:
        end = facts.planned_span_ns - int(cfg.cooldown_s * 1e9)
    elif cfg.duration_s:
        end = int((cfg.duration_s - cfg.cooldown_s) * 1e9)
    else:
        end = None
    return [r for r in records if r.scheduled_ns >= start and (end is None or r.scheduled_ns <= end)]


def is_good(rec: RequestRecord, slo: Slo) -> bool:
    """Meets every SLO given. ITL: every gap of the request."""
    if not rec.ok or not rec.token_ns:
        return False
    ttft = (rec.token_ns[0] - rec.sent_ns) / 1e6
    e2e = (rec.end_ns - rec.sent_ns) / 1e6
    if slo.ttft_ms is not None and ttft > slo.ttft_ms:
        return False
    if slo.e2e_ms is not None and e2e > slo.e2e_ms:
        return False
    if slo.itl_ms is not None and any((b - a) / 1e6 > slo.itl_ms for a, b in zip(rec.token_ns, rec.token_ns[1:])):
        return False
    out = rec.output_tokens or len(rec.token_ns)
    if slo.tpot_ms is not None and out > 1 and (e2e - ttft) / (out - 1) > slo.tpot_ms:
        return False
    return True


def to_record(records: list[RequestRecord], cfg: RunConfig, facts: StageFacts) -> StandardizedRecord:
    window = measured(records, cfg, facts)
    ok = [r for r in window if r.ok]
    failures = Counter(r.error or "unknown" for r in window if not r.ok)
    ttft = [(r.token_ns[0] - r.sent_ns) / 1e6 for r in ok]
    e2e = [(r.end_ns - r.sent_ns) / 1e6 for r in ok]
    e2e_sched = [(r.end_ns - r.scheduled_ns) / 1e6 for r in ok]
    itl = [(b - a) / 1e6 for r in ok for a, b in zip(r.token_ns, r.token_ns[1:])]
    outs = [r.output_tokens or len(r.token_ns) for r in ok]
    tpot = [(e - t) / (n - 1) for e, t, n in zip(e2e, ttft, outs) if n > 1]
    ntpot = [e / n for e, n in zip(e2e, outs) if n > 0]
    ins = [r.input_tokens or 0 for r in ok]
    if ok:
        span_s = (max(r.end_ns for r in ok) - min(r.sent_ns for r in window)) / 1e9
    else:
        span_s = 0.0
    per_s = (lambda x: x / span_s) if span_s > 0 else (lambda x: 0.0)
    sources = {r.tokens_from for r in ok}
    slo = Slo(ttft_ms=cfg.slo.ttft_ms, itl_ms=cfg.slo.itl_ms, tpot_ms=cfg.slo.tpot_ms, e2e_ms=cfg.slo.e2e_ms)
    goodput = None
    if cfg.slo.any():
        good = sum(1 for r in ok if is_good(r, slo))
        goodput = Goodput(slo=slo, good_requests=good, requests_per_s=per_s(good),
                          fraction=good / len(window) if window else 0.0)
    in_spec, out_spec = LengthSpec.parse(cfg.input_len), LengthSpec.parse(cfg.output_len)
    synthetic = cfg.dataset == "synthetic"
    load = LoadProfile(
        mode=facts.mode, arrival=("burst" if cfg.arrival == "gamma" else cfg.arrival) if facts.mode == "rate" else None,
        rate_rps=facts.rate, concurrency=facts.concurrency, max_in_flight=cfg.max_in_flight,
        duration_s=cfg.duration_s, request_count=cfg.request_count, warmup_s=cfg.warmup_s, cooldown_s=cfg.cooldown_s,
        input_tokens=in_spec.describe() if synthetic else None, output_tokens=out_spec.describe(),
        dataset=cfg.dataset if synthetic else f"{cfg.dataset}:{cfg.dataset_path}",
        unique_prompts=cfg.unique_prompts if synthetic else True, streaming=cfg.stream, endpoint=cfg.endpoint,  # type: ignore[arg-type]
    )
    return StandardizedRecord(
        run=RunInfo(run_id=cfg.run_id, stage=facts.index, project=cfg.project, started_at=facts.started_at,
                    ended_at=facts.ended_at, duration_s=facts.wall_s),
        scenario=Scenario(model=facts.model, load=load, harness=Harness(name=HARNESS, version=facts.harness_version)),
        results=Results(
            requests=RequestCounts(total=len(window), succeeded=len(ok), failed=len(window) - len(ok),
                                   failures_by_cause=dict(failures)),
            throughput=Throughput(requests_per_s=per_s(len(ok)), input_tokens_per_s=per_s(sum(ins)),
                                  output_tokens_per_s=per_s(sum(outs)), total_tokens_per_s=per_s(sum(ins) + sum(outs))),
            latency=Latency(ttft=summarize(ttft), itl=summarize(itl), tpot=summarize(tpot, "ms/token"),
                            ntpot=summarize(ntpot, "ms/token"), e2e=summarize(e2e), e2e_from_schedule=summarize(e2e_sched)),
            input_tokens=summarize(ins, "tokens"), output_tokens=summarize(outs, "tokens"),
            token_counts_from=(sources.pop() if len(sources) == 1 else "mixed") if sources else "unknown",  # type: ignore[arg-type]
            goodput=goodput,
            trust=assess(window, cfg, mode=facts.mode, rate=facts.rate, wall_s=facts.wall_s,
                         cpu_s_by_process=facts.cpu_s_by_process, clients=facts.clients),
        ),
        tags=list(cfg.tags),
    )
