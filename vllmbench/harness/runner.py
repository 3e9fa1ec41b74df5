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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vllmbench.harness.client import ENDPOINTS, body_for
from vllmbench.harness.h1 import Client
from vllmbench.harness.config import RunConfig
from vllmbench.harness.dataset import PromptItem
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.schedule import request_count, send_offsets, split

Progress = Callable[[dict[str, Any]], None]
MAX_WARM_CONNECTIONS = 1024


def warm_connections(n: int, offsets: list[int], cap: int) -> int:
    """Connections to open before a rate stage: one second of this process's requests
    (LLM requests last about that long or more, so the load needs them anyway), at least
    8, at most 1024, the in-flight cap or the stage's requests. More are opened as needed."""
    span_s = max(offsets[-1] / 1e9, 1e-3) if offsets else 1.0
    per_second = n / span_s if n > 1 else 1
    return max(0, min(n, cap or MAX_WARM_CONNECTIONS, MAX_WARM_CONNECTIONS, max(8, int(per_second))))


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

    def finished(self, rec: RequestRecord) -> None:
        self.in_flight -= 1
        self.done += 1
        if rec.error:
            self.errors += 1
        elif rec.token_ns and len(self.ttfts) < 100_000:
            self.ttfts.append((rec.token_ns[0] - rec.sent_ns) / 1e6)


async def _send_slice(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int],
                      indices: list[int], *, t0: int, worker: int, progress: Progress | None) -> list[RequestRecord]:
    """Send this process's share of a stage. Requests are started by plain calls and end in
    callbacks (:mod:`vllmbench.harness.h1`): no task per request and no wake-up per chunk."""
    url = cfg.url.rstrip("/") + ENDPOINTS[cfg.endpoint]
    loop = asyncio.get_running_loop()
    cap = cfg.max_in_flight or 0
    live = _Live()
    records: list[RequestRecord] = []
    now = time.monotonic_ns
    client = Client(url, timeout_s=cfg.timeout_s, api_key=cfg.api_key, t0=t0,
                    max_connections=cap or (stage.concurrency or 0) or 100_000)
    waiting: deque[tuple[RequestRecord, bytes, int, int]] = deque()
    active = 0
    finished = loop.create_future()
    expected = len(indices) if stage.mode == "rate" else -1

    def done(rec: RequestRecord) -> None:
        nonlocal active
        active -= 1
        live.finished(rec)
        if waiting:
            nxt, body, planned, queued = waiting.popleft()
            nxt.cap_wait_ns = now() - queued
            launch(nxt, body, planned)
        if live.done == expected and not finished.done():
            finished.set_result(None)

    def launch(rec: RequestRecord, body: bytes, planned_input: int) -> None:
        nonlocal active
        active += 1
        client.start(rec, body, stream=cfg.stream, planned_input=planned_input, on_done=done)

    def submit(rec: RequestRecord, body: bytes, planned_input: int) -> None:
        live.in_flight += 1
        if cap and active >= cap:
            waiting.append((rec, body, planned_input, now()))
        else:
            launch(rec, body, planned_input)

    def new_record(i: int, scheduled: int) -> RequestRecord:
        return RequestRecord(index=i, scheduled_ns=scheduled, worker=worker,
                             request_id=f"{cfg.run_id}-s{stage.index}-{i}")

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            progress({"done": live.done, "in_flight": live.in_flight, "errors": live.errors,  # type: ignore[misc]
                      "elapsed_s": (now() - t0) / 1e9, "ttfts": live.ttfts[-200:]})

    reporter = loop.create_task(report()) if progress else None
    try:
        if stage.mode == "rate":
            bodies = [body_for(cfg.endpoint, model, items[i], stream=cfg.stream) for i in indices]
            # Connections opened before the clock starts, so that the first second is not spent connecting.
            await client.warm(warm_connections(len(indices), offsets, cap))
        await _sleep_until(t0)
        if stage.mode == "rate":
            for k, i in enumerate(indices):
                target = t0 + offsets[i]
                if target > now():
                    await _sleep_until(target)
                rec = new_record(i, offsets[i])
                records.append(rec)
                submit(rec, bodies[k], items[i].input_tokens)
            if expected:
                await finished
        else:
            deadline = t0 + int((cfg.duration_s or 1e9) * 1e9)
            counter = iter(range(len(items)))

            async def lane() -> None:
                for i in counter:
                    if now() >= deadline:
                        return
                    rec = new_record(i, max(0, now() - t0))
                    records.append(rec)
                    live.in_flight += 1
                    await client.request(rec, body_for(cfg.endpoint, model, items[i], stream=cfg.stream),
                                         stream=cfg.stream, planned_input=items[i].input_tokens)
                    live.finished(rec)

            await asyncio.gather(*(lane() for _ in range(stage.concurrency or 1)))
    finally:
        if reporter:
            reporter.cancel()
        client.close()
        await asyncio.sleep(0)
    return records


async def _sleep_until(target: int) -> None:
    """Sleep until the monotonic time ``target`` (ns). uvloop rounds a timer to the
    millisecond: a sleep that ends early is followed by another (a remainder under half a
    millisecond costs a few zero-length sleeps, which still serve every socket that is
    ready), and one can end up to about a millisecond late. Spinning until the exact nanosecond was measured: it
    bought 0.2 ms of schedule-delay p50 for 20% more CPU per token, and on two shared
    cores that CPU came back as a worse p99."""
    now = time.monotonic_ns
    wait = target - now()
    while wait > 0:
        await asyncio.sleep(wait / 1e9)
        wait = target - now()


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
            t0 = time.monotonic_ns() + 300_000_000  # bodies encoded and connections opened before it
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
        t0 = time.monotonic_ns() + 500_000_000
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
