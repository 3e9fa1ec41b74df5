"""A standardized record as one flat row: the CSV export and the report's tables. Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from vllmbench.models.results import StandardizedRecord

# (column, path into the record); a path ending in a Stats object takes each of STATS_FIGURES.
COLUMNS: list[tuple[str, str]] = [
    ("run_id", "run.run_id"), ("stage", "run.stage"), ("project", "run.project"),
    ("started_at", "run.started_at"), ("duration_s", "run.duration_s"),
    ("model", "scenario.model"), ("engine", "scenario.engine"), ("engine_version", "scenario.engine_version"),
    ("accelerator", "scenario.accelerator.model"), ("accelerator_count", "scenario.accelerator.count"),
    ("tp", "scenario.parallelism.tp"), ("pp", "scenario.parallelism.pp"),
    ("harness", "scenario.harness.name"), ("harness_version", "scenario.harness.version"),
    ("load_mode", "scenario.load.mode"), ("arrival", "scenario.load.arrival"),
    ("rate_rps", "scenario.load.rate_rps"), ("concurrency", "scenario.load.concurrency"),
    ("input_tokens_mean", "scenario.load.input_tokens.mean"), ("output_tokens_mean", "scenario.load.output_tokens.mean"),
    ("dataset", "scenario.load.dataset"), ("unique_prompts", "scenario.load.unique_prompts"),
    ("requests_total", "results.requests.total"), ("requests_succeeded", "results.requests.succeeded"),
    ("requests_failed", "results.requests.failed"),
    ("requests_per_s", "results.throughput.requests_per_s"),
    ("input_tokens_per_s", "results.throughput.input_tokens_per_s"),
    ("output_tokens_per_s", "results.throughput.output_tokens_per_s"),
    ("total_tokens_per_s", "results.throughput.total_tokens_per_s"),
    ("ttft_ms", "results.latency.ttft"), ("itl_ms", "results.latency.itl"), ("tpot_ms", "results.latency.tpot"),
    ("ntpot_ms", "results.latency.ntpot"), ("e2e_ms", "results.latency.e2e"),
    ("goodput_rps", "results.goodput.requests_per_s"), ("goodput_fraction", "results.goodput.fraction"),
    ("slo_ttft_ms", "results.goodput.slo.ttft_ms"), ("slo_itl_ms", "results.goodput.slo.itl_ms"),
    ("slo_tpot_ms", "results.goodput.slo.tpot_ms"), ("slo_e2e_ms", "results.goodput.slo.e2e_ms"),
    ("schedule_delay_ms", "results.trust.schedule_delay_ms"),
    ("requested_rate_rps", "results.trust.requested_rate_rps"),
    ("achieved_rate_rps", "results.trust.achieved_rate_rps"),
    ("client_cpu_percent", "results.trust.client_cpu_percent"),
    ("trustworthy", "results.trust.trustworthy"),
    ("token_counts_from", "results.token_counts_from"),
]
STATS_FIGURES = ("mean", "p50", "p90", "p99", "p999", "max")
STATS_COLUMNS = {"ttft_ms", "itl_ms", "tpot_ms", "ntpot_ms", "e2e_ms", "schedule_delay_ms"}


def value_at(record: Any, path: str) -> Any:
    """The value at a dotted path, None where any step is missing."""
    value = record
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def header() -> list[str]:
    names: list[str] = []
    for name, _ in COLUMNS:
        if name in STATS_COLUMNS:
            base = name.removesuffix("_ms")
            names += [f"{base}_{figure}_ms" for figure in STATS_FIGURES]
        else:
            names.append(name)
    return names + ["failures_by_cause", "untrustworthy_reasons", "tags"]


def row(record: StandardizedRecord) -> list[Any]:
    out: list[Any] = []
    for name, path in COLUMNS:
        value = value_at(record, path)
        if name in STATS_COLUMNS:
            out += [getattr(value, figure, None) if value is not None else None for figure in STATS_FIGURES]
        elif hasattr(value, "isoformat"):
            out.append(value.isoformat())
        else:
            out.append(value)
    causes = record.results.requests.failures_by_cause
    trust = record.results.trust
    out.append(";".join(f"{k}={v}" for k, v in sorted(causes.items())))
    out.append(" | ".join(trust.reasons) if trust else "")
    out.append(";".join(record.tags))
    return out


def to_csv(records: Iterable[StandardizedRecord]) -> str:
    """One line per record (stage), one column per figure; empty cells where a figure is absent."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header())
    for record in records:
        writer.writerow(["" if v is None else v for v in row(record)])
    return buffer.getvalue()
