"""One request on one connection: the response read as it arrives, and the record it ends in.

A streamed token costs one call (:meth:`Response.feed`, from the connection's
``data_received``): the bytes are timestamped on arrival, before any parsing, and the
usual read (one HTTP chunk holding one SSE event with one token) is recognised in
place with a few byte comparisons. Anything else goes through the general reader:
chunked framing decoded as a stream, so a 32 MB chunk is handed on piece by piece and
the events in it are timestamped when their bytes arrive, never gathered whole.

Failures become an error class on the record (``timeout``, ``disconnected``,
``connect_error``, ``http_5xx``, ``client_error`` for a response that is not HTTP/1.1,
``malformed_body``), never an exception, so one bad response cannot stop a run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vllmbench.harness.records import RequestRecord
from vllmbench.harness.sse import StreamState, tokens_from_body

if TYPE_CHECKING:
    from vllmbench.harness.h1 import Client, Conn

MAX_HEAD = 64 * 1024  # a status line and headers, or a chunk-size line with trailers
Done = Callable[[RequestRecord], None]
_now = time.monotonic_ns
HEAD, CHUNKED, LENGTH, CLOSE = 0, 1, 2, 3  # what the bytes that come next are
SIZE_LINE, DATA_END, TRAILERS = 0, -1, -2  # ``left`` in a chunked body when not inside a chunk's data
_SIZES: dict[bytes, int] = {}  # chunk-size lines seen, parsed once (servers repeat a few sizes)


def error_class(status: int) -> str:
    return f"http_{status}" if status in (400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504) else f"http_{status // 100}xx"


def chunk_size(line: bytes) -> int:
    """The size in a chunk-size line (extensions after ``;`` ignored); -1 when it is not one."""
    size = _SIZES.get(line)
    if size is None:
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            return -1
        if size < 0:
            return -1
        if len(_SIZES) < 4096:
            _SIZES[line] = size
    return size


class Response:
    __slots__ = ("client", "rec", "body", "planned_input", "on_done", "conn", "raw", "status", "mode",
                 "left", "state", "whole", "keep_alive", "timer", "finished", "t0", "coalesced")

    def __init__(self, client: "Client", rec: RequestRecord, body: bytes, stream: bool, planned_input: int,
                 on_done: Done) -> None:
        self.client, self.rec, self.body = client, rec, body
        self.planned_input, self.on_done = planned_input, on_done
        self.t0 = client.t0
        self.conn: Conn | None = None
        self.raw = b""  # an unfinished head or chunk-size line
        self.status = 0
        self.mode = HEAD
        self.left = 0
        self.state = StreamState() if stream else None
        self.whole: list[bytes] = []
        self.keep_alive = True
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False
        self.coalesced = 0  # tokens read together with an earlier token of the same read, sent in chunks apart

    def feed(self, data: bytes) -> None:
        t = _now() - self.t0
        if self.mode == CHUNKED:
            self._chunked(data, t)
        elif self.mode == HEAD:
            data = self._head(data)
            if data and not self.finished:
                self.feed_body(data, t)
        else:
            self.feed_body(data, t)

    def feed_body(self, data: bytes, t: int) -> None:
        if self.mode == CHUNKED:
            self._chunked(data, t)
        elif self.mode == LENGTH:
            if len(data) >= self.left:
                self._deliver(data[: self.left] if len(data) > self.left else data, t)
                self.raw = data[self.left :]  # bytes after the body: the connection is not reused
                self.left = 0
                self.finish(t)
            else:
                self.left -= len(data)
                self._deliver(data, t)
        else:
            self._deliver(data, t)

    def _head(self, data: bytes) -> bytes:
        """Read the status line and headers; the bytes after them are returned."""
        buf = self.raw + data if self.raw else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            # Not HTTP at all (an SSH banner, an HTTP/2 frame) fails now, not at the timeout.
            if len(buf) > MAX_HEAD or buf[:7] != b"HTTP/1."[: len(buf)]:
                self.fail("client_error")
            self.raw = buf
            return b""
        self.raw = b""
        lines = buf[:end].split(b"\r\n")
        try:
            version, code = lines[0].split(b" ", 2)[:2]
            status = int(code)
            if not version.startswith(b"HTTP/1."):
                raise ValueError(version)
        except ValueError:
            self.fail("client_error")
            return b""
        rest = buf[end + 4 :]
        if 100 <= status < 200:  # 100 Continue and friends: the real head follows
            return self._head(rest) if rest else b""
        chunked, length, connection = False, -1, b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    self.fail("client_error")
                    return b""
            elif name == b"connection":
                connection = value.strip().lower()
        self.status = self.rec.status = status
        self.keep_alive = connection != b"close" and (version == b"HTTP/1.1" or connection == b"keep-alive")
        if status != 200:
            self.state = None  # an error body is read whole, never parsed as SSE
        if chunked:
            self.mode, self.left = CHUNKED, SIZE_LINE
        elif length >= 0 or status in (204, 304):
            self.mode, self.left = LENGTH, max(0, length)
            if self.left == 0:
                self.finish(_now() - self.t0)
        else:
            self.mode, self.keep_alive = CLOSE, False
        return rest

    def _chunked(self, data: bytes, t: int) -> None:
        """Chunked framing as a stream: chunk data is handed on as it arrives. A whole chunk
        holding one SSE event on one line, the usual case, is read in place."""
        state = self.state
        carried = False  # a chunk earlier in this read carried a token
        pos, n = 0, len(data)
        while pos < n:
            left = self.left
            if left == SIZE_LINE and state is not None and not self.raw and not state.parts and not state.cr:
                j = data.find(b"\r\n", pos, pos + 12)
                if j > pos:
                    line = data[pos:j]
                    end = j + 2 + (_SIZES.get(line) or chunk_size(line))  # the chunk data ends here, then CRLF
                    if (end > j + 9 and end + 2 <= n and data.startswith(b"}\n\n\r\n", end - 3)
                            and data.startswith(b"data: {", j + 2) and data.find(b"\n", j + 2, end) == end - 2):
                        key = state.key
                        i = data.find(key, j + 8, end)
                        if data[i + len(key)] != 34 if i >= 0 else state.token(data, j + 8, end) > 0:  # 34: '"'
                            state.token_ns.append(t)
                            state.last, state.last_at = data, j + 8
                            if carried:  # sent in a chunk of its own, read together with an earlier token
                                self.coalesced += 1
                            carried = True
                        else:  # an empty token or no token key: read whole (usage, errors, role chunks)
                            state._slow(data[j + 8 : end - 2], t)
                        pos = end + 2
                        continue
            if left > 0:  # inside a chunk's data
                take = min(left, n - pos)
                tokens = len(state.token_ns) if state is not None else 0
                self._deliver(data if take == n else data[pos : pos + take], t)
                if self.finished:
                    return
                pos += take
                self.left = left - take or DATA_END
                if state is not None and len(state.token_ns) > tokens:
                    if carried:
                        self.coalesced += len(state.token_ns) - tokens
                    carried = True
                continue
            # A line: a chunk size, the CRLF that ends a chunk's data, or a trailer.
            if self.raw:
                if self.raw.endswith(b"\r") and data[pos : pos + 1] == b"\n":
                    line, pos = self.raw[:-1], pos + 1
                else:
                    j = data.find(b"\r\n", pos)
                    if j < 0:
                        self._partial_line(data[pos:])
                        return
                    line, pos = self.raw + data[pos:j], j + 2
                self.raw = b""
            else:
                j = data.find(b"\r\n", pos)
                if j < 0:
                    self._partial_line(data[pos:])
                    return
                line, pos = data[pos:j], j + 2
            if left == DATA_END:
                if line:
                    self.fail("client_error")  # chunk data longer than its size line said
                    return
                self.left = SIZE_LINE
            elif left == TRAILERS:
                if not line:  # the empty line after the last chunk and its trailers
                    self.raw = data[pos:]  # bytes after the body: the connection is not reused
                    self.finish(t)
                    return
            else:
                size = chunk_size(line)
                if size < 0:
                    self.fail("client_error")
                    return
                self.left = size or TRAILERS

    def _partial_line(self, piece: bytes) -> None:
        self.raw += piece
        if len(self.raw) > MAX_HEAD:
            self.fail("client_error")

    def _deliver(self, payload: bytes, t: int) -> None:
        if self.state is not None:
            self.state.feed(payload, t)
        else:
            self.whole.append(payload)

    # --- ending --------------------------------------------------------------------------
    def finish(self, t: int) -> None:
        """The response is complete."""
        if self.finished:
            return
        self.finished = True
        rec = self.rec
        rec.end_ns = t
        if self.timer is not None:
            self.timer.cancel()
        client = self.client
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.ex = None
            client.release(conn, reuse=self.keep_alive and not self.raw)
        usage: Any = None
        local_out = 0
        if self.status != 200:
            rec.error = error_class(self.status)
        elif self.state is not None:
            state = self.state
            state.close()
            rec.token_ns = state.token_ns
            usage = state.usage
            local_out = len(state.token_ns)
            if state.error:
                rec.error = state.error
            elif not state.done:
                rec.error = "incomplete_stream"
            if self.mode == CHUNKED:
                client.chunked_tokens += local_out
                client.coalesced_tokens += self.coalesced
        else:
            try:
                obj = json.loads(b"".join(self.whole))
            except ValueError:
                rec.error = "malformed_body"
                obj = None
            if isinstance(obj, dict):
                usage = obj.get("usage")
                local_out, _ = tokens_from_body(obj)
            rec.token_ns = [t]
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            rec.output_tokens = usage["completion_tokens"]
            rec.input_tokens = usage.get("prompt_tokens", self.planned_input)
            rec.tokens_from = "server"
        else:
            rec.output_tokens, rec.input_tokens, rec.tokens_from = local_out, self.planned_input, "local"
        if rec.error is None and not rec.token_ns:
            rec.error = "no_tokens"
        self.on_done(rec)

    def fail(self, error: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        rec = self.rec
        rec.error = error
        rec.token_ns = []
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.ex = None
            conn.drop()
        self.on_done(rec)

    def lost(self, exc: Exception | None) -> None:
        """The connection closed under this request. Never sent again: the server may have
        read it and be generating (:meth:`Client.start` skips connections closed while idle)."""
        if self.finished:
            return
        if self.mode == CLOSE and exc is None:  # a FIN ends such a body; a reset cuts it
            self.conn = None
            self.keep_alive = False
            self.finish(_now() - self.t0)
        else:
            self.fail("disconnected")
