"""The HTML page around the charts: one file, its style inline, no script, nothing fetched. Pure.

The Content-Security-Policy in the page forbids every fetch and every script, so the
file stays self-contained even if a record carried markup (all text is escaped too).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from vllmbench.models.results import StandardizedRecord
from vllmbench.report.svg import fmt

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--grid:#d8dee4;--panel:#f6f8fa;
--bad:#cf222e;--ok:#1a7f37;--shade:rgba(120,120,120,.16);--rule:#8250df;
--c0:#0072b2;--c1:#d55e00;--c2:#009e73;--c3:#cc79a7;--c4:#b8860b;--c5:#1f9ed9;--c6:#7f6136;--c7:#333}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--grid:#30363d;--panel:#161b22;
--bad:#ff7b72;--ok:#3fb950;--shade:rgba(200,200,200,.12);--rule:#d2a8ff;
--c0:#58a6ff;--c1:#ff9a56;--c2:#3ddbb0;--c3:#f291d4;--c4:#f2cc60;--c5:#9fd8ff;--c6:#d6b98c;--c7:#e6edf3}}
body{background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
margin:0 auto;max-width:1240px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--grid);
padding-bottom:4px}.sub{color:var(--muted);margin:0 0 12px}
nav a{color:var(--muted);margin-right:12px;text-decoration:none}nav a:hover{text-decoration:underline}
table.data{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
table.data th,table.data td{border-bottom:1px solid var(--grid);padding:4px 8px;text-align:right;vertical-align:top}
table.data th{font-weight:600;background:var(--panel)}table.data td:first-child,table.data th:first-child{text-align:left}
table.kv td{text-align:left}table.data td:first-child,table.data td:nth-child(2){white-space:nowrap}tr.untrustworthy td{background:color-mix(in srgb,var(--bad) 12%,transparent)}
td.differs{font-weight:700}.scroll{overflow-x:auto}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:700;color:var(--bg)}
.badge.bad{background:var(--bad)}.badge.ok{background:var(--ok)}
.banner{border:2px solid var(--bad);border-radius:6px;padding:8px 12px;margin:12px 0}
.banner strong{color:var(--bad)}ul.reasons{margin:2px 0 0;padding-left:18px;text-align:left;font-size:12px}
.better{color:var(--ok)}.worse{color:var(--bad)}
.grid{display:grid;align-items:start;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:8px 20px}
figure{margin:6px 0 14px}figcaption{font-weight:600;margin-bottom:2px}
.note{color:var(--muted);font-size:12px;margin:2px 0 0}
svg.chart{width:100%;height:auto;max-width:720px;display:block;font-size:11px;color:var(--fg)}
svg.chart text{fill:currentColor}svg.chart .ticks text,svg.chart .empty{fill:var(--muted)}
svg.chart .label{font-size:12px}svg.chart .grid line{stroke:var(--grid);stroke-width:1}
svg.chart .axis line{stroke:var(--muted);stroke-width:1}svg.chart .shade{fill:var(--shade)}
svg.chart .rule line{stroke:var(--rule);stroke-width:1.5;stroke-dasharray:6 4}svg.chart .rule text{fill:var(--rule)}
.series polyline{fill:none;stroke-width:2}.series polyline.dashed{stroke-dasharray:5 3}
.series .dot{stroke:var(--bg);stroke-width:1}.series .hollow{fill:var(--bg);stroke-width:1.5}
circle.untrusted{fill:none;stroke:var(--bad);stroke-width:2.5}.untrusted-label{fill:var(--bad)!important;font-weight:700}
.bar{stroke:var(--bg);stroke-width:.5}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);margin:2px 0 0 60px}
.key{display:inline-flex;align-items:center;gap:4px}svg.swatch{width:24px;height:12px}
svg.swatch line{stroke-width:2.5}svg.swatch line.dashed{stroke-dasharray:5 3}
""" + "".join(f".s{i} polyline,.s{i} line{{stroke:var(--c{i})}}.s{i} .dot,.s{i}.bar{{fill:var(--c{i})}}"
              f".s{i} .hollow{{stroke:var(--c{i})}}" for i in range(8))


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], *, banner: str = "",
         footer: str = "") -> str:
    """The whole document; ``sections`` are (anchor, heading, inner HTML)."""
    nav = "".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{escape(h)}</h2>{inner}</section>' for a, h, inner in sections)
    return ("<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f'<h1>{escape(title)}</h1><p class="sub">{subtitle}</p>{banner}<nav>{nav}</nav>{body}'
            f'<p class="note">{footer}</p></body></html>\n')


def _load(record: StandardizedRecord) -> str:
    load = record.scenario.load
    if load.mode == "rate":
        return f"{fmt(load.rate_rps or 0)} req/s, {load.arrival or 'constant'} arrivals"
    return f"{load.concurrency} in flight"


def _lengths(dist: object) -> str:
    if dist is None:
        return "-"
    kind, mean = getattr(dist, "kind"), getattr(dist, "mean")
    lo, hi = getattr(dist, "min"), getattr(dist, "max")
    bounds = f" ({lo}-{hi})" if lo is not None and hi is not None and lo != hi else ""
    return f"{fmt(mean)} tokens, {kind}{bounds}"


