"""Sending one process's share of a stage: the send schedule, the in-flight cap,
concurrency lanes, and the counters the live progress reads.

Requests are started by plain calls and end in callbacks (:mod:`vllmbench.harness.h1`):
no task per request and no wake-up per chunk. In rate mode a send waits on a kernel
timer (:mod:`vllmbench.harness.timerfd`) set to its planned time, so it leaves tens of
microseconds after it is due, never before, with no spinning; without a timerfd it
waits on the loop's millisecond timers as before.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from vllmbench.harness import timerfd
from vllmbench.harness.client import ENDPOINTS, body_for
from vllmbench.harness.config import RunConfig
from vllmbench.harness.dataset import PromptItem
from vllmbench.harness.h1 import Client
from vllmbench.harness.lateness import LatenessProbe
from vllmbench.harness.records import RequestRecord
from vllmbench.harness.trust import ClientFacts

MAX_WARM_CONNECTIONS = 1024
_now = time.monotonic_ns


def warm_connections(n: int, offsets: list[int], cap: int) -> int:
    """Connections to open before a rate stage: one second of this process's requests
    (LLM requests last about that long or more, so the load needs them anyway), at least
    8, at most 1024, the in-flight cap or the stage's requests. More are opened as needed."""
    span_s = max(offsets[-1] / 1e9, 1e-3) if offsets else 1.0
    per_second = n / span_s if n > 1 else 1
    return max(0, min(n, cap or MAX_WARM_CONNECTIONS, MAX_WARM_CONNECTIONS, max(8, int(per_second))))


class Live:
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

    def snapshot(self) -> dict[str, Any]:
        return {"done": self.done, "in_flight": self.in_flight, "errors": self.errors, "ttfts": self.ttfts[-200:]}


def merge_snapshots(snapshots: list[dict[str, Any]], elapsed_s: float) -> dict[str, Any]:
    """One progress line for several processes: their counts added, their recent TTFTs pooled."""
    return {"done": sum(s["done"] for s in snapshots), "in_flight": sum(s["in_flight"] for s in snapshots),
            "errors": sum(s["errors"] for s in snapshots), "elapsed_s": elapsed_s,
            "ttfts": [t for s in snapshots for t in s["ttfts"][-max(1, 200 // max(1, len(snapshots))):]]}


async def send_slice(cfg: RunConfig, model: str, mode: str, concurrency: int | None, run_tag: str,
                     items: list[PromptItem], offsets: list[int], indices: list[int], *, t0: int, worker: int,
                     live: Live) -> tuple[list[RequestRecord], ClientFacts]:
    """Send this process's share of a stage, starting at the monotonic time ``t0``."""
    url = cfg.url.rstrip("/") + ENDPOINTS[cfg.endpoint]
    loop = asyncio.get_running_loop()
    cap = cfg.max_in_flight or 0
    records: list[RequestRecord] = []
    client = Client(url, timeout_s=cfg.timeout_s, api_key=cfg.api_key, t0=t0,
                    max_connections=cap or (concurrency or 0) or 100_000)
    waiting: deque[tuple[RequestRecord, bytes, int, int]] = deque()
    active = 0
    finished = loop.create_future()
    expected = len(indices) if mode == "rate" else -1
    probe = LatenessProbe(loop, worker=worker)
    facts: ClientFacts | None = None

    def done(rec: RequestRecord) -> None:
        nonlocal active
        active -= 1
        live.finished(rec)
        if waiting:
            nxt, body, planned, queued = waiting.popleft()
            nxt.cap_wait_ns = _now() - queued
            launch(nxt, body, planned)
        if live.done == expected and not finished.done():
            finished.set_result(None)

    def launch(rec: RequestRecord, body: bytes, planned_input: int) -> None:
        nonlocal active
        active += 1
        client.start(rec, body, stream=cfg.stream, planned_input=planned_input, on_done=done)

    def submit(i: int, body: bytes) -> None:
        rec = RequestRecord(index=i, scheduled_ns=offsets[i], worker=worker, request_id=f"{run_tag}-{i}")
        records.append(rec)
        live.in_flight += 1
        if cap and active >= cap:
            waiting.append((rec, body, items[i].input_tokens, _now()))
        else:
            launch(rec, body, items[i].input_tokens)

    try:
        if mode == "rate":
            bodies = [body_for(cfg.endpoint, model, items[i], stream=cfg.stream) for i in indices]
            # Connections opened before the clock starts, so that the first second is not spent connecting.
            await client.warm(warm_connections(len(indices), offsets, cap))
        probe.start(t0)
        await sleep_until(t0)
        if mode == "rate":
            if timerfd.available():
                await _timed_sends(loop, indices, offsets, bodies, t0, submit)
            else:
                for k, i in enumerate(indices):
                    if t0 + offsets[i] > _now():
                        await sleep_until(t0 + offsets[i])
                    submit(i, bodies[k])
            if expected:
                await finished
        else:
            deadline = t0 + int((cfg.duration_s or 1e9) * 1e9)
            counter = iter(range(len(items)))

            async def lane() -> None:
                for i in counter:
                    if _now() >= deadline:
                        return
                    rec = RequestRecord(index=i, scheduled_ns=max(0, _now() - t0), worker=worker,
                                        request_id=f"{run_tag}-{i}")
                    records.append(rec)
                    live.in_flight += 1
                    await client.request(rec, body_for(cfg.endpoint, model, items[i], stream=cfg.stream),
                                         stream=cfg.stream, planned_input=items[i].input_tokens)
                    live.finished(rec)

            await asyncio.gather(*(lane() for _ in range(concurrency or 1)))
        facts = probe.stop(chunked_tokens=client.chunked_tokens, coalesced_tokens=client.coalesced_tokens)
    finally:
        if facts is None:
            probe.stop()  # its timer closed; the stage failed and says why
        client.close()
        await asyncio.sleep(0)
    return records, facts


async def _timed_sends(loop: asyncio.AbstractEventLoop, indices: list[int], offsets: list[int], bodies: list[bytes],
                       t0: int, submit: Any) -> None:
    """Every send started by a timerfd set to its planned time; sends that are due together leave together."""
    sent = loop.create_future()
    k, n = 0, len(indices)

    def due(_count: int) -> None:
        nonlocal k
        try:
            now = _now()
            while k < n and t0 + offsets[indices[k]] <= now:
                submit(indices[k], bodies[k])
                k += 1
            if k < n:
                timer.at(t0 + offsets[indices[k]])
            elif not sent.done():
                sent.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the await below, never lost in a callback
            if not sent.done():
                sent.set_exception(exc)

    timer = timerfd.Timer(loop, due)
    try:
        if n:
            timer.at(t0 + offsets[indices[0]])
            await sent
    finally:
        timer.close()


async def sleep_until(target: int) -> None:
    """Sleep until the monotonic time ``target`` (ns) on the loop's timers. uvloop rounds a
    timer to the millisecond: a sleep that ends early is followed by another (a remainder
    under half a millisecond costs a few zero-length sleeps), and one can end up to about
    a millisecond late. Used before a stage starts, and for sends where there is no timerfd."""
    wait = target - _now()
    while wait > 0:
        await asyncio.sleep(wait / 1e9)
        wait = target - _now()
