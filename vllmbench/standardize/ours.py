"""vllmbench's own raw report -> standardized records.

The raw report carries the records the client computed and every request; when the
records are missing they are rebuilt from the requests with the client's own code.
"""

from __future__ import annotations

from pydantic import ValidationError

from vllmbench.errors import ValidationFailed
from vllmbench.harness.raw import records_from_raw
from vllmbench.models.results import RawInput, StandardizedRecord


def from_raw(raw: RawInput) -> list[StandardizedRecord]:
    data = raw.data
    if not isinstance(data.get("records"), list) and not isinstance(data.get("stages"), list):
        raise ValidationFailed("vllmbench raw report needs 'records' or 'stages' (a list); got keys "
                               f"{sorted(data)[:10]}")
    if isinstance(data.get("records"), list) and data["records"]:
        try:
            records = [StandardizedRecord.model_validate(r) for r in data["records"]]
        except ValidationError as exc:
            raise ValidationFailed(f"vllmbench raw report: a record is invalid: {exc.errors()[0]['msg']} at "
                                   f"{'.'.join(map(str, exc.errors()[0]['loc']))}") from exc
    else:
        records = records_from_raw(data, run_id=raw.run_id, harness_version=raw.harness.version)
    out = []
    for record in records:
        run = record.run.model_copy(update={"run_id": raw.run_id, "project": raw.project or record.run.project})
        out.append(record.model_copy(update={"run": run, "tags": list(dict.fromkeys([*record.tags, *raw.tags]))}))
    return out
