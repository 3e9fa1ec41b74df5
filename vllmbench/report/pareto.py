"""The throughput-latency Pareto front across runs and stages. Pure.

A point is on the front when no other trustworthy point has at least its throughput
and at most its latency, one of them strictly better. Untrustworthy points are drawn
but never define the front: a client that fell behind says nothing about the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from vllmbench.report.charts import Curve, figure, untrusted
from vllmbench.report.svg import Plot, Series, fmt, legend, line_plot

# (latency field, figure, name people read, units)
FRONTS = [("ttft", "p99", "TTFT p99", "ms"), ("tpot", "p99", "TPOT p99", "ms/token")]
FRONT_COLOR = 7


def front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (more throughput x, less latency y), by x."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    best = float("inf")
    kept = []
    for i in order:
        if points[i][1] < best:
            kept.append(i)
            best = points[i][1]
    return sorted(kept, key=lambda i: points[i][0])


def pareto(curves: Sequence[Curve]) -> list[str]:
    """Output tokens/s against a latency percentile for every stage of every run, the front joined."""
    out = []
    for name, fig, title, units in FRONTS:
        rows = []
        for curve in curves:
            for r in curve.records:
                stats = getattr(r.results.latency, name)
                value = getattr(stats, fig, None) if stats else None
                if value is not None and r.results.throughput is not None:
                    rows.append((curve, r, r.results.throughput.output_tokens_per_s, value))
        if not rows:
            continue
        trusted = [k for k, (_, r, _, _) in enumerate(rows) if not untrusted(r)]
        on_front = [trusted[i] for i in front([(rows[k][2], rows[k][3]) for k in trusted])]
        series = []
        for curve in curves:
            mine = [row for row in rows if row[0] is curve]
            if mine:
                series.append(Series(curve.label, [(x, y) for _, _, x, y in mine], curve.color, line=False,
                                     marked=[untrusted(r) for _, r, _, _ in mine],
                                     tips=[f"{curve.label} stage {r.run.stage}: {fmt(x)} tokens/s, {title} {fmt(y)} {units}"
                                           + (" UNTRUSTWORTHY" if untrusted(r) else "") for _, r, x, y in mine]))
        # The front's own dots sit inside the runs' larger ones: a point on the front has a dark centre.
        series.append(Series("Pareto front", [(rows[k][2], rows[k][3]) for k in on_front], FRONT_COLOR,
                             tips=[f"on the front: {rows[k][0].label}@{rows[k][1].run.stage}" for k in on_front]))
        plot = Plot(f"{title} against output throughput", "output throughput (tokens/s)", f"{title} ({units})",
                    series, x_from_zero=True)
        keys = [(s.name, s.color, False) for s in series]
        listed = ", ".join(f"{escape(rows[k][0].label)}@{rows[k][1].run.stage} ({fmt(rows[k][2])} tokens/s, "
                           f"{fmt(rows[k][3])} {units})" for k in on_front)
        out.append(figure(f"Pareto front: output throughput against {title}", line_plot(plot),
                          legend(keys, untrusted=any(any(s.marked) for s in series)),
                          f"on the front (no other trustworthy stage is both faster and lower): {listed or 'none'}"))
    return out
