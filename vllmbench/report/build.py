"""A run's report and a comparison's report, assembled from the charts and tables. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from vllmbench.report import charts, pareto, sidebyside, trustcharts
from vllmbench.report.charts import Curve
from vllmbench.report.data import RunData
from vllmbench.report.page import accuracy_table, page, scenario_table, summary_table, trust_banner

DOCS = "docs/report.md and docs/loadgen.md (definitions) in the vllmbench repository"


def _grid(items: Sequence[str]) -> str:
    return f'<div class="grid">{"".join(items)}</div>'


def _samples_note(runs: Sequence[RunData]) -> str:
    with_samples = [r.run_id for r in runs if r.has_samples]
    if len(with_samples) == len(runs):
        return "distributions and throughput over time from every request"
    if not with_samples:
        return "distributions from the stored percentiles (no per-request samples stored)"
    return "per-request samples for " + ", ".join(with_samples) + "; stored percentiles for the others"


def run_report(run: RunData, *, generated_at: str) -> str:
    """Everything about one run: scenario, summary, latency, distributions, goodput,
    throughput over time, failures and trust, untrustworthy stages marked."""
    curve = Curve(run.run_id, 0, run.records, run.samples)
    first = run.records[0]
    labelled = [(f"stage {r.run.stage}", r) for r in run.records]
    sections = [
        ("scenario", "Scenario", scenario_table([(run.run_id, first)])
         + (f'<p class="note">{len(run.records)} stages; the load of each is in the summary.</p>'
            if len(run.records) > 1 else "")),
        ("summary", "Summary", summary_table(labelled)),
        *([("accuracy", "Accuracy", accuracy_table(labelled))] if accuracy_table(labelled) else []),
        ("latency", "Latency against throughput", _grid(charts.latency_vs_throughput([curve]))),
        ("distributions", "Distributions", _grid(charts.distributions([curve]))),
        ("goodput", "Goodput", _grid(charts.goodput_vs_load([curve]))),
        ("timeline", "Throughput over time", _grid(charts.throughput_over_time(curve))),
        ("failures", "Failures", _grid(trustcharts.failures([curve]))),
        ("trust", "Trust", trustcharts.trust_table([curve]) + _grid(trustcharts.trust_charts([curve]))),
    ]
    project = f"project {escape(first.run.project)}, " if first.run.project else ""
    subtitle = (f"{project}{escape(first.scenario.model)}, started {first.run.started_at.isoformat()}"
                + (f", tags {escape(', '.join(first.tags))}" if first.tags else ""))
    return page(f"vllmbench run {run.run_id}", subtitle, sections, banner=trust_banner(labelled),
                footer=_footer(run.source, generated_at, [run]))


def compare_report(runs: Sequence[RunData], *, labels: Sequence[str] | None = None, generated_at: str,
                   verdicts: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Runs side by side: scenario and metrics with differences to the first, the curves of
    each, distributions, trust, and the throughput-latency Pareto front across them all."""
    labels = list(labels or [r.run_id for r in runs])
    curves = [Curve(label, i, run.records, run.samples) for i, (label, run) in enumerate(zip(labels, runs))]
    labelled = [(f"{label}@{r.run.stage}", r) for label, run in zip(labels, runs) for r in run.records]
    sections = [
        ("scenario", "Scenarios", scenario_table([(label, run.records[0]) for label, run in zip(labels, runs)])),
        ("sidebyside", "Side by side", sidebyside.tables(labels, [run.records for run in runs], verdicts)),
        ("summary", "Summary", summary_table(labelled)),
        *([("accuracy", "Accuracy", accuracy_table(labelled))] if accuracy_table(labelled) else []),
        ("latency", "Latency against throughput", _grid(charts.latency_vs_throughput(curves))),
        ("pareto", "Pareto front", _grid(pareto.pareto(curves))),
        ("goodput", "Goodput", _grid(charts.goodput_vs_load(curves))),
        ("distributions", "Distributions", _grid(charts.distributions(curves))),
        ("failures", "Failures", _grid(trustcharts.failures(curves))),
        ("trust", "Trust", trustcharts.trust_table(curves) + _grid(trustcharts.trust_charts(curves))),
    ]
    subtitle = f"{len(runs)} runs; the first, {escape(labels[0])}, is the baseline"
    return page(f"vllmbench comparison: {', '.join(labels)}"[:300], subtitle, sections,
                banner=trust_banner(labelled), footer=_footer(", ".join(sorted({r.source for r in runs if r.source})),
                                                              generated_at, runs))


def _footer(source: str, generated_at: str, runs: Sequence[RunData]) -> str:
    where = f" from {escape(source)}" if source else ""
    return (f"Generated {escape(generated_at)}{where} by vllmbench; {_samples_note(runs)}. "
            f"Definitions: {DOCS}.")
