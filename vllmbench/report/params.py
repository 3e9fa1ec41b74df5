"""The query of ``GET /compare/report`` and what ``vllmbench report`` accepts: runs as
``RUN`` or ``RUN@STAGE``. Pure."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from vllmbench.errors import ValidationFailed
from vllmbench.models.base import Strict
from vllmbench.models.results import RUN_ID_PATTERN

MAX_REPORT_RUNS = 50  # the Pareto front is drawn across many runs; side-by-side tables across the first 8
RUN_ITEM_PATTERN = RUN_ID_PATTERN.removesuffix("$") + r"(@[0-9]{1,6})?$"

RunItem = Annotated[str, StringConstraints(pattern=RUN_ITEM_PATTERN)]


class CompareReportQuery(Strict):
    runs: list[RunItem] = Field(min_length=2, max_length=MAX_REPORT_RUNS,
                                description="Runs to compare, comma-separated: run_id or run_id@stage; the first is the "
                                            f"baseline (2 to {MAX_REPORT_RUNS}).")


def split_item(item: str) -> tuple[str, int | None]:
    """``run@3`` -> ("run", 3); ``run`` -> ("run", None)."""
    run_id, at, stage = item.rpartition("@") if "@" in item else (item, "", "")
    if not at:
        return item, None
    if not stage.isdigit():
        raise ValidationFailed(f"{item!r}: the stage after '@' must be a whole number, e.g. {run_id}@0")
    return run_id, int(stage)
