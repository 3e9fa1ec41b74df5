"""Metrics of several runs side by side, with differences to the first (the baseline). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from vllmbench.compare import compare
from vllmbench.models.results import StandardizedRecord
from vllmbench.report.svg import fmt

MAX_COLUMNS = 8
VERDICT_CLASS = {"better": "better", "worse": "worse", "same": ""}


def change(metric: dict[str, Any], i: int) -> tuple[bool, str] | None:
    """Run ``i``'s move against the baseline in ``GET /compare``'s answer: (improved, "+12.3%"),
    or None when there is none (the baseline itself, a missing figure, no change)."""
    rel, absolute = metric["rel_diff"][i], metric["abs_diff"][i]
    if i == 0 or absolute is None or absolute == 0:
        return None
    improved = (absolute < 0) == (metric["better"] == "lower")
    return improved, f"{rel:+.1%}" if rel is not None else f"{absolute:+g}"


def _difference(metric: dict[str, Any], i: int) -> str:
    moved = change(metric, i)
    if moved is None:
        return '<br><span class="note">same</span>' if metric["abs_diff"][i] == 0 else ""
    arrow = "▲" if metric["abs_diff"][i] > 0 else "▼"
    return f'<br><span class="{"better" if moved[0] else "worse"}">{arrow} {moved[1]}</span>'


def table(labels: Sequence[str], records: Sequence[StandardizedRecord],
          verdicts: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """One row per metric; each run's value with its difference to the baseline under it.

    ``verdicts`` (run label -> metric -> better/same/worse) comes from an evaluation's
    noise-aware judgement; without it the colours show the direction only.
    """
    result = compare(list(records))
    head = "".join(f"<th>{escape(label)}{' (baseline)' if i == 0 else ''}"
                   + ('<br><span class="badge bad">UNTRUSTWORTHY</span>' if run["trustworthy"] is False else "")
                   + "</th>" for i, (label, run) in enumerate(zip(labels, result["runs"])))
    body = []
    for metric in result["metrics"]:
        cells = []
        for i, value in enumerate(metric["values"]):
            if value is None:
                cells.append("<td>-</td>")
                continue
            diff = "" if i == 0 else _difference(metric, i)
            verdict = (verdicts or {}).get(labels[i], {}).get(metric["metric"])
            judged = (f'<br><span class="{VERDICT_CLASS.get(verdict, "")}"><b>verdict: {escape(verdict)}</b></span>'
                      if verdict else "")
            cells.append(f"<td>{fmt(value)}{diff}{judged}</td>")
        body.append(f"<tr><th>{escape(metric['metric'])}</th><td>{escape(metric['units'])}</td>"
                    f"<td>{escape(metric['better'])}</td>{''.join(cells)}</tr>")
    return ('<div class="scroll"><table class="data"><thead><tr><th>metric</th><th>units</th><th>better</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def tables(labels: Sequence[str], runs: Sequence[Sequence[StandardizedRecord]],
           verdicts: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Side-by-side tables: the chosen records when every run has one, else stage by stage
    for each stage index the runs share."""
    if len(labels) > MAX_COLUMNS:
        return (f'<p class="note">{len(labels)} runs: side-by-side tables are drawn for at most {MAX_COLUMNS}; '
                "the summary table and the Pareto front below cover them all.</p>")
    note = ('<p class="note">Differences are against the first run. Green and red show the direction only '
            "(no noise test); a verdict, where an evaluation judged one, is printed in bold.</p>")
    if all(len(r) == 1 for r in runs):
        return note + table(labels, [r[0] for r in runs], verdicts)
    out = [note]
    shared = sorted(set.intersection(*[{rec.run.stage for rec in r} for r in runs]))
    for stage in shared:
        chosen = [next(rec for rec in r if rec.run.stage == stage) for r in runs]
        out.append(f"<h3>stage {stage}</h3>" + table(labels, chosen, verdicts))
    if not shared:
        out.append('<p class="note">These runs share no stage index; name one stage of each as RUN@STAGE '
                   "to compare them side by side.</p>")
    return "".join(out)
