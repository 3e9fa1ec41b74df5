"""The summary table and the live progress line (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from vllmbench.models.results import StandardizedRecord, Trust


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(records: list[StandardizedRecord]) -> Table:
    t = Table(title="vllmbench results", show_lines=False)
    for column in ("stage", "load", "ok/total", "req/s", "out tok/s", "TTFT p50/p99 ms", "ITL p50/p99 ms",
                   "TPOT p50 ms", "e2e p50 ms", "sched delay p99 ms", "trust"):
        t.add_column(column, justify="right")
    for r in records:
        res, load = r.results, r.scenario.load
        lat, trust = res.latency, res.trust
        label = f"{load.rate_rps:g}/s {load.arrival}" if load.mode == "rate" else f"c={load.concurrency}"
        t.add_row(
            str(r.run.stage), label, f"{res.requests.succeeded}/{res.requests.total}",
            _f(res.throughput.requests_per_s, 2), _f(res.throughput.output_tokens_per_s, 0),
            f"{_f(lat.ttft.p50 if lat.ttft else None, 2)}/{_f(lat.ttft.p99 if lat.ttft else None, 2)}",
            f"{_f(lat.itl.p50 if lat.itl else None, 2)}/{_f(lat.itl.p99 if lat.itl else None, 2)}",
            _f(lat.tpot.p50 if lat.tpot else None, 2), _f(lat.e2e.p50 if lat.e2e else None, 1),
            _f(trust.schedule_delay_ms.p99 if trust and trust.schedule_delay_ms else None, 2),
            "[green]ok[/green]" if not trust or trust.trustworthy else "[red]UNTRUSTWORTHY[/red]",
        )
    return t


def client_line(trust: Trust | None) -> str:
    """What the client measured of itself: its CPU, how late its event loop ran, what that did to the TTFT p50."""
    if trust is None:
        return "client CPU -"
    line = f"client CPU {_f(trust.client_cpu_percent, 0)}% of one core"
    late = trust.loop_lateness_ms
    if late is not None:
        line += f", event loop late p50/p99/max {late.p50:.2f}/{late.p99:.1f}/{late.max:.0f} ms"
        if trust.ttft_p50_inflation_ms is not None:
            line += f" (TTFT p50 raised by about {trust.ttft_p50_inflation_ms:.2f} ms)"
    if trust.cpu_wait_percent is not None:
        line += f", waited for a CPU {trust.cpu_wait_percent:.0f}% of the time"
    return line


def print_summary(console: Console, records: list[StandardizedRecord], saturation: dict[str, Any] | None) -> None:
    console.print(table(records))
    for r in records:
        res = r.results
        if res.requests.failures_by_cause:
            causes = ", ".join(f"{k}={v}" for k, v in sorted(res.requests.failures_by_cause.items()))
            console.print(f"stage {r.run.stage}: failed requests by cause: {causes}")
        if res.goodput:
            console.print(f"stage {r.run.stage}: goodput {res.goodput.requests_per_s:.2f} req/s "
                          f"({res.goodput.fraction:.1%} of requests met the SLOs)")
        if res.trust and not res.trust.trustworthy:
            for reason in res.trust.reasons:
                console.print(f"[red]stage {r.run.stage} untrustworthy:[/red] {reason}")
        console.print(f"stage {r.run.stage}: {client_line(res.trust)}; token counts from {res.token_counts_from}"
                      + ("" if r.scenario.load.unique_prompts else "; prompts NOT unique: prefix caching may flatter the server"))
    if saturation:
        console.print(f"saturation: sustained {saturation.get('sustained_rate_rps')} req/s, "
                      f"max throughput {_f(saturation.get('max_throughput_rps'), 2)} req/s")


def progress_line(snapshot: dict[str, Any]) -> str:
    ttfts = sorted(snapshot.get("ttfts") or [])
    ttft = f"{ttfts[len(ttfts) // 2]:.1f} ms" if ttfts else "-"
    rate = snapshot["done"] / snapshot["elapsed_s"] if snapshot["elapsed_s"] > 0 else 0.0
    return (f"done {snapshot['done']}  in flight {snapshot['in_flight']}  errors {snapshot['errors']}  "
            f"rate {rate:.1f}/s  rolling TTFT p50 {ttft}")
