"""Standardized records rebuilt from a raw ``vllmbench`` report. Pure.

The raw report keeps every request, so the Results service can recompute the records
(or check the ones the client sent) with the same code the client used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.harness.aggregate import StageFacts, to_record
from vllmbench.harness.config import RunConfig, SloSpec, Thresholds
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.trust import ClientFacts
from vllmbench.models.results import StandardizedRecord

RAW_FORMAT = "vllmbench-raw/1"


def config_from_dict(config: dict[str, Any], *, run_id: str) -> RunConfig:
    values = {k: v for k, v in config.items() if k in RunConfig.__dataclass_fields__}
    values["slo"] = SloSpec(**values.get("slo") or {})
    values["thresholds"] = Thresholds(**values.get("thresholds") or {})
    for key in ("rates", "concurrencies", "tags"):
        values[key] = tuple(values.get(key) or ())
    values["run_id"] = run_id
    return RunConfig(**values)


def records_from_raw(data: dict[str, Any], *, run_id: str, harness_version: str | None = None) -> list[StandardizedRecord]:
    if data.get("format") != RAW_FORMAT:
        raise ValidationFailed(f"vllmbench raw report: format is {data.get('format')!r}, expected {RAW_FORMAT!r}")
    try:
        cfg = config_from_dict(data["config"], run_id=run_id)
        out = []
        for s in data["stages"]:
            facts = StageFacts(
                index=int(s["index"]), mode=s["mode"], rate=s.get("rate"), concurrency=s.get("concurrency"),
                started_at=dt.datetime.fromisoformat(s["started_at"]), ended_at=dt.datetime.fromisoformat(s["ended_at"]),
                wall_s=float(s["wall_s"]), cpu_s_by_process=tuple(s.get("cpu_s_by_process") or ()),
                model=str(data["model"]), planned_span_ns=int(s.get("planned_span_ns") or 0),
                harness_version=harness_version,
                clients=tuple(ClientFacts.from_dict(c) for c in s.get("clients") or ()),
            )
            out.append(to_record([RequestRecord.from_dict(r) for r in s["requests"]], cfg, facts))
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationFailed(f"vllmbench raw report is malformed: {exc.__class__.__name__}: {exc}") from exc
