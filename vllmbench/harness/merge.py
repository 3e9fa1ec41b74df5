"""One run out of the parts that several client pods sent together (``vllmbench run --shard I/N``). Pure.

Every shard computed the same schedule (same seed, the full rate) and sent its arrivals
I, I + N, ...; each posted its part as the run ``<run>-p<I>`` with its per-request records
and its own trust figures. The merge checks that the parts are the N slices of one
schedule, puts their requests back together and summarises them with the code that
summarises one client's (:func:`vllmbench.harness.aggregate.to_record`), so the merged
record is what one client sending the whole schedule would have reported, to the
resolution of the per-request samples (1 us, gaps 10 us). Trust: the figures over all
requests and all client processes (the achieved rate counted over every pod), and each
pod's own verdict as well: one pod that fell behind can hide in pooled figures (a third
of the requests late moves no median), so any untrustworthy pod makes the merged stage
untrustworthy and is named in its reasons. Each pod's figures stay in its part and in the
merged raw report's ``pods``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.harness.aggregate import StageFacts, to_record
from vllmbench.harness.config import RunConfig
from vllmbench.harness.raw import RAW_FORMAT, config_from_dict
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.schedule import request_count, send_offsets, shard_of, worker_of
from vllmbench.harness.trust import ClientFacts
from vllmbench.models.results import StandardizedRecord, Trust

_PART = re.compile(r"^(?P<run>.+)-p(?P<shard>\d+)$")
SCHEDULE_SLACK_NS = 1_000  # samples keep times to the microsecond
PER_SHARD = ("run_id", "shard_index")  # the only settings the parts of one run differ in


def part_run_id(run_id: str, shard: int) -> str:
    return f"{run_id}-p{shard}"


def merged_run_id(part_id: str) -> str:
    """The run a part belongs to (``ev-1-r0-p2`` -> ``ev-1-r0``); a run that is no part is its own."""
    match = _PART.match(part_id)
    return match.group("run") if match else part_id


@dataclass
class PartStage:
    index: int
    mode: str
    rate: float | None
    started_at: dt.datetime
    ended_at: dt.datetime
    wall_s: float
    cpu_s_by_process: tuple[float, ...]
    planned_span_ns: int
    clients: tuple[ClientFacts, ...]
    requests: list[RequestRecord]
    trust: Trust | None  # the pod's own, from its record


@dataclass
class Part:
    run_id: str
    config: RunConfig
    model: str
    stages: list[PartStage]
    harness_version: str | None = None


@dataclass
class MergedStage:
    facts: StageFacts
    offsets_ns: list[int]  # the whole schedule
    requests: list[RequestRecord]
    pods: list[dict[str, Any]]
    record: StandardizedRecord


@dataclass
class Merged:
    config: RunConfig
    model: str
    stages: list[MergedStage] = field(default_factory=list)

    @property
    def records(self) -> list[StandardizedRecord]:
        return [s.record for s in self.stages]


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(f"cannot merge the client pods' parts: {message}")


def request_of_row(row: dict[str, Any], part_id: str) -> RequestRecord:
    """A per-request sample (``GET /runs/{id}/requests``) as the record the client kept."""
    outcome = row.get("outcome") or "ok"
    return RequestRecord.from_dict({
        **row, "sent_ms": row.get("sent_ms") or 0.0, "cap_wait_ms": row.get("cap_wait_ms") or 0.0,
        "error": None if outcome == "ok" else outcome, "tokens_from": row.get("tokens_from") or "local",
        "request_id": f"{part_id}-s{row.get('stage', 0)}-{row['index']}"})


def part_from_raw(run_id: str, data: dict[str, Any], rows: list[dict[str, Any]] | None = None, *,
                  harness_version: str | None = None) -> Part:
    """A part from its raw report (the ``data`` of its raw result) and, when the report went without
    its requests, its per-request samples ``rows`` (every stage's)."""
    if data.get("format") != RAW_FORMAT:
        raise _refuse(f"{run_id} is not a vllmbench raw report (format {data.get('format')!r})")
    try:
        cfg = config_from_dict(data["config"], run_id=run_id)
        trusts = {int(r["run"]["stage"]): r["results"].get("trust") for r in data.get("records") or []}
        by_stage: dict[int, list[RequestRecord]] = {}
        for row in rows or []:
            by_stage.setdefault(int(row.get("stage") or 0), []).append(request_of_row(row, run_id))
        stages = []
        for s in data["stages"]:
            index = int(s["index"])
            requests = by_stage.get(index, []) if rows is not None else \
                [RequestRecord.from_dict(r) for r in s.get("requests") or []]
            trust = trusts.get(index)
            stages.append(PartStage(
                index=index, mode=s["mode"], rate=s.get("rate"),
                started_at=dt.datetime.fromisoformat(s["started_at"]), ended_at=dt.datetime.fromisoformat(s["ended_at"]),
                wall_s=float(s["wall_s"]), cpu_s_by_process=tuple(s.get("cpu_s_by_process") or ()),
                planned_span_ns=int(s.get("planned_span_ns") or 0),
                clients=tuple(ClientFacts.from_dict(c) for c in s.get("clients") or ()), requests=requests,
                trust=Trust.model_validate(trust) if trust else None))
        return Part(run_id, cfg, str(data["model"]), stages, harness_version)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _refuse(f"the raw report of {run_id} is malformed: {exc.__class__.__name__}: {exc}") from exc


def _check_parts(parts: list[Part]) -> int:
    """The number of shards, once the parts are known to be the slices of one run."""
    if not parts:
        raise _refuse("no parts")
    shards = parts[0].config.shards
    found = sorted(p.config.shard_index if p.config.shard_index is not None else -1 for p in parts)
    if any(p.config.shards != shards for p in parts) or found != list(range(shards)):
        raise _refuse(f"expected shards 0..{shards - 1} of {shards} once each, got "
                      f"{', '.join(f'{p.run_id} ({p.config.shard_index}/{p.config.shards})' for p in parts)}")
    first = parts[0]
    for part in parts[1:]:
        differ = [f.name for f in fields(RunConfig) if f.name not in PER_SHARD
                  and getattr(part.config, f.name) != getattr(first.config, f.name)]
        if differ:
            raise _refuse(f"{part.run_id} was run with other settings than {first.run_id}: {', '.join(differ)}")
        if part.model != first.model:
            raise _refuse(f"{part.run_id} ran model {part.model!r}, {first.run_id} {first.model!r}")
        shape = [(s.index, s.mode, s.rate, s.planned_span_ns) for s in part.stages]
        if shape != [(s.index, s.mode, s.rate, s.planned_span_ns) for s in first.stages]:
            raise _refuse(f"{part.run_id} ran other stages than {first.run_id}: {shape}")
    return shards


def _slice_of(part: Part, stage: PartStage, offsets: list[int], shards: int) -> list[RequestRecord]:
    """The part's requests of a stage, checked against its slice of the schedule, with the exact
    planned times and the process ids they have in the merged run."""
    shard, workers = part.config.shard_index or 0, part.config.workers
    wanted = shard_of(len(offsets), shard, shards)
    got = sorted(r.index for r in stage.requests)
    if got != wanted:
        missing = sorted(set(wanted) - set(got))[:5]
        extra = sorted(set(got) - set(wanted))[:5]
        twice = len(got) - len(set(got))
        raise _refuse(f"{part.run_id} stage {stage.index} holds {len(got)} requests, its slice of the schedule "
                      f"{len(wanted)}" + (f"; missing {missing}" if missing else "") +
                      (f"; not its own {extra}" if extra else "") + (f"; {twice} twice" if twice else ""))
    out = []
    for rec in stage.requests:
        if abs(rec.scheduled_ns - offsets[rec.index]) > SCHEDULE_SLACK_NS:
            raise _refuse(f"{part.run_id} planned request {rec.index} at {rec.scheduled_ns} ns, the schedule at "
                          f"{offsets[rec.index]} ns: it did not send the same schedule (another seed or rate?)")
        local = worker_of(rec.index, shard=shard, shards=shards, workers=workers)
        out.append(replace(rec, scheduled_ns=offsets[rec.index], worker=shard * workers + local))
    return out


def _trust(union: Trust | None, parts: list[Part], stage: int, shards: int) -> Trust | None:
    if union is None:
        return None
    reasons = list(union.reasons)
    for part in parts:
        own = part.stages[stage].trust
        if own is not None and not own.trustworthy:
            reasons += [f"client pod {part.config.shard_index} of {shards} ({part.run_id}): {r}" for r in own.reasons]
            if not own.reasons:
                reasons.append(f"client pod {part.config.shard_index} of {shards} ({part.run_id}) was untrustworthy")
    return union.model_copy(update={"trustworthy": not reasons, "reasons": reasons})


def merge(parts: list[Part]) -> Merged:
    """The run the parts make together; raises ``ValidationFailed`` when they are not one run's slices."""
    shards = _check_parts(parts)
    parts = sorted(parts, key=lambda p: p.config.shard_index or 0)
    first = parts[0]
    cfg = replace(first.config, run_id=merged_run_id(first.run_id), shard_index=None)
    merged = Merged(cfg, first.model)
    for position, stage in enumerate(first.stages):
        if stage.mode != "rate" or stage.rate is None:
            raise _refuse(f"stage {stage.index} is a {stage.mode} stage: only a rate schedule is split")
        # the schedule every shard computed (vllmbench.harness.runner.plan)
        n = request_count(stage.rate, cfg.duration_s, cfg.request_count)
        offsets = send_offsets(stage.rate, n, arrival=cfg.arrival, burstiness=cfg.burstiness, seed=cfg.seed + stage.index)
        requests = sorted((r for p in parts for r in _slice_of(p, p.stages[position], offsets, shards)),
                          key=lambda r: r.index)
        mine = [p.stages[position] for p in parts]
        clients = tuple(replace(c, worker=(p.config.shard_index or 0) * p.config.workers + c.worker)
                        for p, s in zip(parts, mine) for c in s.clients)
        facts = StageFacts(
            index=stage.index, mode="rate", rate=stage.rate, concurrency=None,
            started_at=min(s.started_at for s in mine), ended_at=max(s.ended_at for s in mine),
            wall_s=max(s.wall_s for s in mine), cpu_s_by_process=tuple(c for s in mine for c in s.cpu_s_by_process),
            model=first.model, planned_span_ns=offsets[-1], harness_version=first.harness_version, clients=clients)
        record = to_record(requests, cfg, facts)
        trust = _trust(record.results.trust, parts, position, shards)
        record = record.model_copy(update={"results": record.results.model_copy(update={"trust": trust}),
                                           "labels": {**record.labels, "client_pods": str(shards)}})
        pods = [{"shard": p.config.shard_index, "run_id": p.run_id, "requests": len(s.requests),
                 "trust": s.trust.model_dump(mode="json") if s.trust else None} for p, s in zip(parts, mine)]
        merged.stages.append(MergedStage(facts, offsets, requests, pods, record))
    return merged
