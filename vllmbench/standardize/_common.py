"""Helpers shared by the converters of other harnesses' reports. Pure."""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.models.results import Stats

ORDER = ("min", "p50", "p90", "p95", "p99", "p999", "max")


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed(f"{where} must be a number, got {type(value).__name__}")
    return float(value)


def stats_from(figures: dict[str, float | None], *, count: int, mean: float, stddev: float = 0.0,
               units: str = "ms") -> tuple[Stats, bool]:
    """Stats from the percentiles a tool reported. Missing ones are filled from the nearest
    reported higher percentile (lower for min); the flag says whether any was filled."""
    known = {k: v for k, v in figures.items() if v is not None}
    if not known:
        known = {"p50": mean}
    filled = len(known) < len(ORDER)
    values: dict[str, float] = {}
    for i, name in enumerate(ORDER):
        if name in known:
            values[name] = float(known[name])  # type: ignore[arg-type]
            continue
        higher = [known[n] for n in ORDER[i + 1 :] if n in known]
        lower = [known[n] for n in reversed(ORDER[:i]) if n in known]
        values[name] = float(higher[0] if higher else lower[0])  # type: ignore[index]
    values["min"] = min(values["min"], mean)
    values["max"] = max(values["max"], mean)
    for i in range(1, len(ORDER)):  # a tool's own rounding can put neighbours a hair out of order
        values[ORDER[i]] = max(values[ORDER[i]], values[ORDER[i - 1]])
    values = {k: max(0.0, v) for k, v in values.items()}
    return Stats(units=units, count=count, mean=max(0.0, mean), stddev=max(0.0, stddev), **values), filled  # type: ignore[arg-type]


def utc_from_unix(seconds: float | None) -> dt.datetime | None:
    if seconds is None or seconds <= 0:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
