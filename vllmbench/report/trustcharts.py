"""Charts and tables of what went wrong: failures by cause and the client's trust figures. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from vllmbench.harness.config import Thresholds
from vllmbench.report.charts import Curve, figure, load_label, untrusted
from vllmbench.report.page import fold
from vllmbench.report.svg import Plot, Rule, Series, Stack, bar_plot, fmt, legend, line_plot

THRESHOLDS = Thresholds()  # the load generator's defaults; a record does not say which were used


def _points(curves: Sequence[Curve]) -> list[tuple[Curve, int, str]]:
    many = len(curves) > 1
    out = []
    for curve in curves:
        for i, r in enumerate(curve.records):
            out.append((curve, i, f"{curve.label}@{r.run.stage}" if many else f"stage {r.run.stage}"))
    return out


def failures(curves: Sequence[Curve]) -> list[str]:
    """Failed requests by cause, a stacked bar per stage."""
    points = _points(curves)
    causes = sorted({c for curve, i, _ in points for c in curve.records[i].results.requests.failures_by_cause})
    unnamed = [curve.records[i].results.requests.failed - sum(curve.records[i].results.requests.failures_by_cause.values())
               for curve, i, _ in points]
    if not causes and not any(unnamed):
        return [figure("Failed requests by cause", "", "", "No request failed.")]
    stacks = [Stack(cause, [float(curve.records[i].results.requests.failures_by_cause.get(cause, 0))
                            for curve, i, _ in points], k) for k, cause in enumerate(causes)]
    if any(unnamed):
        stacks.append(Stack("cause not recorded", [float(u) for u in unnamed], len(stacks)))
    svg = bar_plot("failed requests by cause", "stage", "failed requests", [label for *_, label in points], stacks,
                   marked=[untrusted(curve.records[i]) for curve, i, _ in points])
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{curve.records[i].results.requests.failed}</td>"
        f"<td>{curve.records[i].results.requests.total}</td><td>"
        + escape(", ".join(f"{k}={v}" for k, v in sorted(curve.records[i].results.requests.failures_by_cause.items()))
                 or "-") + "</td></tr>"
        for curve, i, label in points)
    table = fold(f'<table class="data"><thead><tr><th>stage</th><th>failed</th><th>of total</th><th>by cause</th></tr>'
                 f"</thead><tbody>{rows}</tbody></table>", len(points))
    return [figure("Failed requests by cause", svg, legend([(s.name, s.color, False) for s in stacks])), table]


def trust_table(curves: Sequence[Curve]) -> str:
    """Every stage's trust figures; an untrustworthy stage is marked and says why."""
    rows = []
    for curve, i, label in _points(curves):
        r = curve.records[i]
        trust = r.results.trust
        if trust is None:
            rows.append(f"<tr><td>{escape(label)}</td><td>{escape(load_label(r))}</td>"
                        '<td colspan="6">no trust figures (the harness records none)</td><td>-</td></tr>')
            continue
        delay = trust.schedule_delay_ms
        cap = trust.cap_wait_ms
        ratio = (trust.achieved_rate_rps / trust.requested_rate_rps
                 if trust.achieved_rate_rps is not None and trust.requested_rate_rps else None)
        verdict = ('<span class="badge bad">UNTRUSTWORTHY</span><ul class="reasons">'
                   + "".join(f"<li>{escape(reason)}</li>" for reason in trust.reasons) + "</ul>"
                   if not trust.trustworthy else '<span class="badge ok">trustworthy</span>')
        cells = [
            fmt(delay.p50) if delay and delay.p50 is not None else "-",
            fmt(delay.p99) if delay and delay.p99 is not None else "-",
            fmt(trust.requested_rate_rps) if trust.requested_rate_rps else "-",
            fmt(trust.achieved_rate_rps) if trust.achieved_rate_rps is not None else "-",
            f"{ratio:.1%}" if ratio is not None else "-",
            fmt(trust.client_cpu_percent) if trust.client_cpu_percent is not None else "-",
            fmt(cap.p99) if cap and cap.p99 is not None else "-",
        ]
        cls = ' class="untrustworthy"' if not trust.trustworthy else ""
        rows.append(f"<tr{cls}><td>{escape(label)}</td><td>{escape(load_label(r))}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{verdict}</td></tr>")
    head = ("<tr><th>stage</th><th>load</th><th>schedule delay p50 (ms)</th><th>schedule delay p99 (ms)</th>"
            "<th>requested (req/s)</th><th>achieved (req/s)</th><th>achieved / requested</th>"
            "<th>client CPU (% of a core)</th><th>cap wait p99 (ms)</th><th>trust</th></tr>")
    return fold(f'<table class="data trust"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>', len(rows))


def trust_charts(curves: Sequence[Curve]) -> list[str]:
    """Schedule delay and achieved rate per stage, against the thresholds that mark a stage."""
    many = len(curves) > 1
    delay_series, rate_series, keys = [], [], []
    for curve in curves:
        rows = [(i, r) for i, r in enumerate(curve.records) if r.results.trust]
        for fig, dashed, color in (("p50", False, 0), ("p99", True, 1)):
            pts = [(float(r.run.stage), getattr(r.results.trust.schedule_delay_ms, fig))
                   for _, r in rows if r.results.trust.schedule_delay_ms is not None]
            if pts:
                c = curve.color if many else color
                bad = [untrusted(r) for _, r in rows if r.results.trust.schedule_delay_ms is not None]
                delay_series.append(Series(f"{curve.label} {fig}", pts, c, dashed=dashed, marked=bad))
                keys.append((f"{curve.label} {fig}" if many else f"schedule delay {fig}", c, dashed))
        ratio_rows = [r for _, r in rows if r.results.trust.achieved_rate_rps is not None
                      and r.results.trust.requested_rate_rps]
        if ratio_rows:
            rate_series.append(Series(curve.label, [(float(r.run.stage), 100 * r.results.trust.achieved_rate_rps
                                                     / r.results.trust.requested_rate_rps) for r in ratio_rows],
                                      curve.color, marked=[untrusted(r) for r in ratio_rows]))
    out = []
    if delay_series:
        rules = [Rule(THRESHOLDS.schedule_delay_p50_ms, f"p50 limit {fmt(THRESHOLDS.schedule_delay_p50_ms)} ms"),
                 Rule(THRESHOLDS.schedule_delay_p99_ms, f"p99 limit {fmt(THRESHOLDS.schedule_delay_p99_ms)} ms")]
        plot = Plot("schedule delay per stage", "stage", "schedule delay (ms)", delay_series, rules, x_from_zero=True)
        out.append(figure("Schedule delay per stage (actual minus planned send time)", line_plot(plot),
                          legend(keys, untrusted=any(any(s.marked) for s in delay_series))))
    if rate_series:
        limit = THRESHOLDS.achieved_rate_ratio * 100
        plot = Plot("achieved send rate per stage", "stage", "achieved / requested rate (%)", rate_series,
                    [Rule(limit, f"limit {fmt(limit)}%")], y_range=(min(limit - 10, min(
                        y for s in rate_series for _, y in s.points)), max(105.0, max(
                        y for s in rate_series for _, y in s.points))), x_from_zero=True)
        out.append(figure("Achieved send rate per stage", line_plot(plot),
                          legend([(s.name, s.color, False) for s in rate_series],
                                 untrusted=any(any(s.marked) for s in rate_series))))
    return out
