"""Time helpers shared by models and stores (no pydantic here: the event ledger uses them
on a function's cold-start path)."""

from __future__ import annotations

import datetime as dt


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` with a time zone: a naive datetime is taken as UTC (as MongoDB stores it)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
