"""Where the parts of a sharded run meet: the Results service. Shard 0, once it has posted its own
part, waits there for every other part (``<run>-p<I>``: its raw report, its records and all its
per-request samples), merges them (:mod:`vllmbench.harness.merge`) and hands back the merged run
as a :class:`~vllmbench.harness.benchmark.Report`, which is posted like one client's.

So a run's Job completes only when its merged run is stored, as with one pod; a part that never
arrives (its pod failed) fails shard 0 after ``wait_s`` with the parts it still misses.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import aiohttp

from vllmbench.errors import DependencyUnavailable, UserError
from vllmbench.harness.benchmark import Report
from vllmbench.harness.config import RunConfig
from vllmbench.harness.merge import Part, merge, merged_run_id, part_from_raw, part_run_id
from vllmbench.harness.runner import Stage, StageResult

POLL_S = 1.0


def split_chunks(data: bytes) -> list[bytes]:
    """VBS1 chunks sent back to back (``GET /runs/{id}/requests?format=vbs1``), one by one."""
    out, at = [], 0
    while at < len(data):
        (length,) = struct.unpack("<I", data[at + 4:at + 8])
        header = json.loads(data[at + 8:at + 8 + length])
        end = at + 8 + length + sum(c["bytes"] for c in header["columns"])
        out.append(data[at:end])
        at = end
    return out


def _rows(data: bytes) -> list[dict[str, Any]]:
    from vllmbench.samples import decode

    return [row for chunk in split_chunks(data) for row in decode(chunk)[1].rows()]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, Any]:
    async with session.get(url) as resp:
        body = await resp.read()
        if resp.status in (401, 403):
            raise UserError(f"the Results service refused the API token (HTTP {resp.status}) at {url}")
        return resp.status, body, resp.headers


async def fetch_part(session: aiohttp.ClientSession, base: str, part_id: str) -> Part | str:
    """The part once all of it is stored, else why not yet."""
    status, body, _ = await _get(session, f"{base}/runs/{part_id}")
    if status == 404:
        return "not posted yet"
    if status != 200:
        return f"HTTP {status} from the Results service"
    run = json.loads(body)
    if not run.get("raw") or not run.get("standardized"):
        return "its raw report or its records are not stored yet"
    raw = run["raw"][-1]
    data = raw["data"]
    expected = sum(len(s.get("requests") or []) or int(s.get("requests_sent_apart") or 0) for s in data["stages"])
    status, body, headers = await _get(session, f"{base}/runs/{part_id}/requests?format=vbs1")
    if status != 200:
        return f"its per-request samples are not stored yet (HTTP {status})"
    rows = _rows(body)
    if headers.get("X-Samples-Complete") != "true" or len(rows) < expected:
        return f"{len(rows)} of its {expected} requests are stored"
    return part_from_raw(part_id, data, rows, harness_version=(raw.get("harness") or {}).get("version"))


def collect(cfg: RunConfig, results_url: str, *, api_token: str | None, wait_s: float) -> list[Part]:
    """Every part of ``cfg``'s run from the Results service, waiting up to ``wait_s`` for them."""
    base = results_url.rstrip("/")
    run = merged_run_id(cfg.run_id)
    wanted = [part_run_id(run, k) for k in range(cfg.shards)]
    headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}

    async def go() -> list[Part]:
        found: dict[str, Part] = {}
        why: dict[str, str] = {}
        deadline = time.monotonic() + wait_s
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
            while True:
                for part_id in [w for w in wanted if w not in found]:
                    try:
                        got = await fetch_part(session, base, part_id)
                    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                        got = f"the Results service did not answer ({exc.__class__.__name__})"
                    if isinstance(got, str):
                        why[part_id] = got
                    else:
                        found[part_id] = got
                if len(found) == len(wanted):
                    return [found[w] for w in wanted]
                if time.monotonic() > deadline:
                    missing = "; ".join(f"{w}: {why[w]}" for w in wanted if w not in found)
                    raise DependencyUnavailable("results service", f"the parts of run {run} did not all arrive within "
                                                f"{wait_s:.0f} s ({missing}): see the logs of those client pods")
                await asyncio.sleep(POLL_S)

    return asyncio.run(go())


def merged_report(parts: list[Part]) -> Report:
    """The run the parts make together, as one client's report (posted with ``output.post_results``)."""
    merged = merge(parts)
    stages = [StageResult(Stage(s.facts.index, "rate", rate=s.facts.rate), s.requests, s.offsets_ns,
                          s.facts.started_at, s.facts.ended_at, s.facts.wall_s, list(s.facts.cpu_s_by_process),
                          merged.model, list(s.facts.clients), 0, s.pods) for s in merged.stages]
    return Report(merged.config, merged.model, stages=stages, records=merged.records)


def merge_parts(cfg: RunConfig, results_url: str, *, api_token: str | None, wait_s: float) -> Report:
    return merged_report(collect(cfg, results_url, api_token=api_token, wait_s=wait_s))
