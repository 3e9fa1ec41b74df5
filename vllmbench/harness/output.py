"""Where a report goes: files under ``--out`` and the Results service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from vllmbench.errors import DependencyUnavailable, UserError
from vllmbench.harness.benchmark import Report
from vllmbench.models.results import Harness, RawInput


def write_files(report: Report, out_dir: Path) -> list[Path]:
    """requests.jsonl (one line per request, every stage), records.json, raw.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = out_dir / "requests.jsonl"
    with requests.open("w", encoding="utf-8") as f:
        for stage in report.stages:
            for rec in stage.records:
                f.write(json.dumps({"stage": stage.stage.index, **rec.to_dict()}, separators=(",", ":")) + "\n")
    records = out_dir / "records.json"
    records.write_text(json.dumps([r.model_dump(mode="json") for r in report.records], indent=2), encoding="utf-8")
    raw = out_dir / "raw.json"
    raw.write_text(json.dumps(raw_input(report).model_dump(mode="json")), encoding="utf-8")
    return [requests, records, raw]


def raw_input(report: Report) -> RawInput:
    cfg = report.config
    first = report.records[0] if report.records else None
    return RawInput(
        run_id=cfg.run_id, project=cfg.project, model=report.model,
        harness=Harness(name="vllmbench", version=first.scenario.harness.version if first else None),
        tags=list(cfg.tags),
        started_at=report.stages[0].started_at if report.stages else None,
        ended_at=report.stages[-1].ended_at if report.stages else None,
        data=report.raw(),
    )


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> dict[str, Any]:
    async with session.post(url, data=json.dumps(body, default=str).encode()) as resp:
        text = await resp.text()
        if resp.status in (401, 403):
            raise UserError(f"the Results service refused the API token (HTTP {resp.status}) at {url}")
        if resp.status >= 500:
            raise DependencyUnavailable("results service", f"HTTP {resp.status} from {url}")
        if resp.status >= 400:
            raise UserError(f"the Results service rejected the upload to {url} (HTTP {resp.status}): {text[:300]}")
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {"body": text[:300]}


def post_results(report: Report, results_url: str, *, api_token: str | None, timeout_s: float = 60.0) -> dict[str, Any]:
    """POST the raw report to ``/raw_input`` and the records to ``/standardized_output``."""
    base = results_url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    if api_token:
        headers["Authorization"] = f"Bearer {api_token}"

    async def go() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            try:
                raw = await _post(session, f"{base}/raw_input", raw_input(report).model_dump(mode="json"))
                std = await _post(session, f"{base}/standardized_output",
                                  [r.model_dump(mode="json") for r in report.records])
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise DependencyUnavailable("results service", f"cannot reach {base}: {exc.__class__.__name__}") from exc
        return {"raw_input": raw, "standardized_output": std}

    return asyncio.run(go())
