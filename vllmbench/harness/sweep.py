"""Which stage comes next in a sweep, and where the server saturates. Pure.

A stage is *saturated* when the server no longer keeps up with the offered rate: it
completes less than 90% of it, or its median TTFT has grown past three times the
lowest load's (requests queue in the server). The search doubles the rate until a
stage saturates, then bisects between the last good and the first saturated rate
until they are within 10% or the stage budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

from vllmbench.models.results import StandardizedRecord

THROUGHPUT_RATIO = 0.9
TTFT_GROWTH = 3.0
RESOLUTION = 0.10


@dataclass(frozen=True)
class Point:
    rate: float
    throughput: float
    ttft_p50_ms: float | None
    failed_fraction: float


def point(record: StandardizedRecord) -> Point:
    r = record.results
    ttft = r.latency.ttft.p50 if r.latency.ttft else None
    total = r.requests.total or 1
    return Point(record.scenario.load.rate_rps or 0.0, r.throughput.requests_per_s, ttft, r.requests.failed / total)


def saturated(p: Point, baseline_ttft_ms: float | None) -> bool:
    if p.failed_fraction > 0.5 or p.ttft_p50_ms is None:
        return True
    if p.throughput < THROUGHPUT_RATIO * p.rate:
        return True
    return baseline_ttft_ms is not None and p.ttft_p50_ms > TTFT_GROWTH * baseline_ttft_ms


def next_rate(points: list[Point], *, start: float, max_stages: int) -> float | None:
    """The next rate to try, or None when the search is done."""
    if not points:
        return start
    if len(points) >= max_stages:
        return None
    baseline = points[0].ttft_p50_ms
    good = [p.rate for p in points if not saturated(p, baseline)]
    bad = [p.rate for p in points if saturated(p, baseline)]
    if not bad:
        return max(good) * 2
    if not good:
        low = min(bad) / 4
        return low if low >= 0.01 else None
    lo, hi = max(good), min(r for r in bad if r > max(good)) if any(r > max(good) for r in bad) else None
    if hi is None:
        return lo * 2
    if (hi - lo) / lo <= RESOLUTION:
        return None
    return round((lo + hi) / 2, 3)


def saturation(points: list[Point]) -> dict[str, float | None]:
    """The highest rate the server kept up with, and the highest throughput seen."""
    if not points:
        return {"sustained_rate_rps": None, "max_throughput_rps": None}
    baseline = points[0].ttft_p50_ms
    good = [p.rate for p in points if not saturated(p, baseline)]
    return {
        "sustained_rate_rps": max(good) if good else None,
        "max_throughput_rps": max(p.throughput for p in points),
    }
