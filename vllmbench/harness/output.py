"""Where a report goes: files under ``--out`` and the Results service.

The raw report carries every request when it is small; a larger one (past
``INLINE_LIMIT`` bytes of JSON, about 3,000 requests of 128 tokens) goes without its
requests, which follow as per-request samples in the VBS1 layout (docs/results.md),
one chunk per POST to ``/raw_input/{id}/requests``, so no body nears the service's
size limit however long the run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from vllmbench.errors import DependencyUnavailable, UserError
from vllmbench.harness.benchmark import Report
from vllmbench.models.results import Harness, RawInput

INLINE_LIMIT = 4 << 20


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


def raw_input(report: Report, *, with_requests: bool = True) -> RawInput:
    cfg = report.config
    data = report.raw()
    if not with_requests:
        for stage in data["stages"]:
            stage["requests_sent_apart"] = len(stage["requests"])
            stage["requests"] = []
    first = report.records[0] if report.records else None
    return RawInput(
        run_id=cfg.run_id, project=cfg.project, model=report.model,
        harness=Harness(name="vllmbench", version=first.scenario.harness.version if first else None),
        tags=list(cfg.tags),
        started_at=report.stages[0].started_at if report.stages else None,
        ended_at=report.stages[-1].ended_at if report.stages else None,
        data=data,
    )


def request_samples(report: Report) -> Any:
    """Every request of the report as per-request samples (``vllmbench.samples.Samples``)."""
    from vllmbench.harness.aggregate import StageFacts, measured
    from vllmbench.samples import Samples
    from vllmbench.standardize.samples import ours_row

    rows = []
    for result in report.stages:
        facts = StageFacts(index=result.stage.index, mode=result.stage.mode, rate=result.stage.rate,
                           concurrency=result.stage.concurrency, started_at=result.started_at,
                           ended_at=result.ended_at, wall_s=result.wall_s, cpu_s_by_process=(), model=result.model,
                           planned_span_ns=result.offsets_ns[-1] if result.offsets_ns else 0)
        window = {id(r) for r in measured(result.records, report.config, facts)}
        rows += [ours_row(r.to_dict(), result.stage.index, measured=id(r) in window) for r in result.records]
    return Samples.from_rows(rows)


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> dict[str, Any]:
    data, headers = (body, {"Content-Type": "application/octet-stream"}) if isinstance(body, bytes) else \
        (json.dumps(body, default=str).encode(), {})
    async with session.post(url, data=data, headers=headers) as resp:
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
    """POST the raw report to ``/raw_input``, its requests (when sent apart) to
    ``/raw_input/{id}/requests``, and the records to ``/standardized_output``."""
    base = results_url.rstrip("/")
    raw = raw_input(report).model_dump(mode="json")
    chunks: list[bytes] = []
    if len(json.dumps(raw, default=str)) > INLINE_LIMIT:
        from vllmbench.samples import encode_chunks

        raw = raw_input(report, with_requests=False).model_dump(mode="json")
        chunks = encode_chunks(request_samples(report))
    headers = {"Content-Type": "application/json"}
    if api_token:
        headers["Authorization"] = f"Bearer {api_token}"

    async def go() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            try:
                posted = await _post(session, f"{base}/raw_input", raw)
                for chunk in chunks:
                    await _post(session, f"{base}/raw_input/{posted['id']}/requests", chunk)
                std = await _post(session, f"{base}/standardized_output",
                                  [r.model_dump(mode="json") for r in report.records])
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise DependencyUnavailable("results service", f"cannot reach {base}: {exc.__class__.__name__}") from exc
        return {"raw_input": posted, "samples_chunks": len(chunks), "standardized_output": std}

    return asyncio.run(go())
