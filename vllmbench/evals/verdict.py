"""Repeats, baselines and verdicts. Pure: metric values in, a verdict with its reasons out.

Each repeat of an evaluation is summarised by :func:`metrics_of` (per load stage: TTFT,
ITL, TPOT and end-to-end percentiles, throughput, goodput, accuracy). Across repeats
each metric gets its mean, standard deviation and a 95% confidence interval (Student's
t). Against a baseline a metric is:

- **worse** only when the change is beyond the profile's threshold (default 5%) in the
  bad direction **and** outside the noise: Welch's t-test across repeats at p < 0.05
  when both sides have two or more trustworthy repeats; with a single repeat on one side,
  it must fall outside the 95% prediction interval of the other side's repeats; with a
  single repeat on each side (no noise estimate), beyond twice the threshold, and the
  verdict says that its noise is unknown;
- **better** by the same rule in the good direction; **same** otherwise.

Repeats marked untrustworthy by their harness are left out and named. No trustworthy
repeat on either side: no verdict ("untrustworthy"). The evaluation's verdict is
``worse`` when any metric is worse, ``better`` when some are better and none worse,
else ``same``; without a baseline it is ``no_baseline`` with the figures alone.
"""

from __future__ import annotations

import math
from typing import Any

LOWER_IS_BETTER = ("ttft_", "itl_", "tpot_", "e2e_", "accuracy_lower:")
DEFAULT_THRESHOLD_PERCENT = 5.0
KEY_METRICS = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tpot_p50", "e2e_p50", "e2e_p99",
               "output_tokens_per_s", "requests_per_s", "goodput_rps")

# Student's t, two-sided 95%, by degrees of freedom (1..30); above 30 the normal's 1.96 is close.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def t95(df: float) -> float:
    if df < 1:
        return float("inf")
    return _T95[min(int(df), 30) - 1] if df <= 30 else 1.96


def metrics_of(records: list[dict[str, Any]]) -> dict[str, float]:
    """The comparable figures of one repeat's standardized records, keyed ``s<stage>:<metric>``."""
    out: dict[str, float] = {}
    for record in records:
        stage = (record.get("run") or {}).get("stage", 0)
        results = record.get("results") or {}
        latency = results.get("latency") or {}
        for name in ("ttft", "itl", "tpot", "e2e"):
            stats = latency.get(name) or {}
            for figure in ("p50", "p90", "p99"):
                if stats.get(figure) is not None:
                    out[f"s{stage}:{name}_{figure}"] = float(stats[figure])
        throughput = results.get("throughput") or {}
        for name in ("requests_per_s", "output_tokens_per_s"):
            if throughput.get(name) is not None:
                out[f"s{stage}:{name}"] = float(throughput[name])
        goodput = results.get("goodput") or {}
        if goodput.get("requests_per_s") is not None:
            out[f"s{stage}:goodput_rps"] = float(goodput["requests_per_s"])
        for task, metrics in (results.get("accuracy") or record.get("accuracy") or {}).items():
            for metric, value in (metrics or {}).items():
                number = value.get("value") if isinstance(value, dict) else value
                lower = isinstance(value, dict) and value.get("higher_is_better") is False  # e.g. perplexity
                if isinstance(number, (int, float)) and not isinstance(number, bool):
                    kind = "accuracy_lower" if lower else "accuracy"
                    out[f"s{stage}:{kind}:{_key(task)}:{_key(metric)}"] = float(number)
    return out


def _key(name: str) -> str:
    """A metric key part: no '.' or '$' (MongoDB and FerretDB refuse them in field names)."""
    return str(name).replace(".", "_").replace("$", "_")


