"""The report's charts of latency, distributions, goodput and throughput. Pure: curves in, HTML out.

A :class:`Curve` is one run (or one run's chosen stage) with its colour; a run report
draws one curve, a comparison one per run.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from vllmbench.models.results import Stats, StandardizedRecord
from vllmbench.report.data import StageSamples
from vllmbench.report.svg import Plot, Rule, Series, fmt, legend, line_plot
from vllmbench.stats import percentile

# (field of Latency, name people read, units, field of Slo)
LATENCIES = [("ttft", "TTFT", "ms", "ttft_ms"), ("itl", "ITL (every gap)", "ms", "itl_ms"),
             ("tpot", "TPOT", "ms/token", "tpot_ms"), ("e2e", "end-to-end latency", "ms", "e2e_ms")]
MAX_LINES = 12
# Probabilities at which a CDF from samples is drawn: denser in the tail, where it matters.
CDF_GRID = ([i / 50 for i in range(45)] + [0.9 + i / 500 for i in range(45)]
            + [0.99 + i / 2000 for i in range(19)] + [1.0])


@dataclass
class Curve:
    label: str
    color: int
    records: list[StandardizedRecord]
    samples: dict[int, StageSamples] = field(default_factory=dict)


def figure(title: str, svg: str, legend_html: str = "", note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<figure><figcaption>{escape(title)}</figcaption>{svg}{legend_html}{note_html}</figure>'


def untrusted(record: StandardizedRecord) -> bool:
    return record.results.trust is not None and not record.results.trust.trustworthy


def load_label(record: StandardizedRecord) -> str:
    load = record.scenario.load
    if load.mode == "rate":
        return f"{fmt(load.rate_rps or 0)}/s {load.arrival or ''}".strip()
    return f"concurrency {load.concurrency}"


def stage_label(curve: Curve, record: StandardizedRecord, *, many: bool) -> str:
    own = f"stage {record.run.stage} ({load_label(record)})"
    return f"{curve.label} · {own}" if many else own


def slo_of(curves: Sequence[Curve]) -> dict[str, float]:
    """The SLOs stated in the records (the first record that states each)."""
    slo: dict[str, float] = {}
    for curve in curves:
        for record in curve.records:
            goodput = record.results.goodput
            if goodput is None:
                continue
            for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
                value = getattr(goodput.slo, name)
                if value is not None:
                    slo.setdefault(name, value)
    return slo


def latency_vs_throughput(curves: Sequence[Curve]) -> list[str]:
    """One chart per latency: percentiles against achieved throughput across stages."""
    single = len(curves) == 1
    figures_to_draw = ("p50", "p90", "p99") if single else ("p50", "p99")
    slo = slo_of(curves)
    out = []
    for name, title, units, slo_name in LATENCIES:
        series: list[Series] = []
        keys: list[tuple[str, int, bool]] = []
        for curve in curves:
            for k, fig in enumerate(figures_to_draw):
                points, marked, tips = [], [], []
                for r in curve.records:
                    stats = getattr(r.results.latency, name)
                    value = getattr(stats, fig, None) if stats else None
                    if value is None or r.results.throughput is None:
                        continue
                    x = r.results.throughput.requests_per_s
                    points.append((x, value))
                    marked.append(untrusted(r))
                    tips.append(f"{curve.label} stage {r.run.stage} ({load_label(r)}): {fmt(x)} req/s, "
                                f"{title} {fig} {fmt(value)} {units}" + (" UNTRUSTWORTHY" if marked[-1] else ""))
                if not points:
                    continue
                color = k if single else curve.color
                dashed = (not single) and fig != "p50"
                series.append(Series(f"{curve.label} {fig}", points, color, dashed=dashed, marked=marked, tips=tips))
                keys.append((fig if single else f"{curve.label} {fig}", color, dashed))
        rules = [Rule(slo[slo_name], f"SLO {fmt(slo[slo_name])} {units}")] if slo_name in slo else []
        plot = Plot(f"{title} against achieved throughput", "achieved throughput (requests/s)",
                    f"{title} ({units})", series, rules, x_from_zero=True,
                    empty=f"the records hold no {title} percentiles (the harness reported none)")
        any_marked = any(any(s.marked) for s in series)
        out.append(figure(f"{title} percentiles against throughput", line_plot(plot),
                          legend(keys, untrusted=any_marked) if series else ""))
    return out


def cdf_points(samples: Sequence[float] | None, stats: Stats | None) -> tuple[list[tuple[float, float]], bool]:
    """(value, percent of samples at or below) and whether it came from samples (else from
    the stored percentiles: a coarse outline with a point at each figure)."""
    if samples:
        ordered = sorted(samples)
        return [(percentile(ordered, p * 100), p * 100) for p in CDF_GRID], True
    if stats is None:
        return [], False
    known = [("min", 0.0), ("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0)]
    return [(getattr(stats, n), q) for n, q in known if getattr(stats, n) is not None], False


@dataclass
class _Line:
    label: str
    color: int
    points: list[tuple[float, float]]
    from_samples: bool
    bad: bool


def _cdf_lines(curves: Sequence[Curve], name: str) -> list[_Line]:
    many = len(curves) > 1
    lines, color = [], 0
    for curve in curves:
        for r in curve.records:
            sample = curve.samples.get(r.run.stage)
            values = (sample.ttft_ms if name == "ttft" else sample.itl_ms) if sample else None
            points, from_samples = cdf_points(values, getattr(r.results.latency, name))
            # A run compared at one stage keeps its colour across the page; stages of one run get one each.
            own = curve.color if many and len(curve.records) == 1 else color
            if points:
                lines.append(_Line(stage_label(curve, r, many=many), own, points, from_samples, untrusted(r)))
            color += 1
    return lines


def distributions(curves: Sequence[Curve]) -> list[str]:
    """CDFs of TTFT and of every ITL gap, one line per stage (per run and stage in a comparison)."""
    slo = slo_of(curves)
    out = []
    for name, title, units, slo_name, unit_word in (("ttft", "TTFT", "ms", "ttft_ms", "requests"),
                                                   ("itl", "ITL gaps", "ms", "itl_ms", "gaps")):
        lines = _cdf_lines(curves, name)
        notes = [f"showing {MAX_LINES} of {len(lines)} lines"] if len(lines) > MAX_LINES else []
        lines = lines[:MAX_LINES]
        # A long tail flattens the body: end the axis near the largest p99.9 and say where the max is.
        p999 = max((x for ln in lines for x, q in ln.points if abs(q - 99.9) < 1e-6), default=None)
        top = max((x for ln in lines for x, _ in ln.points), default=0.0)
        crop = p999 if p999 is not None and top > p999 * 1.5 else None
        series = []
        for ln in lines:
            points = [p for p in ln.points if crop is None or p[0] <= crop]
            middle = min(range(len(points)), key=lambda i: abs(points[i][1] - 50)) if points else -1
            tips = [f"{ln.label}: {q:.4g}% of {unit_word} at or below {fmt(x)} {units}" for x, q in points]
            series.append(Series(ln.label + ("" if ln.from_samples else " (stored percentiles)")
                                 + (" ⚠ untrustworthy" if ln.bad else ""), points, ln.color,
                                 dashed=not ln.from_samples, markers=not ln.from_samples, tips=tips,
                                 marked=[ln.bad and i == middle for i in range(len(points))]))
        if crop is not None:
            notes.append(f"the x axis ends near the largest p99.9 ({fmt(crop)} {units}); the slowest is {fmt(top)} {units}")
        if any(not ln.from_samples for ln in lines):
            notes.append("dashed lines join the stored percentiles (min, p50, p90, p95, p99, p99.9, max): "
                         "the per-request samples are not stored where the report was read from")
        rules = [Rule(slo[slo_name], f"SLO {fmt(slo[slo_name])} {units}", axis="x")] if slo_name in slo else []
        plot = Plot(f"distribution of {title}", f"{title} ({units})", f"share of {unit_word} at or below (%)",
                    series, rules, y_range=(0, 100), x_from_zero=True,
                    empty=f"the records hold no {title} figures (the harness reported none)")
        keys = [(s.name, s.color, s.dashed) for s in series]
        out.append(figure(f"Distribution of {title} (CDF)", line_plot(plot),
                          legend(keys, untrusted=any(ln.bad for ln in lines)), "; ".join(notes)))
    return out


def _offered(records: Sequence[StandardizedRecord]) -> tuple[str, str]:
    modes = {r.scenario.load.mode for r in records}
    if modes == {"rate"}:
        return "rate", "requested rate (requests/s)"
    if modes == {"concurrency"}:
        return "concurrency", "requests kept in flight (concurrency)"
    return "achieved", "achieved throughput (requests/s)"


def goodput_vs_load(curves: Sequence[Curve]) -> list[str]:
    records = [r for c in curves for r in c.records]
    if not any(r.results.goodput for r in records):
        return [figure("Goodput against load", "", "", "No SLO was stated with this run, so no goodput was counted "
                       "(vllmbench run takes --slo-ttft-ms, --slo-itl-ms, --slo-tpot-ms, --slo-e2e-ms).")]
    kind, x_label = _offered(records)
    single = len(curves) == 1
    series, keys = [], []
    for curve in curves:
        rows = []
        for r in (r for r in curve.records if r.results.throughput is not None):  # not accuracy-only records
            load = r.scenario.load
            x = {"rate": load.rate_rps, "concurrency": load.concurrency}.get(kind, r.results.throughput.requests_per_s)
            rows.append((float(x or 0), r))
        good = [(x, r.results.goodput.requests_per_s, r) for x, r in rows if r.results.goodput]
        for name, points, dashed, color in (
                ("goodput", [(x, g) for x, g, _ in good], False, 0 if single else curve.color),
                ("throughput", [(x, r.results.throughput.requests_per_s) for x, r in rows], True,
                 1 if single else curve.color)):
            marked = [untrusted(r) for _, r in rows] if name == "throughput" else [untrusted(r) for *_, r in good]
            source = rows if name == "throughput" else [(x, r) for x, _, r in good]
            tips = [f"{curve.label} stage {r.run.stage}: {name} {fmt(y)} req/s at {fmt(x)}"
                    + (f" ({r.results.goodput.fraction:.1%} of requests met the SLOs)" if r.results.goodput else "")
                    for (x, y), (_, r) in zip(points, source)]
            series.append(Series(f"{curve.label} {name}", points, color, dashed=dashed, marked=marked, tips=tips))
            keys.append((name if single else f"{curve.label} {name}", color, dashed))
    slo = slo_of(curves)
    slo_text = ", ".join(f"{k.removesuffix('_ms').upper()} ≤ {fmt(v)} ms" for k, v in slo.items())
    plot = Plot("goodput against load", x_label, "requests/s", series, x_from_zero=True)
    return [figure("Goodput against load", line_plot(plot), legend(keys, untrusted=any(any(s.marked) for s in series)),
                   f"goodput: requests that met every SLO ({escape(slo_text)}), per second")]


def rolling(completions: Sequence[tuple[float, int]], window: float, step: float,
            end: float) -> list[tuple[float, float, float]]:
    """(time, output tokens/s, requests/s) over a window centred on each step, from 0 to ``end``.
    Near the edges the window is cut to [0, end] and the rate divided by what is left of it."""
    times = [t for t, _ in completions]
    tokens = [0]
    for _, n in completions:
        tokens.append(tokens[-1] + n)
    out = []
    for i in range(int(end / step) + 1):
        t = i * step
        lo, hi = max(0.0, t - window / 2), min(end, t + window / 2)
        if hi <= lo:
            continue
        a, b = bisect.bisect_right(times, lo), bisect.bisect_right(times, hi)
        out.append((t, (tokens[b] - tokens[a]) / (hi - lo), (b - a) / (hi - lo)))
    return out


def throughput_over_time(curve: Curve) -> list[str]:
    """Output tokens per second over a sliding window within each stage (needs per-request samples)."""
    stages = [(r, curve.samples[r.run.stage]) for r in curve.records if curve.samples.get(r.run.stage)]
    stages = [(r, s) for r, s in stages if s.completions]
    if not stages:
        return [figure("Throughput over time within a stage", "", "",
                       "Needs per-request samples, which are not stored where this report was read from "
                       "(a vllmbench run posted to the Results service, or vllmbench report --from its --out folder).")]
    end = max(s.completions[-1][0] for _, s in stages)
    busiest = max(len(s.completions) / max(s.completions[-1][0], 1e-3) for _, s in stages)
    # Wide enough that a window holds about five responses of the busiest stage; narrow enough to show change.
    window = max(end / 15, 5 / busiest, 1e-3)
    series, keys = [], []
    for k, (r, s) in enumerate(stages[:MAX_LINES]):
        points = rolling(s.completions, window, window / 4, s.completions[-1][0])
        tips = [f"stage {r.run.stage} at {fmt(t)} s: {fmt(tok)} tokens/s, {fmt(req)} requests/s"
                for t, tok, req in points]
        series.append(Series(stage_label(curve, r, many=False), [(t, tok) for t, tok, _ in points], k,
                             markers=False, tips=tips))
        keys.append((stage_label(curve, r, many=False), k, False))
    shade = []
    if len(stages) == 1 and stages[0][1].window_s:
        lo, hi = stages[0][1].window_s
        shade = [(0.0, lo), (hi, end)] if lo > 0 or hi < end else []
    plot = Plot("throughput over time", "time since the stage started (s)", "output tokens/s", series,
                shade=shade, x_from_zero=True)
    note = f"responses completed in a sliding window of {fmt(window)} s"
    if shade:
        note += "; shaded: warm-up and cool-down, left out of the statistics"
    return [figure("Throughput over time within a stage", line_plot(plot), legend(keys), note)]