def scenario_rows(record: StandardizedRecord) -> list[tuple[str, str]]:
    s, load = record.scenario, record.scenario.load
    accel = f"{s.accelerator.model} × {s.accelerator.count}" if s.accelerator else "not recorded"
    par = s.parallelism
    unique = "yes" if load.unique_prompts else "NO: prompts may share prefixes, a prefix cache can flatter the server"
    return [
        ("model", s.model), ("engine", f"{s.engine} {s.engine_version or ''}".strip()), ("accelerator", accel),
        ("parallelism", f"TP {par.tp}, PP {par.pp}, DP {par.dp}, EP {par.ep}"),
        ("harness", f"{s.harness.name} {s.harness.version or ''}".strip()),
        ("load", _load(record)), ("max in flight", str(load.max_in_flight or "no cap")),
        ("stage length", f"{fmt(load.duration_s)} s" if load.duration_s else f"{load.request_count or '-'} requests"),
        ("warm-up / cool-down", f"{fmt(load.warmup_s)} s / {fmt(load.cooldown_s)} s"),
        ("input tokens", _lengths(load.input_tokens)), ("output tokens", _lengths(load.output_tokens)),
        ("dataset", load.dataset or "not recorded"), ("unique prompts", unique),
        ("streaming, endpoint", f"{'yes' if load.streaming else 'no'}, {load.endpoint}"),
        ("token counts from", record.results.token_counts_from),
    ]


def scenario_table(columns: Sequence[tuple[str, StandardizedRecord]]) -> str:
    """Scenario fields down, runs across; a field that differs between runs is bold."""
    rows = [scenario_rows(record) for _, record in columns]
    head = "".join(f"<th>{escape(label)}</th>" for label, _ in columns)
    thead = f"<thead><tr><th></th>{head}</tr></thead>" if len(columns) > 1 else ""
    body = []
    for k, (name, _) in enumerate(rows[0]):
        values = [r[k][1] for r in rows]
        cls = ' class="differs"' if len(set(values)) > 1 else ""
        body.append(f"<tr><th>{escape(name)}</th>" + "".join(f"<td{cls}>{escape(v)}</td>" for v in values) + "</tr>")
    return (f'<div class="scroll"><table class="data kv">{thead}'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _pair(stats: object, a: str = "p50", b: str = "p99") -> str:
    if stats is None:
        return "-"
    x, y = getattr(stats, a), getattr(stats, b)
    return f"{fmt(x) if x is not None else '-'} / {fmt(y) if y is not None else '-'}"


def summary_table(rows: Sequence[tuple[str, StandardizedRecord]]) -> str:
    head = ("<tr><th>stage</th><th>load</th><th>ok / total</th><th>req/s</th><th>output tokens/s</th>"
            "<th>TTFT p50 / p99 (ms)</th><th>ITL p50 / p99 (ms)</th><th>TPOT p50 / p99 (ms/token)</th>"
            "<th>e2e p50 / p99 (ms)</th><th>goodput (req/s, share)</th><th>trust</th></tr>")
    body = []
    for label, r in rows:
        res, lat = r.results, r.results.latency
        good = (f"{fmt(res.goodput.requests_per_s)}, {res.goodput.fraction:.1%}" if res.goodput else "no SLO")
        bad = res.trust is not None and not res.trust.trustworthy
        trust = ('<span class="badge bad">UNTRUSTWORTHY</span>' if bad else
                 '<span class="badge ok">ok</span>' if res.trust else "-")
        body.append(f'<tr{" class=untrustworthy" if bad else ""}><td>{escape(label)}</td><td>{escape(_load(r))}</td>'
                    f"<td>{res.requests.succeeded} / {res.requests.total}</td>"
                    + (f"<td>{fmt(res.throughput.requests_per_s)}</td><td>{fmt(res.throughput.output_tokens_per_s)}</td>"
                       if res.throughput else "<td>-</td><td>-</td>")  # an accuracy-only record has none
                    + f"<td>{_pair(lat.ttft)}</td><td>{_pair(lat.itl)}</td><td>{_pair(lat.tpot)}</td>"
                    f"<td>{_pair(lat.e2e)}</td><td>{good}</td><td>{trust}</td></tr>")
    return fold(f'<div class="scroll"><table class="data"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
                "</div>", len(body))


def accuracy_table(rows: Sequence[tuple[str, StandardizedRecord]]) -> str:
    """Accuracy per task and metric (lm-eval), or "" when no record has any."""
    body = []
    for label, r in rows:
        for task, metrics in (r.results.accuracy or {}).items():
            for name, m in metrics.items():
                stderr = f" ± {fmt(m.stderr)}" if m.stderr is not None else ""
                body.append(f"<tr><td>{escape(label)}</td><td>{escape(task)}</td><td>{escape(name)}</td>"
                            f"<td>{fmt(m.value)}{stderr}</td><td>{'-' if m.samples is None else m.samples}</td></tr>")
    if not body:
        return ""
    head = "<tr><th>run</th><th>task</th><th>metric</th><th>value ± stderr</th><th>samples</th></tr>"
    return fold(f'<div class="scroll"><table class="data"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
                "</div>", len(body))


FOLD_ROWS = 24


def fold(table: str, rows: int) -> str:
    """A long table behind a click (no script: <details>), so that the charts stay near the top."""
    if rows <= FOLD_ROWS:
        return table
    return f"<details><summary>{rows} rows (click to show)</summary>{table}</details>"


def trust_banner(rows: Sequence[tuple[str, StandardizedRecord]]) -> str:
    """A box at the top naming every untrustworthy stage and why."""
    items = []
    for label, r in rows:
        trust = r.results.trust
        if trust is not None and not trust.trustworthy:
            items.append(f"<li>{escape(label)}: " + escape("; ".join(trust.reasons) or "no reason recorded") + "</li>")
    if not items:
        return ""
    return (f'<div class="banner" id="untrustworthy"><strong>⚠ Untrustworthy: {len(items)} '
            f"stage{'s' if len(items) > 1 else ''}</strong> — the client, not the server, may be what these figures "
            f'describe (marked with a red ring in the charts).<ul class="reasons">{"".join(items)}</ul></div>')
