"""A minimal HTTP/1.1 server protocol on asyncio, built for streaming many small chunks.

The simulator must not be the bottleneck of a benchmark on a 2-core machine, so each
streamed token is one ``transport.write`` of bytes prepared in advance: no framework,
no per-chunk coroutine. Keep-alive, Content-Length bodies and ``Expect: 100-continue``
are supported; chunked request bodies are refused with 411.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_ns: int = 0  # when the read that completed the request returned (monotonic)


class HttpProtocol(asyncio.Protocol):
    """One client connection. ``handler(request, protocol)`` answers through the
    ``respond`` / ``start_stream`` + ``send_chunk`` + ``end_stream`` methods."""

    def __init__(self, handler: Callable[[Request, "HttpProtocol"], None]) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.keep_alive = True
        self.continued = False
        self.read_ns = 0
        self.queued = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        # Timestamped here and answered after every read of this loop iteration: requests that
        # arrive together are each stamped when read, not after the ones handled before them
        # (a burst of 10 once made the last one's arrival 0.5 ms late, and its TTFT that much short).
        self.read_ns = time.monotonic_ns()
        self.buf += data
        if not self.busy and not self.queued:
            self.queued = True
            asyncio.get_running_loop().call_soon(self._process)

    # parsing
    def _process(self) -> None:
        self.queued = False
        while not self.busy and not self.closed and self.buf:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._fail(431)
                return
            try:
                lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._fail(400)
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(411)
                return
            if length > MAX_BODY:
                self._fail(413)
                return
            total = end + 4 + length
            if len(self.buf) < total:
                if headers.get("expect", "").lower() == "100-continue" and not self.continued:
                    self.continued = True
                    self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(self.buf[end + 4 : total])
            del self.buf[:total]
            self.continued = False
            connection = headers.get("connection", "").lower()
            self.keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
            path, _, query = target.partition("?")
            self.busy = True
            self.handler(Request(method, path, parse_qs(query), headers, body, self.read_ns), self)

    def _fail(self, status: int) -> None:
        self.keep_alive = False
        self.busy = True
        self.respond(status, b'{"error":"%s"}' % REASONS[status].encode())

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    # answering
    def _head(self, status: int, content_type: str, extra: str) -> str:
        connection = "keep-alive" if self.keep_alive else "close"
        return (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            f"content-type: {content_type}\r\nconnection: {connection}\r\n{extra}"
        )

    def respond(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        head = self._head(status, content_type, f"content-length: {len(body)}\r\n\r\n")
        self._write(head.encode("latin-1") + body)
        self._done()

    def start_stream(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        head = self._head(status, content_type, "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n")
        self._write(head.encode("latin-1"))

    def send_chunk(self, framed: bytes) -> None:
        """Write one chunk already framed with :func:`frame`."""
        if not self.closed:
            self.transport.write(framed)  # type: ignore[union-attr]

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")
        self._done()

    def abort(self) -> None:
        """Drop the connection without finishing the response (a mid-stream disconnect)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _done(self) -> None:
        self.busy = False
        if not self.keep_alive:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        elif self.buf and not self.queued:
            self.queued = True
            asyncio.get_running_loop().call_soon(self._process)


def frame(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)
