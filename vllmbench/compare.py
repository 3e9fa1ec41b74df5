"""Side-by-side comparison of standardized records: pure values in, values out."""

from __future__ import annotations

from typing import Any

from vllmbench.models.results import StandardizedRecord

# (name, path into the record, units, which direction is better)
METRICS: list[tuple[str, str, str, str]] = [
    ("ttft_p50", "results.latency.ttft.p50", "ms", "lower"),
    ("ttft_p99", "results.latency.ttft.p99", "ms", "lower"),
    ("itl_p50", "results.latency.itl.p50", "ms", "lower"),
    ("itl_p99", "results.latency.itl.p99", "ms", "lower"),
    ("tpot_p50", "results.latency.tpot.p50", "ms/token", "lower"),
    ("tpot_p99", "results.latency.tpot.p99", "ms/token", "lower"),
    ("ntpot_p50", "results.latency.ntpot.p50", "ms/token", "lower"),
    ("e2e_p50", "results.latency.e2e.p50", "ms", "lower"),
    ("e2e_p99", "results.latency.e2e.p99", "ms", "lower"),
    ("requests_per_s", "results.throughput.requests_per_s", "requests/s", "higher"),
    ("output_tokens_per_s", "results.throughput.output_tokens_per_s", "tokens/s", "higher"),
    ("total_tokens_per_s", "results.throughput.total_tokens_per_s", "tokens/s", "higher"),
    ("goodput_per_s", "results.goodput.requests_per_s", "requests/s", "higher"),
    ("goodput_fraction", "results.goodput.fraction", "fraction", "higher"),
    ("failed_requests", "results.requests.failed", "requests", "lower"),
    ("schedule_delay_p99", "results.trust.schedule_delay_ms.p99", "ms", "lower"),
]


def _get(record: StandardizedRecord, path: str) -> float | None:
    value: Any = record
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return float(value)


def compare(records: list[StandardizedRecord]) -> dict[str, Any]:
    """Each metric for each record, with differences against the first (the baseline)."""
    if not records:
        raise ValueError("nothing to compare")
    runs = [{"run_id": r.run.run_id, "stage": r.run.stage, "model": r.scenario.model,
             "harness": r.scenario.harness.name, "started_at": r.run.started_at.isoformat(),
             "trustworthy": r.results.trust.trustworthy if r.results.trust else None} for r in records]
    metrics = []
    for name, path, units, better in METRICS:
        values = [_get(r, path) for r in records]
        if all(v is None for v in values):
            continue
        base = values[0]
        abs_diff = [None if v is None or base is None else v - base for v in values]
        rel_diff = [None if v is None or base in (None, 0) else (v - base) / base for v in values]  # type: ignore[operator]
        metrics.append({"metric": name, "units": units, "better": better, "values": values,
                        "abs_diff": abs_diff, "rel_diff": rel_diff})
    return {"baseline": runs[0]["run_id"], "runs": runs, "metrics": metrics}
