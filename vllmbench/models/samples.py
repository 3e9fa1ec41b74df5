"""Per-request samples: the query of GET /runs/{run_id}/requests and of the percentile route.

The samples themselves travel in the VBS1 binary layout (``vllmbench.samples``,
docs/results.md); a JSON row (:class:`RequestRow`) is what the JSON page shows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vllmbench.models.base import Strict

Metric = Literal["ttft", "itl", "e2e", "e2e_from_schedule", "tpot", "ntpot", "schedule_delay", "input_tokens",
                 "output_tokens"]


class RequestsQuery(Strict):
    limit: int = Field(100, ge=1, le=1000, description="Requests per page, at most 1000 (format=json).")
    cursor: str | None = Field(None, max_length=200, description="The next_cursor of the previous page.")
    stage: int | None = Field(None, ge=0, le=1_000_000, description="Only this load stage.")
    format: Literal["json", "jsonl", "vbs1"] = Field(
        "json", description="json: one page; jsonl: every request as JSON lines (a download); "
                            "vbs1: every stored chunk in the binary layout (a download).")


class PercentileQuery(Strict):
    metric: Metric = Field(description="ttft, itl (every gap), e2e, e2e_from_schedule, tpot, ntpot, "
                                       "schedule_delay (ms), input_tokens or output_tokens.")
    p: list[float] = Field(description="Percentiles 0..100, comma-separated, e.g. 50,99,99.5.", min_length=1,
                           max_length=50)
    stage: int | None = Field(None, ge=0, le=1_000_000, description="Only this load stage.")
    all: bool = Field(False, description="Count warm-up and cool-down requests too (the record leaves them out).")

    @field_validator("p")
    @classmethod
    def _range(cls, value: list[float]) -> list[float]:
        for p in value:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"each percentile is between 0 and 100; got {p}")
        return value


class RequestRow(Strict):
    """One request as GET /runs/{run_id}/requests shows it: times in ms (None when unknown)."""

    stage: int
    index: int
    scheduled_ms: float | None
    sent_ms: float | None
    ttft_ms: float | None
    e2e_ms: float | None
    cap_wait_ms: float | None
    itl_ms: list[float]
    input_tokens: int | None
    output_tokens: int | None
    status: int | None
    outcome: str = Field(description="ok, or what went wrong (http_500, disconnected, ...).")
    tokens_from: str
    measured: bool = Field(description="Inside the measurement window (warm-up and cool-down cut).")