def trust_of(records: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    ok = True
    for record in records:
        trust = (record.get("results") or {}).get("trust") or {}
        if trust and trust.get("trustworthy") is False:
            ok = False
            stage = (record.get("run") or {}).get("stage", 0)
            reasons += [f"stage {stage}: {r}" for r in trust.get("reasons") or ["marked untrustworthy"]]
    return ok, reasons


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and the 95% confidence interval of the mean."""
    n = len(values)
    mean = sum(values) / n
    stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    half = t95(n - 1) * stddev / math.sqrt(n) if stddev is not None else None
    return {"n": n, "mean": mean, "stddev": stddev,
            "ci95": [mean - half, mean + half] if half is not None else None}


def across_repeats(repeats: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric, the statistics over the trustworthy repeats (each repeat: {"metrics", "trustworthy"})."""
    usable = [r["metrics"] for r in repeats if r.get("metrics") and r.get("trustworthy") is not False]
    keys = sorted({k for m in usable for k in m})
    return {k: summary([m[k] for m in usable if k in m]) for k in keys if any(k in m for m in usable)}


def _lower_is_better(metric: str) -> bool:
    name = metric.split(":", 1)[-1]
    return name.startswith(LOWER_IS_BETTER)


def compare(current: dict[str, Any], baseline: dict[str, Any], *, metric: str, threshold: float) -> dict[str, Any]:
    """One metric: better / same / worse, with the change, the test and its reason."""
    a, b = current["mean"], baseline["mean"]
    change = (a - b) / b * 100 if b else (0.0 if a == b else math.inf)
    bad = change > 0 if _lower_is_better(metric) else change < 0
    out: dict[str, Any] = {"metric": metric, "current": a, "baseline": b, "change_percent": round(change, 3),
                           "threshold_percent": threshold}
    if abs(change) <= threshold:
        return {**out, "verdict": "same", "reason": f"{change:+.1f}% is within the {threshold:g}% threshold"}
    if current["n"] >= 2 and baseline["n"] >= 2 and current["stddev"] is not None and baseline["stddev"] is not None:
        p = welch_p(current, baseline)
        out["test"] = {"name": "welch_t", "p_value": p}
        if p >= 0.05:
            return {**out, "verdict": "same", "reason": f"{change:+.1f}% is within the noise (Welch's t-test p={p:.3f})"}
    elif (current["n"] >= 2) != (baseline["n"] >= 2):
        many, one = (current, baseline) if current["n"] >= 2 else (baseline, current)
        # one repeat against several: is it outside where a next repeat of the other side would fall?
        half = t95(many["n"] - 1) * (many["stddev"] or 0.0) * math.sqrt(1 + 1 / many["n"])
        out["test"] = {"name": "prediction_interval_95", "half_width": round(half, 6)}
        if abs(one["mean"] - many["mean"]) <= half:
            return {**out, "verdict": "same", "reason": f"{change:+.1f}% is within the 95% prediction interval of "
                    f"the side with {many['n']} repeats (one repeat on the other)"}
    else:
        out["test"] = {"name": "none", "note": "one repeat on each side: noise unknown; run with repeat >= 2"}
        if abs(change) <= 2 * threshold:
            return {**out, "verdict": "same", "reason": f"{change:+.1f}% is within twice the threshold and the "
                    "noise is unknown (one repeat each); run with repeat >= 2 to judge smaller changes"}
    word = "worse" if bad else "better"
    return {**out, "verdict": word, "reason": f"{change:+.1f}% ({'higher' if change > 0 else 'lower'} is "
            f"{word} for {metric.split(':', 1)[-1]})"}


def welch_p(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Two-sided p-value of Welch's t-test from summaries (normal approximation of t above 30 df)."""
    va, vb = a["stddev"] ** 2 / a["n"], b["stddev"] ** 2 / b["n"]
    if va + vb == 0:
        return 0.0 if a["mean"] != b["mean"] else 1.0
    t = (a["mean"] - b["mean"]) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (a["n"] - 1) if a["n"] > 1 else 0) + (vb ** 2 / (b["n"] - 1) if b["n"] > 1 else 0))
    return _t_two_sided(abs(t), df)


def _t_two_sided(t: float, df: float) -> float:
    """P(|T| > t) for Student's t with ``df`` degrees of freedom (regularised incomplete beta)."""
    x = df / (df + t * t)
    return _betainc(df / 2, 0.5, x)


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _cf(a, b, x) / a
    return 1 - front * _cf(b, a, 1 - x) / b


def _cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-12:
            break
    return h


def judge(current_repeats: list[dict[str, Any]], baseline_repeats: list[dict[str, Any]] | None, *,
          baseline_id: str | None, threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
          metrics: tuple[str, ...] = KEY_METRICS) -> dict[str, Any]:
    """The evaluation's verdict against its baseline's repeats (None: no baseline)."""
    left_out = [{"run_id": r.get("run_id"), "reasons": r.get("trust_reasons") or ["untrustworthy"]}
                for r in current_repeats if r.get("trustworthy") is False]
    stats = across_repeats(current_repeats)
    result: dict[str, Any] = {"baseline": baseline_id, "threshold_percent": threshold_percent, "metrics": stats,
                              "untrustworthy_repeats": left_out, "comparisons": []}
    if not stats:
        return {**result, "verdict": "untrustworthy",
                "summary": "no trustworthy repeat: no verdict (see untrustworthy_repeats)"}
    if baseline_repeats is None:
        return {**result, "verdict": "no_baseline", "summary": "no baseline to compare with: figures only"}
    base = across_repeats(baseline_repeats)
    if not base:
        return {**result, "verdict": "untrustworthy", "summary": f"the baseline {baseline_id} has no trustworthy repeat"}
    for key in sorted(set(stats) & set(base)):
        name = key.split(":", 1)[-1]
        if name in metrics or name.startswith(("accuracy:", "accuracy_lower:")):
            result["comparisons"].append(compare(stats[key], base[key], metric=key, threshold=threshold_percent))
    worse = [c["metric"] for c in result["comparisons"] if c["verdict"] == "worse"]
    better = [c["metric"] for c in result["comparisons"] if c["verdict"] == "better"]
    if worse:
        verdict, text = "worse", f"worse on {', '.join(worse[:5])}"
    elif better:
        verdict, text = "better", f"better on {', '.join(better[:5])}"
    else:
        verdict, text = "same", f"{len(result['comparisons'])} metrics within threshold or noise"
    if left_out:
        text += f"; {len(left_out)} untrustworthy repeat(s) left out"
    return {**result, "verdict": verdict, "summary": text}
