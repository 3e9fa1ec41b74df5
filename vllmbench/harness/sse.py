"""Reading an OpenAI-style SSE stream with the least work per chunk. Pure.

Each complete event is checked with byte searches: an event carrying a non-empty
``"text":"...`` or ``"content":"...`` is a token, timestamped with the arrival time of
the chunk it came in. Only events that do not look like a plain token (the usage
chunk, errors, role-only or unusual events) are parsed as JSON; one that does not
parse makes the request ``malformed_sse``.
"""

from __future__ import annotations

import json
from typing import Any

_TOKEN_KEYS = (b'"text":"', b'"content":"', b'"reasoning_content":"')


class StreamState:
    __slots__ = ("buf", "token_ns", "usage", "error", "done", "text_chars")

    def __init__(self) -> None:
        self.buf = b""
        self.token_ns: list[int] = []
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.done = False
        self.text_chars = 0

    def feed(self, data: bytes, t_ns: int) -> None:
        if (not self.buf and data.startswith(b"data: {") and data.find(b"\n\n") == len(data) - 2
                and b"\r" not in data and b'"usage":{' not in data):
            # The usual chunk: exactly one event carrying one token. Same checks as _event, inlined.
            for key in _TOKEN_KEYS:
                i = data.find(key)
                if i >= 0:
                    if data[i + len(key) : i + len(key) + 1] != b'"':
                        self.token_ns.append(t_ns)
                    return
            self._slow(data[6:-2], t_ns)
            return
        buf = self.buf + data if self.buf else data
        if b"\r" in data or buf[len(self.buf) - 1 : len(self.buf)] == b"\r":
            # Normalize after joining: a CR and its LF may arrive in separate reads.
            buf = buf.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            self._event(buf[start:end], t_ns)
            start = end + 2
        self.buf = buf[start:]

    def _event(self, event: bytes, t_ns: int) -> None:
        if not event.startswith(b"data:"):
            payload = b""
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload = line
                elif line and not line.startswith((b":", b"event:", b"id:", b"retry:")):
                    self._fail("malformed_sse")
                    return
            if not payload:
                return
            event = payload
        payload = event[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return
        if b'"usage":{' not in payload:
            for key in _TOKEN_KEYS:
                i = payload.find(key)
                if i >= 0:
                    if payload[i + len(key) : i + len(key) + 1] != b'"':
                        self.token_ns.append(t_ns)
                    return
        self._slow(payload, t_ns)

    def _slow(self, payload: bytes, t_ns: int) -> None:
        try:
            obj = json.loads(payload)
        except ValueError:
            self._fail("malformed_sse")
            return
        if not isinstance(obj, dict):
            self._fail("malformed_sse")
            return
        if "error" in obj or obj.get("object") == "error":
            self._fail("stream_error")
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice
            if delta.get("text") or delta.get("content") or delta.get("reasoning_content"):
                self.token_ns.append(t_ns)
                return

    def _fail(self, error: str) -> None:
        if self.error is None:
            self.error = error


def tokens_from_body(body: dict[str, Any]) -> tuple[int, str]:
    """(output tokens counted locally, text) from a non-streamed completion body."""
    text = ""
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            text += str(choice.get("text") or message.get("content") or "")
    return len(text.split()), text
