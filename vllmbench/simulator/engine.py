"""The simulated engine: admission up to ``max_num_seqs``, a waiting queue beyond it,
and one timer per sequence that sends a token every ITL after a TTFT.

Every token is written the moment its timer fires and the write time is recorded, so
``/_sim/requests`` is the truth a client's measurements are compared with.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from typing import Any

from vllmbench.simulator.config import SeqRecord, SimConfig
from vllmbench.simulator.http import HttpProtocol, frame
from vllmbench.simulator.metrics import ModelMetrics

DONE = frame(b"data: [DONE]\n\n")
MALFORMED = frame(b'data: {"choices": [{"text": \n\n')


class Seq:
    """One request being generated."""

    __slots__ = (
        "record", "proto", "chat", "stream", "include_usage", "chunk", "last_chunk",
        "deadline", "disconnect_at", "malformed_at", "created", "role_chunk",
    )

    def __init__(self, record: SeqRecord, proto: HttpProtocol, *, chat: bool, stream: bool, include_usage: bool) -> None:
        self.record = record
        self.proto = proto
        self.chat = chat
        self.stream = stream
        self.include_usage = include_usage
        self.created = int(time.time())
        self.deadline = 0.0
        self.disconnect_at = -1
        self.malformed_at = -1
        self.chunk = self.last_chunk = self.role_chunk = b""


class Engine:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.running = 0
        self.waiting: deque[Seq] = deque()
        self.records: deque[SeqRecord] = deque(maxlen=config.record_limit)
        self.metrics = {name: ModelMetrics() for name in config.models}
        self.kv_tokens = 0
        self.counter = 0
        self.token_json = json.dumps(config.token_text)

    # admission
    def submit(self, seq: Seq) -> None:
        self.records.append(seq.record)
        self.metrics[seq.record.model].prompt_tokens += seq.record.prompt_tokens
        if seq.stream:
            self._prepare_chunks(seq)
            seq.proto.start_stream()
        if self.running < self.config.max_num_seqs:
            self._start(seq)
        else:
            self.waiting.append(seq)

    def _start(self, seq: Seq) -> None:
        loop = asyncio.get_running_loop()
        self.running += 1
        self.kv_tokens += seq.record.prompt_tokens + seq.record.max_tokens
        seq.record.scheduled_ns = time.monotonic_ns()
        n = seq.record.max_tokens
        if seq.stream:
            if self.config.disconnect_rate and self.rng.random() < self.config.disconnect_rate:
                seq.disconnect_at = n // 2
            if self.config.malformed_rate and self.rng.random() < self.config.malformed_rate:
                seq.malformed_at = n // 2
            seq.deadline = loop.time() + self._delay(self.config.ttft_ms)
            loop.call_at(seq.deadline, self._tick, seq)
        else:
            total = self._delay(self.config.ttft_ms) + sum(self._delay(self.config.itl_ms) for _ in range(n - 1))
            loop.call_at(loop.time() + total, self._whole, seq)

    def _delay(self, ms: float) -> float:
        if self.config.jitter_ms:
            ms = max(0.0, self.rng.gauss(ms, self.config.jitter_ms))
        return ms / 1000.0

    # token emission
    def _tick(self, seq: Seq) -> None:
        proto, record = seq.proto, seq.record
        if proto.closed:
            self._finish(seq, "client_disconnected")
            return
        n = len(record.token_ns)
        if n == seq.disconnect_at:
            proto.abort()
            self._finish(seq, "injected_disconnect")
            return
        last = n + 1 >= record.max_tokens
        if n == 0 and seq.chat:
            proto.send_chunk(seq.role_chunk)
        if n == seq.malformed_at:
            proto.send_chunk(MALFORMED)
        proto.send_chunk(seq.last_chunk if last else seq.chunk)
        now = time.monotonic_ns()
        metrics = self.metrics[record.model]
        if n == 0:
            metrics.ttft.observe((now - record.arrival_ns) / 1e9)
        else:
            metrics.itl.observe((now - record.token_ns[-1]) / 1e9)
        record.token_ns.append(now)
        if not last:
            seq.deadline += self._delay(self.config.itl_ms)
            asyncio.get_running_loop().call_at(seq.deadline, self._tick, seq)
            return
        if seq.include_usage:
            proto.send_chunk(frame(b"data: " + self._usage_event(seq) + b"\n\n"))
        proto.send_chunk(DONE)
        proto.end_stream()
        self._finish(seq, "ok")

    def _whole(self, seq: Seq) -> None:
        if seq.proto.closed:
            self._finish(seq, "client_disconnected")
            return
        record = seq.record
        now = time.monotonic_ns()
        record.token_ns = [now] * record.max_tokens
        text = self.config.token_text * record.max_tokens
        choice: dict[str, Any]
        if seq.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None}
        body = {
            "id": record.id, "object": "chat.completion" if seq.chat else "text_completion",
            "created": seq.created, "model": record.model, "choices": [choice], "usage": self._usage(record),
        }
        self.metrics[record.model].ttft.observe((now - record.arrival_ns) / 1e9)
        seq.proto.respond(200, json.dumps(body, separators=(",", ":")).encode())
        self._finish(seq, "ok")

    def _finish(self, seq: Seq, outcome: str) -> None:
        record = seq.record
        record.end_ns = time.monotonic_ns()
        record.outcome = outcome
        self.running -= 1
        self.kv_tokens -= record.prompt_tokens + record.max_tokens
        metrics = self.metrics[record.model]
        metrics.generation_tokens += len(record.token_ns)
        if outcome == "ok":
            metrics.success += 1
            metrics.e2e.observe((record.end_ns - record.arrival_ns) / 1e9)
            if len(record.token_ns) > 1:
                metrics.tpot.observe((record.token_ns[-1] - record.token_ns[0]) / 1e9 / (len(record.token_ns) - 1))
        while self.waiting and self.running < self.config.max_num_seqs:
            nxt = self.waiting.popleft()
            if nxt.proto.closed:
                nxt.record.outcome = "client_disconnected"
                nxt.record.end_ns = time.monotonic_ns()
                continue
            self._start(nxt)

    # bytes prepared once per request
    def _prepare_chunks(self, seq: Seq) -> None:
        r = seq.record
        head = '{"id":"%s","object":"%s","created":%d,"model":%s,"choices":[{"index":0,' % (
            r.id, "chat.completion.chunk" if seq.chat else "text_completion", seq.created, json.dumps(r.model),
        )
        if seq.chat:
            body = '"delta":{"content":%s},"logprobs":null,"finish_reason":%s}]}'
            seq.role_chunk = frame(('data: ' + head + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n').encode())
        else:
            body = '"text":%s,"logprobs":null,"finish_reason":%s,"stop_reason":null}]}'
        seq.chunk = frame(("data: " + head + body % (self.token_json, "null") + "\n\n").encode())
        seq.last_chunk = frame(("data: " + head + body % (self.token_json, '"length"') + "\n\n").encode())

    def _usage(self, record: SeqRecord) -> dict[str, int]:
        out = len(record.token_ns)
        return {"prompt_tokens": record.prompt_tokens, "total_tokens": record.prompt_tokens + out, "completion_tokens": out}

    def _usage_event(self, seq: Seq) -> bytes:
        r = seq.record
        body = {
            "id": r.id, "object": "chat.completion.chunk" if seq.chat else "text_completion",
            "created": seq.created, "model": r.model, "choices": [], "usage": self._usage(r),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def kv_usage(self) -> float:
        capacity = self.config.max_num_seqs * self.config.max_model_len
        return min(1.0, max(0.0, self.kv_tokens / capacity))
