"""Shared model configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from vllmbench.models.times import as_utc

__all__ = ["Open", "Strict", "as_utc"]


class Strict(BaseModel):
    """Unknown fields are errors, NaN and Infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, defer_build=True)


class Open(BaseModel):
    """For documents written by other tools: unknown fields are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True, defer_build=True)
