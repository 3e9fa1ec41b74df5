"""Running one load stage: the send loop, the in-flight cap, concurrency lanes, and
``--workers N`` processes that each send a round-robin slice of one precomputed schedule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vllmbench.harness.client import ENDPOINTS, body_for, new_session, send
from vllmbench.harness.config import RunConfig
from vllmbench.harness.dataset import PromptItem
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.schedule import request_count, send_offsets, split

Progress = Callable[[dict[str, Any]], None]


@dataclass
class Stage:
    index: int
    mode: str
    rate: float | None = None
    concurrency: int | None = None


@dataclass
class StageResult:
    stage: Stage
    records: list[RequestRecord]
    offsets_ns: list[int]
    started_at: dt.datetime
    ended_at: dt.datetime
    wall_s: float
    cpu_s_by_process: list[float] = field(default_factory=list)
    model: str = ""


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Live:
    """Counters the progress display reads; updated with a few integer operations per request."""

    def __init__(self) -> None:
        self.done = self.in_flight = self.errors = 0
        self.ttfts: list[float] = []


async def _send_slice(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int],
                      indices: list[int], *, t0: int, worker: int, progress: Progress | None) -> list[RequestRecord]:
    url = cfg.url.rstrip("/") + ENDPOINTS[cfg.endpoint]
    cap = asyncio.Semaphore(cfg.max_in_flight) if cfg.max_in_flight else None
    connections = cfg.max_in_flight or (stage.concurrency or 0) or 10_000
    live = _Live()
    records: list[RequestRecord] = []
    now = time.monotonic_ns

    async def one(rec: RequestRecord, body: bytes, planned_input: int) -> None:
        live.in_flight += 1
        if cap is not None:
            waited = now()
            await cap.acquire()
            rec.cap_wait_ns = now() - waited
        try:
            await send(session, url, body, rec, t0=t0, stream=cfg.stream, planned_input=planned_input)
        finally:
            if cap is not None:
                cap.release()
            live.in_flight -= 1
            live.done += 1
            if rec.error:
                live.errors += 1
            elif rec.token_ns and len(live.ttfts) < 100_000:
                live.ttfts.append((rec.token_ns[0] - rec.sent_ns) / 1e6)

    def new_record(i: int, scheduled: int) -> RequestRecord:
        return RequestRecord(index=i, scheduled_ns=scheduled, worker=worker,
                             request_id=f"{cfg.run_id}-s{stage.index}-{i}")

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            progress({"done": live.done, "in_flight": live.in_flight, "errors": live.errors,
                      "elapsed_s": (now() - t0) / 1e9, "ttfts": live.ttfts[-200:]})  # type: ignore[misc]

    async with new_session(connections=connections, timeout_s=cfg.timeout_s, api_key=cfg.api_key) as session:
        reporter = asyncio.get_running_loop().create_task(report()) if progress else None
        tasks: set[asyncio.Task[None]] = set()
        bodies = [body_for(cfg.endpoint, model, items[i], stream=cfg.stream) for i in indices] if stage.mode == "rate" else []
        delay = t0 - now()
        while delay > 0:  # uvloop's millisecond timers can wake a little early
            await asyncio.sleep(delay / 1e9)
            delay = t0 - now()
        if stage.mode == "rate":
            loop = asyncio.get_running_loop()
            for k, i in enumerate(indices):
                target = t0 + offsets[i]
                wait = target - now()
                while wait > 0:
                    await asyncio.sleep(wait / 1e9)
                    wait = target - now()
                rec = new_record(i, offsets[i])
                records.append(rec)
                task = loop.create_task(one(rec, bodies[k], items[i].input_tokens))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        else:
            deadline = t0 + int((cfg.duration_s or 1e9) * 1e9)
            limit = len(items)
            counter = iter(range(limit))

            async def lane() -> None:
                for i in counter:
                    if now() >= deadline:
                        return
                    rec = new_record(i, max(0, now() - t0))
                    records.append(rec)
                    await one(rec, body_for(cfg.endpoint, model, items[i], stream=cfg.stream), items[i].input_tokens)

            tasks = {asyncio.get_running_loop().create_task(lane()) for _ in range(stage.concurrency or 1)}
        if tasks:
            await asyncio.gather(*tasks)
        if reporter:
            reporter.cancel()
    return records


def _worker_main(conn: Any, cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int],
                 indices: list[int], worker: int) -> None:
    loop = new_loop()
    asyncio.set_event_loop(loop)
    _quiet_gc()
    conn.send("ready")
    t0 = conn.recv()
    cpu = _cpu()
    records = loop.run_until_complete(_send_slice(cfg, model, stage, items, offsets, indices, t0=t0, worker=worker, progress=None))
    conn.send((records, _cpu() - cpu))
    conn.close()
    loop.close()


def plan(cfg: RunConfig, stage: Stage) -> tuple[int, list[int]]:
    """(requests to prepare, send offsets) of a stage."""
    if stage.mode == "rate":
        assert stage.rate is not None
        n = request_count(stage.rate, cfg.duration_s, cfg.request_count)
        return n, send_offsets(stage.rate, n, arrival=cfg.arrival, burstiness=cfg.burstiness, seed=cfg.seed + stage.index)
    if cfg.request_count is not None:
        return cfg.request_count, []
    # Enough prompts for a fast server; lanes stop at the duration.
    return min(1_000_000, int((stage.concurrency or 1) * (cfg.duration_s or 1) * 200) + 1), []


def _quiet_gc() -> None:
    """A full collection over thousands of live records stalls the loop for milliseconds:
    a stage runs with the cyclic collector off (reference counting still frees nearly all)."""
    gc.collect()
    gc.freeze()
    gc.disable()


def _restore_gc() -> None:
    gc.enable()
    gc.unfreeze()


def run_stage(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int], *,
              progress: Progress | None = None) -> StageResult:
    started = dt.datetime.now(dt.timezone.utc)
    wall = time.monotonic()
    if cfg.workers <= 1 or stage.mode != "rate":
        loop = new_loop()
        try:
            cpu = _cpu()
            _quiet_gc()
            t0 = time.monotonic_ns() + 50_000_000
            records = loop.run_until_complete(
                _send_slice(cfg, model, stage, items, offsets, list(range(len(items))), t0=t0, worker=0, progress=progress))
            cpu_list = [_cpu() - cpu]
        finally:
            _restore_gc()
            loop.close()
    else:
        records, cpu_list = _run_workers(cfg, model, stage, items, offsets)
    return StageResult(stage, records, offsets, started, dt.datetime.now(dt.timezone.utc),
                       time.monotonic() - wall, cpu_list, model)


def _run_workers(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem],
                 offsets: list[int]) -> tuple[list[RequestRecord], list[float]]:
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for worker, indices in enumerate(split(offsets, cfg.workers)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, cfg, model, stage, items, offsets, indices, worker), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    try:
        for pipe in pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a load worker did not start within 60 s")
        t0 = time.monotonic_ns() + 100_000_000
        for pipe in pipes:
            pipe.send(t0)
        records: list[RequestRecord] = []
        cpu: list[float] = []
        limit = (offsets[-1] / 1e9) + cfg.timeout_s + 60
        for pipe in pipes:
            if not pipe.poll(limit):
                raise RuntimeError("a load worker did not finish in time")
            recs, seconds = pipe.recv()
            records += recs
            cpu.append(seconds)
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    records.sort(key=lambda r: r.index)
    return records, cpu
