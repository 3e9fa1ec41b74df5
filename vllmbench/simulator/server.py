"""The simulator's routes (vLLM's OpenAI-compatible API) and how to serve them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from vllmbench.simulator.config import SeqRecord, SimConfig
from vllmbench.simulator.engine import Engine, Seq
from vllmbench.simulator.http import HttpProtocol, Request
from vllmbench.simulator.metrics import render

VERSION = "0.1.0-sim"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(proto: HttpProtocol, status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> None:
    proto.respond(status, _dumps({"object": "error", "message": message, "type": kind, "param": param, "code": status}))


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        parts = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return " ".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return " ".join(" ".join(map(str, p)) if isinstance(p, list) else str(p) for p in prompt)
    if not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string or a list")
    return prompt


class Simulator:
    """Routes requests; owns the engine."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self.started = int(time.time())

    def protocol(self) -> HttpProtocol:
        return HttpProtocol(self.handle)

    def handle(self, req: Request, proto: HttpProtocol) -> None:
        route = (req.method, req.path)
        try:
            if route == ("POST", "/v1/completions"):
                self._generate(req, proto, chat=False)
            elif route == ("POST", "/v1/chat/completions"):
                self._generate(req, proto, chat=True)
            elif route in {("GET", "/health"), ("GET", "/ping")}:
                proto.respond(200, b"", "text/plain")
            elif route == ("GET", "/v1/models"):
                proto.respond(200, _dumps(self._models()))
            elif route == ("POST", "/tokenize"):
                self._tokenize(req, proto)
            elif route == ("GET", "/metrics"):
                body = render(self.engine.metrics, running=self.engine.running,
                              waiting=len(self.engine.waiting), kv_usage=self.engine.kv_usage())
                proto.respond(200, body.encode(), "text/plain; version=0.0.4")
            elif route == ("GET", "/version"):
                proto.respond(200, _dumps({"version": VERSION}))
            elif route == ("GET", "/_sim/requests"):
                since = int(req.query.get("since_ns", ["0"])[0])
                rows = [r.to_dict() for r in list(self.engine.records) if r.arrival_ns >= since]
                proto.respond(200, _dumps({"requests": rows}))
            elif route == ("DELETE", "/_sim/requests"):
                self.engine.records.clear()
                proto.respond(200, b'{"cleared":true}')
            elif route == ("GET", "/_sim/config"):
                proto.respond(200, _dumps(self.config.to_dict()))
            else:
                _error(proto, 404, f"no route {req.method} {req.path}", "NotFoundError")
        except Exception as exc:  # noqa: BLE001 - a simulator answers 500 rather than dying
            if not proto.closed:
                _error(proto, 500, f"simulator error: {exc}", "InternalServerError")

    def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": self.started, "owned_by": "vllm", "root": name,
             "parent": None, "max_model_len": self.config.max_model_len}
            for name in self.config.models
        ]}

    def _parse(self, req: Request, proto: HttpProtocol) -> dict[str, Any] | None:
        try:
            body = json.loads(req.body)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return body
        except ValueError as exc:
            _error(proto, 400, f"invalid JSON body: {exc}")
            return None

    def _model(self, body: dict[str, Any], proto: HttpProtocol) -> str | None:
        model = body.get("model") or self.config.models[0]
        if model not in self.config.models:
            _error(proto, 404, f"The model `{model}` does not exist.", "NotFoundError", "model")
            return None
        return model

    def _generate(self, req: Request, proto: HttpProtocol, *, chat: bool) -> None:
        arrival = req.received_ns or time.monotonic_ns()
        body = self._parse(req, proto)
        if body is None:
            return
        model = self._model(body, proto)
        if model is None:
            return
        try:
            prompt_tokens = count_tokens(_prompt_text(body, chat))
        except ValueError as exc:
            _error(proto, 400, str(exc))
            return
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens")) or self.config.default_max_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            _error(proto, 400, f"max_tokens must be a positive integer, got {max_tokens!r}", param="max_tokens")
            return
        if prompt_tokens + max_tokens > self.config.max_model_len:
            _error(proto, 400, f"This model's maximum context length is {self.config.max_model_len} tokens. "
                               f"However, you requested {prompt_tokens + max_tokens} tokens.")
            return
        engine = self.engine
        engine.counter += 1
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        record = SeqRecord(
            id=f"{'chatcmpl' if chat else 'cmpl'}-{engine.counter:x}",
            client_request_id=req.headers.get("x-request-id"),
            model=model, stream=stream, arrival_ns=arrival,
            prompt_tokens=prompt_tokens, max_tokens=max_tokens,
        )
        if self.config.error_rate and engine.rng.random() < self.config.error_rate:
            record.outcome, record.end_ns = "injected_500", time.monotonic_ns()
            engine.records.append(record)
            _error(proto, 500, "injected server error", "InternalServerError")
            return
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        engine.submit(Seq(record, proto, chat=chat, stream=stream, include_usage=include_usage))

    def _tokenize(self, req: Request, proto: HttpProtocol) -> None:
        body = self._parse(req, proto)
        if body is None or self._model(body, proto) is None:
            return
        try:
            text = _prompt_text(body, "messages" in body)
        except ValueError as exc:
            _error(proto, 400, str(exc))
            return
        words = text.split()
        proto.respond(200, _dumps({
            "count": len(words), "max_model_len": self.config.max_model_len,
            "tokens": [hash(w) & 0xFFFF for w in words],
        }))


async def start(config: SimConfig) -> tuple[asyncio.AbstractServer, Simulator]:
    """Listen on ``config.host:config.port`` (0 picks a free port) in the running loop."""
    sim = Simulator(config)
    server = await asyncio.get_running_loop().create_server(sim.protocol, config.host, config.port, backlog=4096)
    return server, sim


def bound_port(server: asyncio.AbstractServer) -> int:
    return server.sockets[0].getsockname()[1]
