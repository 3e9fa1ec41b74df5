"""Listing queries: filters, sort order and cursors, as plain values.

The store turns a :class:`ResultQuery` into a database filter with :func:`mongo_filter`
(plain dicts, no driver import). Cursors are opaque to clients: the sort key and id
of the last item seen, base64-encoded, so pages stay stable while records arrive.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any, Literal

from pydantic import Field, model_validator

from vllmbench.errors import UserError
from vllmbench.models.base import Strict, as_utc
from vllmbench.models.results import NAME_PATTERN, RUN_ID_PATTERN

MAX_PAGE = 500


class PageQuery(Strict):
    sort: Literal["-time", "time"] = Field("-time", description="By time: newest first (-time) or oldest first.")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")
    cursor: str | None = Field(None, max_length=500, description="The next_cursor of the previous page.")


class ResultQuery(PageQuery):
    project: str | None = Field(None, pattern=NAME_PATTERN)
    model: str | None = Field(None, max_length=300)
    run_id: str | None = Field(None, pattern=RUN_ID_PATTERN)
    harness: str | None = Field(None, pattern=NAME_PATTERN)
    tag: list[str] = Field(default_factory=list, description="Records carrying every tag given.")
    since: dt.datetime | None = Field(None, description="Runs that started at or after this time (ISO 8601).")
    until: dt.datetime | None = Field(None, description="Runs that started before this time (ISO 8601).")
    @model_validator(mode="after")
    def _range(self) -> "ResultQuery":
        if self.since and self.until and as_utc(self.since) >= as_utc(self.until):
            raise ValueError("since must be before until")
        return self


class RawQuery(ResultQuery):
    include_data: bool = Field(False, description="Include each harness output (can be large); /runs/{run_id} always does.")


def mongo_filter(query: ResultQuery) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    for field in ("project", "model", "run_id", "harness"):
        value = getattr(query, field)
        if value is not None:
            clauses.append({field: value})
    if query.tag:
        clauses.append({"tags": {"$all": list(query.tag)}})
    if query.since:
        clauses.append({"time": {"$gte": as_utc(query.since)}})
    if query.until:
        clauses.append({"time": {"$lt": as_utc(query.until)}})
    if query.cursor:
        clauses.append(cursor_filter(query))
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def cursor_filter(query: PageQuery) -> dict[str, Any]:
    """Items after the cursor's (time, id) in the query's order; {} without a cursor."""
    if not query.cursor:
        return {}
    time, last_id = decode_cursor(query.cursor)
    op = "$lt" if query.sort == "-time" else "$gt"
    return {"$or": [{"time": {op: time}}, {"time": time, "_id": {op: last_id}}]}


def sort_spec(query: PageQuery) -> list[tuple[str, int]]:
    direction = -1 if query.sort == "-time" else 1
    return [("time", direction), ("_id", direction)]


def encode_cursor(time: dt.datetime, last_id: str) -> str:
    raw = json.dumps([as_utc(time).isoformat(), last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_text, last_id = json.loads(raw)
        return dt.datetime.fromisoformat(time_text), str(last_id)
    except (ValueError, TypeError) as exc:
        raise UserError("cursor is not one this service gave out; use next_cursor from the previous page") from exc
