"""Can the client be trusted for this stage? Pure: its records and its own measurements in,
``results.trust`` out.

Rate mode has a schedule, so a client that falls behind shows as schedule delay. In
every mode the client also measures itself (:mod:`vllmbench.harness.lateness`): how
late its event loop ran, sampled every 2 ms on a kernel timer that wakes the loop the
way a socket does, so the distribution is that of a read's lateness at a random time.
From it the client estimates how much its lateness raised the TTFT p50: the median of
the measured TTFTs minus the median of the same TTFTs each less an independent draw of
the lateness (a deconvolution of one read's delay; for a narrow TTFT distribution it is
the lateness p50, for a wide one its mean). Tokens read together although the server
sent them in chunks apart say the same for the ITL, whose gaps then collapse to 0.

Calibrated on 2 cores (docs/loadgen.md): every stage whose TTFT or ITL p50 was more
than 1 ms off the simulator's truth had an estimate over 0.5 ms or more than 20% of
its tokens read together; no healthy stage at the same loads had either.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any

from vllmbench.harness.config import RunConfig
from vllmbench.harness.records import RequestRecord
from vllmbench.models.results import Stats, Trust
from vllmbench.stats import summarize

BINS_PER_DECADE = 20  # lateness histogram: bin 0 below 10 µs, then 20 bins a decade (6% wide)
FLOOR_NS = 10_000
LATE_MS = 1.0  # "late" in the reasons: a read more than this after its bytes arrived


EDGES = [round(FLOOR_NS * 10 ** (k / BINS_PER_DECADE)) for k in range(0, 12 * BINS_PER_DECADE)]


def bin_of(ns: int) -> int:
    """0 below 10 µs, then k for 10 µs x 10^((k-1)/20) <= ns < 10 µs x 10^(k/20)."""
    return bisect_right(EDGES, ns)


def bin_ms(index: int) -> float:
    """A bin's value: its geometric middle (bin 0: 5 µs)."""
    return 0.005 if index <= 0 else FLOOR_NS * 10 ** ((index - 0.5) / BINS_PER_DECADE) / 1e6


@dataclass(frozen=True)
class ClientFacts:
    """One client process's measurements of itself during a stage."""

    worker: int = 0
    lateness: dict[int, int] = field(default_factory=dict)  # bin -> samples
    lateness_max_ns: int = 0
    cpu_wait_ns: int | None = None  # ready to run but waiting for a CPU (Linux schedstat)
    cpu_throttled_ns: int | None = None  # stopped by a CPU limit (cgroup cpu.stat), the cgroup and its ancestors
    wall_ns: int = 0
    chunked_tokens: int = 0
    coalesced_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lateness"] = {str(k): v for k, v in self.lateness.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClientFacts":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["lateness"] = {int(k): int(v) for k, v in (data.get("lateness") or {}).items()}
        return cls(**values)


def _weights(hist: dict[int, int]) -> list[tuple[float, float]]:
    total = sum(hist.values())
    return [(bin_ms(b), n / total) for b, n in sorted(hist.items())] if total else []


def _median(groups: list[tuple[list[float], list[tuple[float, float]]]]) -> float:
    """The x where the pooled CDF of ``value - lateness`` (lateness drawn per group) reaches 1/2."""
    total = sum(len(v) for v, _ in groups)

    def cdf(x: float) -> float:
        return sum(sum(w * bisect_right(values, x + late) for late, w in lat) for values, lat in groups) / total

    lo = min(v[0] for v, _ in groups) - max((late for _, lat in groups for late, _ in lat), default=0.0) - 1.0
    hi = max(v[-1] for v, _ in groups) + 1.0
    for _ in range(48):
        mid = (lo + hi) / 2
        if cdf(mid) < 0.5:
            lo = mid
        else:
            hi = mid
    return hi


def p50_inflation(groups: list[tuple[list[float], dict[int, int]]]) -> float | None:
    """How much read lateness raised the median of ``values`` (ms), each group of values read by
    a process with the lateness histogram given: median(values) - median(values - lateness)."""
    usable = [(sorted(v), _weights(h)) for v, h in groups if v and h]
    if not usable:
        return None
    as_read = _median([(v, [(0.0, 1.0)]) for v, _ in usable])
    return max(0.0, as_read - _median(usable))


def lateness_stats(hist: dict[int, int], max_ns: int) -> Stats | None:
    """Statistics of the lateness samples, to the bins' 6% (max exact)."""
    total = sum(hist.values())
    if not total:
        return None
    top = max_ns / 1e6
    ordered = sorted(hist.items())

    def at(q: float) -> float:
        rank, seen = q * (total - 1), 0
        for b, n in ordered:
            seen += n
            if seen > rank:
                return min(bin_ms(b), top)
        return top

    mean = min(sum(bin_ms(b) * n for b, n in ordered) / total, top)
    low = min(bin_ms(ordered[0][0]), top)
    return Stats(count=total, mean=max(mean, low), min=low, p50=at(0.5), p90=at(0.9), p95=at(0.95), p99=at(0.99),
                 p999=at(0.999), max=top)


def late_share(hist: dict[int, int], ms: float = LATE_MS) -> float:
    total = sum(hist.values())
    return sum(n for b, n in hist.items() if bin_ms(b) > ms) / total if total else 0.0


