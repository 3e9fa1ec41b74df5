"""An evaluation's verdict as MLflow tags, and whether it moves an alias. Pure.

The tags go on the model version that was evaluated, so the verdict is visible where
the version was registered: ``vllmbench.verdict`` (better / same / worse, or
no_verdict / failed / timed_out / cancelled), the key figures as
``vllmbench.<metric>`` (``vllmbench.ttft_p50_ms``, ...) with
``vllmbench.<metric>.change_pct`` against the baseline, and links to the evaluation
and its results.
"""

from __future__ import annotations

import math
import re

from vllmbench.models.mlflow import EvalCompleted

PREFIX = "vllmbench."
_METRIC = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_METRICS = 40
MAX_VALUE = 5000  # MLflow's tag value limit is larger; a tag is for people to read
PROMOTING = ("better", "same")


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


def verdict_word(event: EvalCompleted) -> str:
    if event.state != "done":
        return event.state
    return event.verdict or "no_verdict"


def verdict_tags(event: EvalCompleted) -> dict[str, str]:
    """Tag key -> value for the evaluated version (only what the event says; nothing secret)."""
    tags = {f"{PREFIX}verdict": verdict_word(event), f"{PREFIX}evaluation": event.evaluation_id}
    optional = {
        "reason": event.reason, "benchmark": event.benchmark, "project": event.project, "server": event.server,
        "baseline": event.baseline, "evaluation_url": event.url, "results_url": event.results_url,
        "run_ids": ",".join(event.run_ids) if event.run_ids else None,
        "trustworthy": None if event.trustworthy is None else str(event.trustworthy).lower(),
        "completed_at": event.completed_at.isoformat() if event.completed_at else None,
    }
    for key, value in optional.items():
        if value:
            tags[PREFIX + key] = str(value)[:MAX_VALUE]
    for name in sorted(event.metrics)[:MAX_METRICS]:
        figure = event.metrics[name]
        if not _METRIC.match(name):
            continue
        if figure.value is not None:
            tags[f"{PREFIX}{name}"] = _number(figure.value)
        if figure.change_pct is not None:
            tags[f"{PREFIX}{name}.change_pct"] = _number(figure.change_pct)
        if figure.verdict is not None:
            tags[f"{PREFIX}{name}.verdict"] = figure.verdict
    return tags


def promotion(event: EvalCompleted, *, alias: str | None, version: int, holder: int | None) -> str | None:
    """Why ``alias`` is not moved to ``version`` (held by ``holder`` now), or None to move it.

    It moves on 'better' or 'same' only, and never back to an older version than the one
    holding it: verdicts of two versions may arrive out of order.
    """
    if not alias:
        return "the rule moves no alias"
    if event.state != "done" or event.verdict not in PROMOTING:
        return f"the verdict is {verdict_word(event)}; the alias moves on better or same"
    if holder is not None and holder >= version:
        return f"alias {alias!r} is on version {holder} already" if holder == version else \
            f"alias {alias!r} is on the newer version {holder}"
    return None
