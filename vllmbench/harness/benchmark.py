"""A whole run: check the server, prepare prompts, run each stage (a list or a
saturation search), and gather the raw report and the standardized records."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vllmbench.errors import UserError
from vllmbench.harness import dataset
from vllmbench.harness.aggregate import StageFacts, to_record
from vllmbench.harness.client import discover_model, new_session
from vllmbench.harness.config import RunConfig
from vllmbench.harness.lengths import LengthSpec
from vllmbench.harness.merge import merged_run_id, part_run_id
from vllmbench.harness.runner import Progress, Stage, StageResult, new_loop, plan, run_stage
from vllmbench.harness.schedule import shard_of
from vllmbench.harness.sweep import next_rate, point, saturation
from vllmbench.models.results import StandardizedRecord

from vllmbench.harness.raw import RAW_FORMAT


def harness_version() -> str:
    try:
        from importlib.metadata import version

        return version("vllmbench")
    except Exception:  # noqa: BLE001 - a missing dist-info only loses the version string
        return "unknown"


@dataclass
class Report:
    config: RunConfig
    model: str
    stages: list[StageResult] = field(default_factory=list)
    records: list[StandardizedRecord] = field(default_factory=list)
    saturation: dict[str, Any] | None = None

    @property
    def trustworthy(self) -> bool:
        return all(r.results.trust is None or r.results.trust.trustworthy for r in self.records)

    def raw(self) -> dict[str, Any]:
        """The raw report posted as the ``data`` of a RawInput (harness ``vllmbench``)."""
        return {
            "format": RAW_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model,
            "saturation": self.saturation,
            "stages": [{
                "index": s.stage.index, "mode": s.stage.mode, "rate": s.stage.rate, "concurrency": s.stage.concurrency,
                "started_at": s.started_at.isoformat(), "ended_at": s.ended_at.isoformat(), "wall_s": s.wall_s,
                "cpu_s_by_process": s.cpu_s_by_process,
                "planned_span_ns": s.offsets_ns[-1] if s.offsets_ns else 0,
                "clients": [c.to_dict() for c in s.clients],
                "requests": [r.to_dict() for r in s.records],
                **({"pods": s.pods} if s.pods else {}),
            } for s in self.stages],
            "records": [r.model_dump(mode="json") for r in self.records],
        }


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def prompts(cfg: RunConfig, n: int, stage_index: int) -> list[dataset.PromptItem]:
    out_len = LengthSpec.parse(cfg.output_len)
    if cfg.dataset == "synthetic":
        return dataset.synthetic(n, LengthSpec.parse(cfg.input_len), out_len, unique=cfg.unique_prompts,
                                 seed=cfg.seed * 1000 + stage_index)
    path = Path(cfg.dataset_path or "")
    if cfg.dataset == "jsonl":
        items = dataset.from_jsonl(path, out_len, seed=cfg.seed)
    else:
        items = dataset.from_sharegpt(path, out_len if cfg.output_len != "128" else None, seed=cfg.seed)
    return dataset.cycle(items, n)


def check_server(cfg: RunConfig) -> str:
    async def check() -> str:
        async with new_session(connections=2, timeout_s=15, api_key=cfg.api_key) as session:
            return await discover_model(session, cfg.url.rstrip("/"), cfg.model)

    loop = new_loop()
    try:
        return loop.run_until_complete(check())
    finally:
        loop.close()


def stage_record(cfg: RunConfig, result: StageResult, version: str | None) -> StandardizedRecord:
    record = to_record(result.records, cfg, stage_facts(result, version))
    if not cfg.sharded:
        return record
    # One part of a run several client pods send together: its trust is its own, asked of its share.
    trust = record.results.trust
    if trust is not None and trust.requested_rate_rps and result.offsets_ns:
        trust = trust.model_copy(update={"requested_rate_rps":
                                         trust.requested_rate_rps * len(result.records) / len(result.offsets_ns)})
    return record.model_copy(update={
        "results": record.results.model_copy(update={"trust": trust}),
        "labels": {**record.labels, "shard": f"{cfg.shard_index}/{cfg.shards}", "merged_run": merged_run_id(cfg.run_id)}})


def stage_facts(result: StageResult, version: str | None) -> StageFacts:
    return StageFacts(
        index=result.stage.index, mode=result.stage.mode, rate=result.stage.rate, concurrency=result.stage.concurrency,
        started_at=result.started_at, ended_at=result.ended_at, wall_s=result.wall_s,
        cpu_s_by_process=tuple(result.cpu_s_by_process), model=result.model,
        planned_span_ns=result.offsets_ns[-1] if result.offsets_ns else 0, harness_version=version,
        clients=tuple(result.clients),
    )


def run_benchmark(cfg: RunConfig, *, progress: Progress | None = None,
                  on_stage: Any = None) -> Report:
    """Run every stage of ``cfg``. Raises ``UserError`` for bad settings or an unusable server."""
    cfg.validate()  # before a run id is made up: the shards of a run must be given theirs
    if not cfg.run_id:
        cfg = replace(cfg, run_id=new_run_id())
    if cfg.sharded:
        cfg = replace(cfg, run_id=part_run_id(cfg.run_id, cfg.shard_index or 0))
    if cfg.dataset != "synthetic":
        prompts(cfg, 1, 0)  # a missing or malformed file fails before the server is touched
    model = check_server(cfg)
    report = Report(cfg, model)
    version = harness_version()
    if cfg.search:
        rate: float | None = cfg.rates[0]
        points = []
        while rate is not None:
            _run_one(cfg, Stage(len(report.stages), "rate", rate=rate), model, report, version, progress, on_stage)
            points.append(point(report.records[-1]))
            rate = next_rate(points, start=cfg.rates[0], max_stages=cfg.search_max_stages)
        report.saturation = saturation(points)
    else:
        stages = ([Stage(i, "rate", rate=r) for i, r in enumerate(cfg.rates)] if cfg.mode == "rate"
                  else [Stage(i, "concurrency", concurrency=c) for i, c in enumerate(cfg.concurrencies)])
        for stage in stages:
            _run_one(cfg, stage, model, report, version, progress, on_stage)
    return report


def stage_start(cfg: RunConfig, done: list[StageResult]) -> float | None:
    """The Unix time a stage's schedule starts at: ``--start-at`` for the first; for the next ones of
    a sharded run the end of the last schedule plus the stage gap, the same in every shard (one
    client starts a stage as soon as the last one has drained: None)."""
    if cfg.start_at is None:
        return None
    if not done:
        return cfg.start_at
    if not cfg.sharded:
        return None
    return cfg.start_at + sum((r.offsets_ns[-1] if r.offsets_ns else 0) / 1e9 + cfg.stage_gap_s for r in done)


def _run_one(cfg: RunConfig, stage: Stage, model: str, report: Report, version: str,
             progress: Progress | None, on_stage: Any) -> None:
    n, offsets = plan(cfg, stage)
    items = prompts(cfg, n, stage.index)
    start = stage_start(cfg, report.stages)
    if cfg.sharded and stage.index == 0 and start is not None and time.time() > start:
        raise UserError(f"shard {cfg.shard_index}/{cfg.shards} was ready {time.time() - start:.1f} s after --start-at, "
                        "so it could not send its part of the schedule on time: the client pods did not start "
                        "together; give them more time before the start (an evaluation's VLLMBENCH_EVAL_SHARD_LEAD_S)")
    indices = shard_of(n, cfg.shard_index or 0, cfg.shards) if cfg.sharded else None
    result = run_stage(cfg, model, stage, items, offsets, progress=progress, indices=indices, start_at=start)
    report.stages.append(result)
    report.records.append(stage_record(cfg, result, version))
    if on_stage:
        on_stage(report.records[-1])
