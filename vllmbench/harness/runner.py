"""Running one load stage: in this process, or in ``--workers N`` processes that each send
a round-robin slice of one precomputed schedule and report their live counts to this one.
The sending itself is :mod:`vllmbench.harness.sender`.
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
from multiprocessing.connection import wait
from typing import Any

from vllmbench.harness.config import RunConfig
from vllmbench.harness.dataset import PromptItem
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.schedule import request_count, send_offsets, split
from vllmbench.harness.sender import Live, merge_snapshots, send_slice
from vllmbench.harness.trust import ClientFacts

Progress = Callable[[dict[str, Any]], None]
PROGRESS_EVERY_S = 0.5
PREPARE_S = 1.0  # before a shared start: bodies encoded, connections opened
WORKERS_START_S = 3.0


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
    clients: list[ClientFacts] = field(default_factory=list)
    t0_ns: int = 0  # the monotonic time record times are relative to
    pods: list[dict[str, Any]] = field(default_factory=list)  # a merged stage: each client pod's run and trust


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


async def _with_progress(main: Any, live: Live, report: Callable[[dict[str, Any]], None] | None) -> Any:
    """Run ``main`` while ``report(live counts)`` is called every half second."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            report(live.snapshot())  # type: ignore[misc]

    reporter = asyncio.get_running_loop().create_task(loop()) if report else None
    try:
        return await main
    finally:
        if reporter:
            reporter.cancel()


def _slice(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int], indices: list[int],
           *, t0: int, worker: int, report: Callable[[dict[str, Any]], None] | None) -> tuple[list[RequestRecord], ClientFacts, float]:
    """This process's share of the stage on a fresh loop with the collector off: (records, its facts, CPU s)."""
    loop = new_loop()
    live = Live()
    try:
        _quiet_gc()
        cpu = _cpu()
        records, facts = loop.run_until_complete(_with_progress(
            send_slice(cfg, model, stage.mode, stage.concurrency, f"{cfg.run_id}-s{stage.index}", items, offsets,
                       indices, t0=t0, worker=worker, live=live), live, report))
        return records, facts, _cpu() - cpu
    finally:
        _restore_gc()
        loop.close()


def run_stage(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int], *,
              progress: Progress | None = None, indices: list[int] | None = None,
              start_at: float | None = None) -> StageResult:
    """Send ``indices`` of the stage (default: all of it). ``start_at`` (a Unix time) is the
    schedule's zero, shared by client pods that send one schedule together; without it the
    stage starts as soon as this process is ready."""
    mine = list(range(len(items))) if indices is None else indices
    if start_at is not None:  # load workers take a few seconds more to start
        _wait_until(start_at - PREPARE_S - (WORKERS_START_S if cfg.workers > 1 and stage.mode == "rate" else 0.0))
    started = dt.datetime.now(dt.timezone.utc)
    wall = time.monotonic()
    if cfg.workers <= 1 or stage.mode != "rate":
        t0 = time.monotonic_ns() + 300_000_000 if start_at is None else monotonic_of(start_at)
        report = (lambda snap: progress({**snap, "elapsed_s": (time.monotonic_ns() - t0) / 1e9})) if progress else None
        records, facts, cpu = _slice(cfg, model, stage, items, offsets, mine, t0=t0, worker=0, report=report)
        cpu_list, clients = [cpu], [facts]
    else:
        records, cpu_list, clients, t0 = _run_workers(cfg, model, stage, items, offsets, mine, progress, start_at)
    return StageResult(stage, records, offsets, started, dt.datetime.now(dt.timezone.utc),
                       time.monotonic() - wall, cpu_list, model, clients, t0)


def monotonic_of(unix_s: float) -> int:
    """The monotonic time (ns) of a wall-clock time: the schedules of client pods meet on the wall
    clock (NTP-synced across machines), while records are timed on the monotonic clock."""
    return time.monotonic_ns() + round((unix_s - time.time()) * 1e9)


def _wait_until(unix_s: float) -> None:
    """Sleep until a wall-clock time, so that connections are opened just before a shared start
    (a server closes idle keep-alive connections after a few seconds: vLLM's uvicorn after 5)."""
    while (left := unix_s - time.time()) > 0:
        time.sleep(min(left, 1.0))


def _worker_main(conn: Any, cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int],
                 indices: list[int], worker: int) -> None:
    conn.send("ready")
    t0 = conn.recv()
    records, facts, cpu = _slice(cfg, model, stage, items, offsets, indices, t0=t0, worker=worker,
                                 report=lambda snap: conn.send(("progress", snap)))
    conn.send(("done", records, cpu, facts))
    conn.close()


def _run_workers(cfg: RunConfig, model: str, stage: Stage, items: list[PromptItem], offsets: list[int],
                 mine: list[int], progress: Progress | None,
                 start_at: float | None) -> tuple[list[RequestRecord], list[float], list[ClientFacts], int]:
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for worker, indices in enumerate(split(mine, cfg.workers)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, cfg, model, stage, items, offsets, indices, worker), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    try:
        for pipe in pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a load worker did not start within 60 s")
        t0 = time.monotonic_ns() + 500_000_000 if start_at is None else monotonic_of(start_at)
        for pipe in pipes:
            pipe.send(t0)
        results: dict[int, tuple[list[RequestRecord], float, ClientFacts]] = {}
        snapshots: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + max(0, t0 - time.monotonic_ns()) / 1e9 + (offsets[-1] / 1e9) + cfg.timeout_s + 60
        while len(results) < len(pipes):
            if time.monotonic() > deadline:
                raise RuntimeError("a load worker did not finish in time")
            for pipe in wait([p for w, p in enumerate(pipes) if w not in results], timeout=1.0):
                worker = pipes.index(pipe)  # type: ignore[arg-type]
                try:
                    message = pipe.recv()  # type: ignore[union-attr]
                except EOFError:
                    raise RuntimeError(f"load worker {worker} exited without its results") from None
                if message[0] == "progress":
                    snapshots[worker] = message[1]
                else:  # its last counts stay in the line until the stage ends
                    results[worker] = message[1], message[2], message[3]
                    snapshots[worker] = {"done": len(message[1]), "in_flight": 0, "ttfts": [],
                                         "errors": sum(1 for r in message[1] if r.error)}
                if progress:
                    progress(merge_snapshots([snapshots[w] for w in sorted(snapshots)], (time.monotonic_ns() - t0) / 1e9))
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    records = sorted((r for recs, _, _ in results.values() for r in recs), key=lambda r: r.index)
    return records, [results[w][1] for w in sorted(results)], [results[w][2] for w in sorted(results)], t0
