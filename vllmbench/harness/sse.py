"""Reading an OpenAI-style SSE stream with the least work per chunk. Pure.

Each complete event is checked with byte searches: an event carrying a non-empty
``"text":"...`` or ``"content":"...`` is a token, timestamped with the arrival time of
the chunk it came in. Only events that do not look like a plain token (the usage
chunk, errors, role-only or unusual events) are parsed as JSON; one that does not
parse makes the request ``malformed_sse``. A token event is not searched for
``usage``: servers send usage in a chunk of its own, and when none came by the end
of the stream the last token event is parsed for it (:meth:`StreamState.close`).

An event is never gathered by joining its pieces again and again: pieces wait in a
list until the one carrying the end of the event arrives, so a 32 MB event costs
one join, and events before it in a long chunk are timestamped when they arrive.
"""

from __future__ import annotations

import json
from typing import Any

TOKEN_KEYS = (b'"text":"', b'"content":"', b'"reasoning_content":"')


class StreamState:
    __slots__ = ("parts", "token_ns", "usage", "error", "done", "key", "last", "last_at", "cr")

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # pieces of an unfinished event
        self.token_ns: list[int] = []
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.done = False
        self.key = TOKEN_KEYS[0]  # the key the last token came under: tried first
        self.last = b""  # bytes holding the last token event (its JSON at last_at), parsed for usage
        self.last_at = 0  # at the end when no usage chunk came
        self.cr = False  # the last piece ended with a CR whose LF may come next

    def token(self, data: bytes, start: int, end: int) -> int:
        """1 when the event in ``data[start:end]`` carries a non-empty token, 0 when its token is
        empty, -1 when no token key is there. The key the last token came under is tried first."""
        key = self.key
        i = data.find(key, start, end)
        if i < 0:
            for key in TOKEN_KEYS:
                if key is not self.key:
                    i = data.find(key, start, end)
                    if i >= 0:
                        self.key = key
                        break
            else:
                return -1
        k = i + len(key)
        return 0 if k < end and data[k] == 34 else 1  # 34 is '"': the empty string

    def feed(self, data: bytes, t_ns: int) -> None:
        if (not self.parts and not self.cr and data.startswith(b"data: {") and data.endswith(b"}\n\n")
                and data.find(b"\n") == len(data) - 2):
            # The usual piece: exactly one event, one line, LF endings.
            if self.token(data, 6, len(data)) > 0:
                self.token_ns.append(t_ns)
                self.last, self.last_at = data, 6
            else:  # an empty token (a role chunk, a last chunk with usage) or no token key: read it whole
                self._slow(data[6:-2], t_ns)
            return
        self._pieces(data, t_ns)

    def _pieces(self, data: bytes, t_ns: int) -> None:
        if self.cr:  # normalize CRLF across reads: a CR and its LF may arrive apart
            data = b"\r" + data
            self.cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self.cr = True
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        start = 0
        if self.parts:
            if self.parts[-1].endswith(b"\n") and data.startswith(b"\n"):
                end = -1  # the blank line is split across the pieces
            else:
                end = data.find(b"\n\n")
                if end < 0:
                    if data:
                        self.parts.append(data)
                    return
            if end < 0:
                event = b"".join(self.parts)[:-1]
                start = 1
            else:
                event = b"".join(self.parts) + data[:end]
                start = end + 2
            self.parts = []
            self._event(event, t_ns)
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            self._event(data[start:end], t_ns)
            start = end + 2
        if start < len(data):
            self.parts.append(data[start:] if start else data)

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
        if self.token(payload, 0, len(payload)) > 0:
            self.token_ns.append(t_ns)
            self.last, self.last_at = payload, 0
            return
        self._slow(payload, t_ns)

    def _slow(self, payload: bytes, t_ns: int) -> None:
        obj = self._parse(payload)
        if obj is None:
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

    def _parse(self, payload: bytes) -> dict[str, Any] | None:
        try:
            obj = json.loads(payload)
        except ValueError:
            self._fail("malformed_sse")
            return None
        if not isinstance(obj, dict):
            self._fail("malformed_sse")
            return None
        if "error" in obj or obj.get("object") == "error":
            self._fail("stream_error")
            return None
        return obj

    def close(self) -> None:
        """The stream ended: take usage from the last token event when no chunk of its own brought it."""
        if self.usage is None and self.last:
            end = self.last.find(b"\n", self.last_at)
            payload = self.last[self.last_at : end if end >= 0 else len(self.last)]
            try:
                obj = json.loads(payload)
            except ValueError:
                obj = None  # it looked like a token; a cut-off JSON tail does not make the stream malformed here
            if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
                self.usage = obj["usage"]

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
