"""Summary statistics, pure: values in, values out.

Percentiles use linear interpolation between closest ranks, the same definition as
``numpy.percentile``'s default, so figures can be checked against numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vllmbench.models.results import Stats

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of values already sorted ascending."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside 0..100")
    position = (len(sorted_values) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def summarize(values: Sequence[float], units: str = "ms") -> Stats | None:
    """Statistics of ``values`` (None when there are none). Population stddev, like numpy."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    if any(not math.isfinite(v) for v in ordered):
        raise ValueError("values must be finite")
    count = len(ordered)
    mean = math.fsum(ordered) / count
    variance = math.fsum((v - mean) ** 2 for v in ordered) / count
    figures = {name: percentile(ordered, q) for name, q in PERCENTILES.items()}
    # Interpolation and fsum can step a hair outside [min, max]: clamp, so the record validates.
    lo, hi = ordered[0], ordered[-1]
    return Stats(
        units=units,  # type: ignore[arg-type]
        count=count,
        mean=min(max(mean, lo), hi),
        stddev=math.sqrt(variance),
        min=lo,
        max=hi,
        **{name: min(max(value, lo), hi) for name, value in figures.items()},
    )
