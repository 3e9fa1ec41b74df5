"""Shared model configuration."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` with a time zone: a naive datetime is taken as UTC (as MongoDB stores it)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class Strict(BaseModel):
    """Unknown fields are errors, NaN and Infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, defer_build=True)


class Open(BaseModel):
    """For documents written by other tools: unknown fields are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True, defer_build=True)
