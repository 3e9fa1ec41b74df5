"""The load generator's HTTP/1.1 client: pooled keep-alive connections, asyncio protocols
and callbacks, no coroutine per chunk.

A request is started by a plain call (:meth:`Client.start`) that writes to an idle
keep-alive connection at once, so a send happens when the schedule says, and it ends
in a callback. The response is read by :class:`~vllmbench.harness.response.Response`,
one call per read: aiohttp woke a task for every chunk, and at 25,000 chunks/s that
wake-up, not the server, was what the figures measured.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

from vllmbench.harness.records import RequestRecord
from vllmbench.harness.response import CHUNKED, Done, Response

_now = time.monotonic_ns


class Conn(asyncio.Protocol):
    """One keep-alive connection; ``ex`` is the request it is answering, if any."""

    __slots__ = ("client", "transport", "ex", "closed", "fd")

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.ex: Response | None = None
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
        if ex is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.drop()
        elif ex.mode == CHUNKED:  # the streamed tokens: one call less than through feed
            ex._chunked(data, _now() - ex.t0)
        else:
            ex.feed(data)

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
        self.idle: deque[Conn] = deque()
        self.conns: set[Conn] = set()
        self.opening = 0
        self.chunked_tokens = 0  # tokens of chunked streams, and those read together although sent apart
        self.coalesced_tokens = 0
        self.loop = asyncio.get_running_loop()

    # --- requests ------------------------------------------------------------------------
    def start(self, rec: RequestRecord, body: bytes, *, stream: bool, planned_input: int, on_done: Done) -> None:
        """Send now (on an idle connection) or as soon as a new one is open; ``on_done(rec)`` at the end."""
        ex = Response(self, rec, body, stream, planned_input, on_done)
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

    def _write(self, conn: Conn, ex: Response) -> None:
        conn.ex = ex
        ex.conn = conn
        rec = ex.rec
        head = self.head + b"X-Request-Id: %s\r\nContent-Length: %d\r\n\r\n" % (rec.request_id.encode(), len(ex.body))
        rec.sent_ns = _now() - self.t0
        conn.transport.write(head + ex.body)  # type: ignore[union-attr]

    def _open(self, ex: Response) -> None:
        if len(self.conns) + self.opening >= self.max_connections:
            ex.fail("connect_error")
            return
        self.opening += 1
        task = self.loop.create_task(self._connect())

        def opened(t: asyncio.Task[Conn]) -> None:
            self.opening -= 1
            if t.cancelled() or t.exception() is not None:
                exc = None if t.cancelled() else t.exception()
                ex.fail("timeout" if isinstance(exc, asyncio.TimeoutError) else "connect_error")
                return
            conn = t.result()
            if ex.finished:  # timed out while connecting: keep the connection for the next request
                self.release(conn, reuse=True)
                return
            self._write(conn, ex)

        task.add_done_callback(opened)

    async def _connect(self) -> Conn:
        task = asyncio.current_task()
        limit = self.loop.call_later(self.connect_timeout_s, task.cancel) if task else None  # cheaper than wait_for
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port, ssl=self.ssl,
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
        opened = [c for c in results if isinstance(c, Conn)]
        self.idle.extend(opened)
        return len(opened)

    def release(self, conn: Conn, *, reuse: bool) -> None:
        if reuse and not conn.closed:
            self.idle.append(conn)
        else:
            conn.drop()

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)

    def close(self) -> None:
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        self.conns.clear()
        self.idle.clear()
