"""The load generator's HTTP/1.1 client: asyncio protocols and callbacks, no coroutine per chunk.

A streamed token costs one ``data_received`` call: the bytes are timestamped on arrival
(before any parsing), de-chunked and scanned by :class:`~vllmbench.harness.sse.StreamState`
in the same call. aiohttp wakes a task for every chunk; at 25,000 chunks/s that wake-up,
not the server, was what the figures measured. A request is started by a plain call
(:meth:`Client.start`) that writes to an idle keep-alive connection at once, so a send
happens when the schedule says, and finishes with a callback.

Library and socket failures become an error class on the request record (``timeout``,
``disconnected``, ``connect_error``, ``http_5xx``, ``client_error`` for a response that
is not HTTP/1.1, ``malformed_body``), never an exception, so one bad response cannot
stop a run or poison its statistics.
"""

from __future__ import annotations

import asyncio
import json
import select
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from vllmbench.harness.records import RequestRecord
from vllmbench.harness.sse import StreamState, tokens_from_body

MAX_HEAD = 64 * 1024
Done = Callable[[RequestRecord], None]
_now = time.monotonic_ns


def error_class(status: int) -> str:
    return f"http_{status}" if status in (400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504) else f"http_{status // 100}xx"


class _Exchange:
    """One request on one connection: parses the response as it arrives."""

    __slots__ = ("client", "rec", "body", "stream", "planned_input", "on_done", "conn", "head", "status",
                 "mode", "left", "raw", "state", "whole", "keep_alive", "timer", "finished")

    def __init__(self, client: "Client", rec: RequestRecord, body: bytes, stream: bool, planned_input: int,
                 on_done: Done) -> None:
        self.client, self.rec, self.body, self.stream = client, rec, body, stream
        self.planned_input, self.on_done = planned_input, on_done
        self.conn: _Conn | None = None
        self.head = b""
        self.status = 0
        self.mode = ""  # "chunked" | "length" | "close" once the head is read
        self.left = 0
        self.raw = b""
        self.state = StreamState() if stream else None
        self.whole: list[bytes] = []
        self.keep_alive = True
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False

    # --- parsing -------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        t = _now() - self.client.t0
        if not self.mode:
            data = self._head(data)
            if not self.mode or self.finished:
                return
        if self.mode == "chunked":
            self._chunked(data, t)
        elif self.mode == "length":
            if len(data) >= self.left:
                self._deliver(data[: self.left], t)
                self.left = 0
                self.finish(t)
            else:
                self.left -= len(data)
                self._deliver(data, t)
        else:
            self._deliver(data, t)

    def _head(self, data: bytes) -> bytes:
        buf = self.head + data if self.head else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            # Not HTTP at all (an SSH banner, an HTTP/2 frame) fails now, not at the timeout.
            if len(buf) > MAX_HEAD or buf[:7] != b"HTTP/1."[: len(buf)]:
                self.fail("client_error")
            self.head = buf
            return b""
        self.head = b""
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
            self.mode = "chunked"
        elif length >= 0 or status in (204, 304):
            self.mode, self.left = "length", max(0, length)
            if self.left == 0:
                self.finish(_now() - self.client.t0)
        else:
            self.mode, self.keep_alive = "close", False
        return rest

    def _chunked(self, data: bytes, t: int) -> None:
        if not self.raw:  # the usual read: exactly one whole chunk
            j = data.find(b"\r\n")
            if 0 < j < 9 and b";" not in data[:j]:
                try:
                    size = int(data[:j], 16)
                except ValueError:
                    size = 0
                if size > 0 and len(data) == j + 4 + size:
                    self._deliver(data[j + 2 : j + 2 + size], t)
                    return
        raw = self.raw + data if self.raw else data
        pos, n = 0, len(raw)
        while pos < n:
            j = raw.find(b"\r\n", pos)
            if j < 0:
                break
            try:
                size = int(raw[pos:j].split(b";", 1)[0], 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self.fail("client_error")
                return
            if size == 0:  # last chunk, then optional trailers and an empty line
                if raw.startswith(b"\r\n", j + 2) or raw.find(b"\r\n\r\n", j) >= 0:
                    self.raw = b""
                    self.finish(t)
                    return
                break
            end = j + 2 + size
            if end + 2 > n:
                break
            self._deliver(raw[j + 2 : end], t)
            if self.finished:
                return
            pos = end + 2
        self.raw = raw[pos:] if pos else raw

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
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.ex = None
            self.client._release(conn, reuse=self.keep_alive and not self.raw)
        usage: Any = None
        local_out = 0
        if self.status != 200:
            rec.error = error_class(self.status)
        elif self.state is not None:
            state = self.state
            rec.token_ns = state.token_ns
            usage = state.usage
            local_out = len(state.token_ns)
            if state.error:
                rec.error = state.error
            elif not state.done:
                rec.error = "incomplete_stream"
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
        if self.mode == "close" and exc is None:  # a FIN ends such a body; a reset cuts it
            self.conn = None
            self.keep_alive = False
            self.finish(_now() - self.client.t0)
        else:
            self.fail("disconnected")


class _Conn(asyncio.Protocol):
    __slots__ = ("client", "transport", "ex", "closed", "fd")

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.ex: _Exchange | None = None
        self.closed = False
        self.fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1

    def usable(self) -> bool:
        """Open, and nothing waiting to be read. An idle connection with something to read
        has been closed or reset by the server, or carries bytes nobody asked for; the loop
        may not have seen them yet, and a request written there could be lost or answered
        with them."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        if self.fd < 0:
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return not poller.poll(0)

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is not None:
            ex.feed(data)
        else:  # bytes nobody asked for: the connection cannot be trusted any more
            self.drop()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._forget(self)
        ex, self.ex = self.ex, None
        if ex is not None:
            ex.lost(exc)

    def drop(self) -> None:
        self.closed = True
        self.client._forget(self)
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Pooled keep-alive connections to one server; callbacks, not tasks, per request."""

    def __init__(self, url: str, *, timeout_s: float, api_key: str | None = None, t0: int = 0,
                 max_connections: int = 100_000) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url {url!r} must start with http:// or https://")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.netloc.rsplit("@", 1)[-1]  # as written in the URL: an IPv6 address keeps its brackets
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: */*\r\n"
        if api_key:
            head += f"Authorization: Bearer {api_key}\r\n"
        self.head = head.encode("latin-1")
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(10.0, timeout_s)
        self.t0 = t0
        self.max_connections = max_connections
        self.idle: deque[_Conn] = deque()
        self.conns: set[_Conn] = set()
        self.opening = 0
        self.loop = asyncio.get_running_loop()

    # --- requests ------------------------------------------------------------------------
    def start(self, rec: RequestRecord, body: bytes, *, stream: bool, planned_input: int, on_done: Done) -> None:
        """Send now (on an idle connection) or as soon as a new one is open; ``on_done(rec)`` at the end."""
        ex = _Exchange(self, rec, body, stream, planned_input, on_done)
        deadline = self.loop.time() + self.timeout_s
        ex.timer = self.loop.call_at(deadline, ex.fail, "timeout")
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                self._write(conn, ex)
                return
            conn.drop()
        self._open(ex)

    async def request(self, rec: RequestRecord, body: bytes, *, stream: bool, planned_input: int) -> RequestRecord:
        fut: asyncio.Future[RequestRecord] = self.loop.create_future()
        self.start(rec, body, stream=stream, planned_input=planned_input,
                   on_done=lambda r: fut.done() or fut.set_result(r))
        return await fut

    def _write(self, conn: _Conn, ex: _Exchange) -> None:
        conn.ex = ex
        ex.conn = conn
        rec = ex.rec
        head = self.head + b"X-Request-Id: %s\r\nContent-Length: %d\r\n\r\n" % (rec.request_id.encode(), len(ex.body))
        rec.sent_ns = _now() - self.t0
        conn.transport.write(head + ex.body)  # type: ignore[union-attr]

    def _open(self, ex: _Exchange) -> None:
        if len(self.conns) + self.opening >= self.max_connections:
            ex.fail("connect_error")
            return
        self.opening += 1
        task = self.loop.create_task(self._connect())

        def opened(t: asyncio.Task[_Conn]) -> None:
            self.opening -= 1
            if t.cancelled() or t.exception() is not None:
                exc = None if t.cancelled() else t.exception()
                ex.fail("timeout" if isinstance(exc, asyncio.TimeoutError) else "connect_error")
                return
            conn = t.result()
            if ex.finished:  # timed out while connecting: keep the connection for the next request
                self._release(conn, reuse=True)
                return
            self._write(conn, ex)

        task.add_done_callback(opened)

    async def _connect(self) -> _Conn:
        task = asyncio.current_task()
        limit = self.loop.call_later(self.connect_timeout_s, task.cancel) if task else None  # cheaper than wait_for
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port, ssl=self.ssl,
                                                        server_hostname=self.host if self.ssl else None)
        except asyncio.CancelledError:
            raise asyncio.TimeoutError(f"no connection to {self.host}:{self.port} in {self.connect_timeout_s:g} s") from None
        finally:
            if limit is not None:
                limit.cancel()
        self.conns.add(conn)
        return conn

    async def warm(self, n: int) -> int:
        """Open up to ``n`` idle connections ahead of a stage (they are not part of any request)."""
        n = max(0, min(n, self.max_connections - len(self.conns)))
        results = await asyncio.gather(*(self._connect() for _ in range(n)), return_exceptions=True)
        opened = [c for c in results if isinstance(c, _Conn)]
        self.idle.extend(opened)
        return len(opened)

    def _release(self, conn: _Conn, *, reuse: bool) -> None:
        if reuse and not conn.closed:
            self.idle.append(conn)
        else:
            conn.drop()

    def _forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)

    def close(self) -> None:
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        self.conns.clear()
        self.idle.clear()
