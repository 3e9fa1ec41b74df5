"""An evaluation's verdict as MLflow tags, and whether it moves an alias. Pure.

The tags go on the model version that was evaluated, so the verdict is visible where
the version was registered: ``vllmbench.verdict`` (better / same / worse / no_baseline /
untrustworthy, or the state when the evaluation did not finish: failed / timed_out /
cancelled), the key figures of ``vllmbench.evals.verdict.KEY_METRICS`` (means across
repeats) as ``vllmbench.ttft_p50_ms``, ``vllmbench.output_tokens_per_s``, ... with
``.change_pct`` and ``.verdict`` against the baseline, and links to the evaluation and
its results. Figures of load stages after the first carry the stage:
``vllmbench.s1.ttft_p50_ms``.
"""

from __future__ import annotations

import math
import re

from vllmbench.evals.verdict import KEY_METRICS, LOWER_IS_BETTER
from vllmbench.models.mlflow import EvalCompleted

PREFIX = "vllmbench."
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MAX_FIGURES = 60
MAX_VALUE = 5000  # MLflow's tag value limit is larger; a tag is for people to read
PROMOTING = ("better", "same")


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def figure_tag(key: str) -> str | None:
    """``s0:ttft_p50`` -> ``ttft_p50_ms``, ``s2:requests_per_s`` -> ``s2.requests_per_s``,
    ``s0:accuracy:gsm8k:exact_match`` -> ``accuracy.gsm8k.exact_match``; None for figures
    that are not key figures."""
    stage, _, name = key.partition(":")
    if not name:
        stage, name = "s0", key
    if name not in KEY_METRICS and not name.startswith("accuracy:"):
        return None
    tag = name.replace(":", ".") + ("_ms" if name.startswith(LOWER_IS_BETTER) else "")
    tag = tag if stage == "s0" else f"{stage}.{tag}"
    return tag if _TAG.fullmatch(tag) else None


def verdict_word(event: EvalCompleted) -> str:
    if event.state != "done":
        return event.state
    return (event.verdict.verdict if event.verdict else None) or "no_verdict"


def verdict_tags(event: EvalCompleted, *, eval_url: str | None = None,
                 results_url: str | None = None) -> dict[str, str]:
    """Tag key -> value for the evaluated version (only what the event says; nothing secret)."""
    judged = event.verdict
    tags = {f"{PREFIX}verdict": verdict_word(event), f"{PREFIX}evaluation": event.evaluation}
    optional = {
        "summary": judged.summary if judged else None, "reason": event.reason, "benchmark": event.benchmark,
        "project": event.project, "server": event.server, "baseline": judged.baseline if judged else None,
        "evaluation_url": f"{eval_url.rstrip('/')}/evaluations/{event.evaluation}" if eval_url else None,
        "results_url": f"{results_url.rstrip('/')}/runs/{event.run_ids[0]}" if results_url and event.run_ids else None,
        "run_ids": ",".join(event.run_ids) if event.run_ids else None,
        "untrustworthy_repeats": str(len(judged.untrustworthy_repeats)) if judged and judged.untrustworthy_repeats
        else None,
    }
    for key, value in optional.items():
        if value:
            tags[PREFIX + key] = str(value)[:MAX_VALUE]
    if judged is None:
        return tags
    figures = 0
    for key in sorted(judged.metrics):
        tag, mean = figure_tag(key), judged.metrics[key].get("mean")
        if tag and isinstance(mean, (int, float)) and figures < MAX_FIGURES:
            tags[PREFIX + tag] = _number(float(mean))
            figures += 1
    for comparison in judged.comparisons:
        tag = figure_tag(str(comparison.get("metric", "")))
        if tag is None or PREFIX + tag not in tags:
            continue
        if isinstance(comparison.get("change_percent"), (int, float)):
            tags[f"{PREFIX}{tag}.change_pct"] = _number(float(comparison["change_percent"]))
        if comparison.get("verdict") in ("better", "same", "worse"):
            tags[f"{PREFIX}{tag}.verdict"] = comparison["verdict"]
    return tags


def promotion(event: EvalCompleted, *, alias: str | None, version: int, holder: int | None) -> str | None:
    """Why ``alias`` is not moved to ``version`` (held by ``holder`` now), or None to move it.

    It moves on 'better' or 'same' only, and never back to an older version than the one
    holding it: verdicts of two versions may arrive out of order.
    """
    if not alias:
        return "the rule moves no alias"
    word = verdict_word(event)
    if word not in PROMOTING:
        return f"the verdict is {word}; the alias moves on better or same"
    if holder is not None and holder >= version:
        return f"alias {alias!r} is on version {holder} already" if holder == version else \
            f"alias {alias!r} is on the newer version {holder}"
    return None