def _remedy(cpu_wait: float | None, busiest_cpu: float, throttled: float | None) -> str:
    if throttled is not None and throttled >= 1.0:
        return (f"its CPU limit (cgroup quota) stopped it {throttled:.0f}% of the time: raise the client's CPU limit "
                "(in Kubernetes, resources.limits.cpu) or lower the load")
    if cpu_wait is not None and cpu_wait >= 5.0:
        return (f"it waited for a CPU {cpu_wait:.0f}% of the time: another process had its core; run it on a core "
                "of its own (taskset), at a higher priority (nice -n -5), or on a quieter machine")
    if busiest_cpu >= 50.0:
        return f"a client process was busy {busiest_cpu:.0f}% of a core: add --workers or lower the load"
    return "run it on a core of its own or with fewer --workers"


def assess(window: list[RequestRecord], cfg: RunConfig, *, mode: str, rate: float | None, wall_s: float,
           cpu_s_by_process: tuple[float, ...], clients: tuple[ClientFacts, ...] = ()) -> Trust:
    th = cfg.thresholds
    reasons: list[str] = []
    delay = cap = achieved = None
    if mode == "rate" and window:
        delay = summarize([max(0.0, (r.sent_ns - r.scheduled_ns - r.cap_wait_ns) / 1e6) for r in window])
        sends = sorted(r.sent_ns for r in window)
        planned = sorted(r.scheduled_ns for r in window)
        if len(sends) > 1 and sends[-1] > sends[0]:
            achieved = (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9)
            planned_rate = (len(planned) - 1) / max(1e-9, (planned[-1] - planned[0]) / 1e9)
            if achieved < th.achieved_rate_ratio * planned_rate:
                reasons.append(f"achieved send rate {achieved:.1f}/s is below {th.achieved_rate_ratio:.0%} of the planned {planned_rate:.1f}/s")
        if delay and delay.p50 > th.schedule_delay_p50_ms:
            reasons.append(f"schedule delay p50 {delay.p50:.2f} ms > {th.schedule_delay_p50_ms} ms: the client fell behind its schedule")
        if delay and delay.p99 > th.schedule_delay_p99_ms:
            reasons.append(f"schedule delay p99 {delay.p99:.2f} ms > {th.schedule_delay_p99_ms} ms: the client fell behind its schedule")
        if cfg.max_in_flight:
            cap = summarize([r.cap_wait_ns / 1e6 for r in window])
            if cap and cap.p99 > th.cap_wait_p99_ms:
                reasons.append(f"requests waited for the in-flight cap of {cfg.max_in_flight} (p99 {cap.p99:.1f} ms): "
                               "the offered load was not sent as requested")
    if not window:
        reasons.append("no request was sent in the measured part of the stage: nothing here describes the server")
    cpu_percent = 100.0 * sum(cpu_s_by_process) / wall_s if wall_s > 0 else None
    busiest = max(cpu_s_by_process, default=0.0) / wall_s * 100 if wall_s > 0 else 0.0
    if busiest > th.process_cpu_percent:
        reasons.append(f"a client process used {busiest:.0f}% of a CPU (> {th.process_cpu_percent:.0f}%): add --workers or lower the rate")

    hist: dict[int, int] = {}
    for c in clients:
        for b, n in c.lateness.items():
            hist[b] = hist.get(b, 0) + n
    lateness = lateness_stats(hist, max((c.lateness_max_ns for c in clients), default=0))
    by_worker = {c.worker: c.lateness for c in clients}
    ttfts: dict[int, list[float]] = {}
    for r in window:
        if r.ok and r.token_ns and r.worker in by_worker:
            ttfts.setdefault(r.worker, []).append((r.token_ns[0] - r.sent_ns) / 1e6)
    inflation = p50_inflation([(v, by_worker[w]) for w, v in ttfts.items()])
    waits = [100.0 * c.cpu_wait_ns / c.wall_ns for c in clients if c.cpu_wait_ns is not None and c.wall_ns > 0]
    cpu_wait = max(waits) if waits else None
    stops = [100.0 * c.cpu_throttled_ns / c.wall_ns for c in clients if c.cpu_throttled_ns is not None and c.wall_ns > 0]
    throttled = max(stops) if stops else None
    chunked = sum(c.chunked_tokens for c in clients)
    coalesced = 100.0 * sum(c.coalesced_tokens for c in clients) / chunked if chunked else None
    remedy = _remedy(cpu_wait, busiest, throttled)
    late_reason = lateness is not None and inflation is not None and inflation > th.ttft_inflation_ms
    if late_reason:
        reasons.append(
            f"the client read responses late: its event loop was more than {LATE_MS:g} ms late "
            f"{late_share(hist):.0%} of the time and up to {lateness.max:.0f} ms, which raised the TTFT p50 by "
            f"about {inflation:.1f} ms (> {th.ttft_inflation_ms:g} ms); {remedy}")
    if coalesced is not None and coalesced > th.coalesced_tokens_percent:
        reasons.append(
            f"{coalesced:.0f}% of the streamed tokens were read together with an earlier one although the server sent "
            f"them apart (> {th.coalesced_tokens_percent:g}%): the client read late and the ITL is understated; "
            + ("the same cause" if late_reason else remedy))
    return Trust(
        schedule_delay_ms=delay, requested_rate_rps=rate, achieved_rate_rps=achieved,
        client_cpu_percent=cpu_percent, cap_wait_ms=cap, loop_lateness_ms=lateness,
        ttft_p50_inflation_ms=inflation, coalesced_tokens_percent=coalesced, cpu_wait_percent=cpu_wait,
        cpu_throttled_percent=throttled,
        trustworthy=not reasons, reasons=reasons,
    )
