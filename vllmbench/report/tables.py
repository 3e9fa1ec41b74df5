"""The terminal's tables (rich) for ``vllmbench results``: the same figures as the HTML page. Pure."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from vllmbench.models.results import StandardizedRecord
from vllmbench.report.charts import load_label, untrusted
from vllmbench.report.page import scenario_rows
from vllmbench.report.sidebyside import change
from vllmbench.report.svg import fmt


def _p(stats: Any, name: str) -> str:
    value = getattr(stats, name, None) if stats is not None else None
    return "-" if value is None else fmt(value)


def _trust(record: StandardizedRecord) -> str:
    if record.results.trust is None:
        return "-"
    return "[red]UNTRUSTWORTHY[/red]" if untrusted(record) else "[green]ok[/green]"


def listing(records: list[StandardizedRecord]) -> Table:
    table = Table(title="standardized results", show_lines=False)
    for column in ("started (UTC)", "run", "stage", "project", "model", "harness", "load", "req/s", "out tok/s",
                   "TTFT p50/p99 ms", "e2e p99 ms", "trust"):
        table.add_column(column, justify="left" if column in ("run", "project", "model", "harness") else "right")
    for r in records:
        lat = r.results.latency
        table.add_row(r.run.started_at.strftime("%Y-%m-%d %H:%M"), r.run.run_id, str(r.run.stage), r.run.project or "-",
                      r.scenario.model, r.scenario.harness.name, load_label(r), *_rates(r),
                      f"{_p(lat.ttft, 'p50')}/{_p(lat.ttft, 'p99')}",
                      _p(lat.e2e, "p99"), _trust(r))
    if not records:
        table.caption = "no records match"
    return table


def _rates(record: StandardizedRecord) -> tuple[str, str]:
    rate = record.results.throughput  # an accuracy-only record has none
    return (fmt(rate.requests_per_s), fmt(rate.output_tokens_per_s)) if rate else ("-", "-")


def scenario(record: StandardizedRecord) -> Table:
    table = Table(title=f"run {record.run.run_id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("project", record.run.project or "-")
    table.add_row("started", record.run.started_at.isoformat())
    for name, value in scenario_rows(record):
        table.add_row(name, f"[red]{value}[/red]" if value.startswith("NO:") else value)
    if record.tags:
        table.add_row("tags", ", ".join(record.tags))
    return table


def raw_table(raw: list[dict[str, Any]]) -> Table:
    table = Table(title="raw results (stored as the harness wrote them)")
    for column in ("id", "harness", "ingested", "size"):
        table.add_column(column)
    for doc in raw:
        harness = doc.get("harness") or {}
        table.add_row(str(doc.get("id")), f"{harness.get('name')} {harness.get('version') or ''}".strip(),
                      str(doc.get("ingested_at") or "-"), f"{doc.get('size_bytes', 0):,} bytes")
    return table


def comparison(result: dict[str, Any]) -> Table:
    """``GET /compare``'s answer: a row per metric, each run's value and its difference to the first."""
    runs = result["runs"]
    table = Table(title=f"compared with {result['baseline']} (the first); colours show direction, not a verdict")
    table.add_column("metric")
    table.add_column("units")
    for i, run in enumerate(runs):
        label = f"{run['run_id']}@{run['stage']}" + (" (baseline)" if i == 0 else "")
        if run.get("trustworthy") is False:
            label += " [red]UNTRUSTWORTHY[/red]"
        table.add_column(label, justify="right")
    for metric in result["metrics"]:
        cells = []
        for i, value in enumerate(metric["values"]):
            if value is None:
                cells.append("-")
                continue
            moved = change(metric, i)
            cells.append(fmt(value) if moved is None else
                         f"{fmt(value)} [{'green' if moved[0] else 'red'}]({moved[1]})[/]")
        table.add_row(metric["metric"], metric["units"], *cells)
    return table
