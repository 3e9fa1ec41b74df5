"""The load generator's HTTP/1.1 client against servers on 127.0.0.1 that write exact bytes.

Each test starts a raw socket server in the test's own event loop, so it can produce any
split, stall, close or reset at a known point of a response. Every test runs on both
event loops the runner may use (asyncio's and uvloop's). A hang fails the test after
60 s instead of blocking the suite (the longest test makes about 2,000 requests, which
took 15 s on two loaded cores); nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import struct
import subprocess

import pytest
import uvloop

from vllmbench.harness.h1 import Client
from vllmbench.harness.records import RequestRecord

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
HANG_S = 60
TEXTS = (" héllo", " 世界", " ok", " 🙂")  # multi-byte UTF-8, so that splits fall inside characters


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    def run(main):
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            return runner.run(asyncio.wait_for(main(), HANG_S))
    return run


# --- what servers say --------------------------------------------------------------------
def sse(texts=TEXTS, *, usage=True, done=True) -> bytes:
    events = ['data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n'
              % text for text in texts]
    if usage:
        events.append('data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d,'
                      '"total_tokens":%d}}\n\n' % (len(texts), 5 + len(texts)))
    if done:
        events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def completion(words=3, *, usage=True) -> bytes:
    body = {"id": "c", "object": "text_completion",
            "choices": [{"index": 0, "text": " 世界" * words, "finish_reason": "length"}]}
    if usage:
        body["usage"] = {"prompt_tokens": 5, "completion_tokens": words, "total_tokens": 5 + words}
    return json.dumps(body, ensure_ascii=False).encode()


def head(status=200, *headers: str, version="HTTP/1.1", reason="OK") -> bytes:
    return (f"{version} {status} {reason}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def sized(payload: bytes, status=200, *headers: str) -> bytes:
    return head(status, f"Content-Length: {len(payload)}", *headers) + payload


def chunked(payload: bytes, size: int | None = None, *, ext="", trailer="") -> bytes:
    """Chunked framing: ``size`` bytes a chunk, or one chunk per SSE event when None."""
    if size is None:
        pieces = [event + b"\n\n" for event in payload.split(b"\n\n") if event]
    else:
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext.encode(), p) for p in pieces)
    return body + b"0\r\n" + (trailer + "\r\n" if trailer else "").encode() + b"\r\n"


def streamed(payload: bytes, size: int | None = None, **kw) -> bytes:
    return head(200, "Content-Type: text/event-stream", "Transfer-Encoding: chunked") + chunked(payload, size, **kw)


# --- a server that writes exact bytes -------------------------------------------------------
class Conn:
    """One accepted connection, a plain non-blocking socket driven by the loop's sock_* calls."""

    def __init__(self, server: "RawServer", sock: socket.socket, number: int) -> None:
        self.server, self.sock, self.number = server, sock, number
        self.buf = b""
        self.peer_closed = False

    async def recv(self) -> bytes:
        try:
            data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.peer_closed = True
        return data

    async def request(self) -> dict | None:
        """The next request (its JSON body plus ``id`` and ``connection``), or None when the client hung up."""
        while b"\r\n\r\n" not in self.buf:
            data = await self.recv()
            if not data:
                return None
            self.buf += data
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in raw_head.decode().split("\r\n")[1:])
        while len(self.buf) < int(headers["Content-Length"]):
            data = await self.recv()
            if not data:
                return None
            self.buf += data
        size = int(headers["Content-Length"])
        body, self.buf = json.loads(self.buf[:size]), self.buf[size:]
        body.update(id=headers["X-Request-Id"], connection=self.number)
        self.server.seen.append(body)
        return body

    async def send(self, *pieces: bytes) -> None:
        """Each piece in its own write, the client's loop given the chance to read it alone."""
        for piece in pieces:
            await asyncio.get_running_loop().sock_sendall(self.sock, piece)
            await settle()

    async def hangs_up(self) -> bool:
        """Wait for the client to close this connection."""
        while await self.recv():
            pass
        return True

    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class RawServer:
    """``handler(conn)`` runs once per accepted connection; ``seen`` lists every request read."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.seen: list[dict] = []
        self.conns: list[Conn] = []
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "RawServer":
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/completions"
        self.acceptor = asyncio.get_running_loop().create_task(self._accept())
        return self

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(self.listener)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece leaves at once
            conn = Conn(self, sock, len(self.conns) + 1)
            self.conns.append(conn)
            task = loop.create_task(self._serve(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: Conn) -> None:
        try:
            await self.handler(conn)
        except OSError:  # the client reset or dropped the connection: part of several tests
            pass
        finally:
            conn.close()

    def ids(self) -> list[str]:
        return [r["id"] for r in self.seen]

    async def __aexit__(self, *exc) -> None:
        for task in [self.acceptor, *self.tasks]:
            task.cancel()
        await asyncio.gather(self.acceptor, *self.tasks, return_exceptions=True)
        self.listener.close()
        for conn in self.conns:
            conn.close()


async def settle() -> None:
    """A few loop iterations: long enough for bytes written on 127.0.0.1 to be read."""
    for _ in range(4):
        await asyncio.sleep(0)


def answering(*responses: bytes | list[bytes]):
    """A keep-alive handler: the n-th request on a connection gets the n-th response (pieces written apart)."""
    async def handler(conn: Conn) -> None:
        for response in responses:
            if await conn.request() is None:
                return
            await conn.send(*(response if isinstance(response, list) else [response]))
        await conn.hangs_up()
    return handler


def forever():
    """Never ends on its own: a stalled server."""
    return asyncio.Event().wait()


# --- the client, as the runner uses it ------------------------------------------------------
class Session:
    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.client = Client(url, timeout_s=timeout_s)

    async def ask(self, i: int = 0, *, stream: bool = True, max_tokens: int = 4) -> RequestRecord:
        return await self.client.request(*self.args(i, max_tokens), stream=stream, planned_input=5)

    def args(self, i: int, max_tokens: int = 4) -> tuple[RequestRecord, bytes]:
        body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": max_tokens}).encode()
        return RequestRecord(index=i, scheduled_ns=0, request_id=f"r{i}"), body

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc) -> None:
        self.client.close()
        await settle()


def assert_streamed_ok(rec: RequestRecord, tokens: int = len(TEXTS), *, from_server: bool = True) -> None:
    assert (rec.error, rec.status) == (None, 200)
    assert len(rec.token_ns) == tokens and rec.token_ns == sorted(rec.token_ns)
    assert rec.output_tokens == tokens
    assert rec.tokens_from == ("server" if from_server else "local")
    assert rec.end_ns >= rec.token_ns[-1] >= rec.sent_ns > 0


# --- bodies and framing ---------------------------------------------------------------------
WIRES = [
    pytest.param(streamed(sse()), True, id="sse, one chunk per event"),
    pytest.param(streamed(sse(), 7, ext=";n=1", trailer="X-T: 1"), True,
                 id="sse, 7-byte chunks with extensions and a trailer"),
    pytest.param(streamed(sse().replace(b"\n", b"\r\n"), 1), True, id="sse, CRLF events in 1-byte chunks"),
    pytest.param(streamed(sse().replace(b"\n", b"\r\n"), None), True, id="sse, CRLF events, one chunk per event"),
    pytest.param(sized(sse(), 200, "Content-Type: text/event-stream"), True, id="sse, Content-Length"),
    pytest.param(sized(completion()), False, id="json, Content-Length"),
    pytest.param(head(200, "Transfer-Encoding: chunked") + chunked(completion(), 5), False, id="json, 5-byte chunks"),
]


@pytest.mark.parametrize("wire,stream", WIRES)
def test_a_response_split_at_any_byte_is_read_the_same_on_one_kept_alive_connection(run, wire, stream):
    cuts = range(1, len(wire))

    async def main():
        async with RawServer(answering(*([wire[:cut], wire[cut:]] for cut in cuts))) as server, \
                Session(server.url) as s:
            for cut in cuts:
                rec = await s.ask(cut, stream=stream)
                if stream:
                    assert_streamed_ok(rec)
                else:
                    assert (rec.error, rec.output_tokens, rec.tokens_from, len(rec.token_ns)) == (None, 3, "server", 1), cut
            assert len(server.conns) == 1
            assert len(server.seen) == len(cuts)

    run(main)


@pytest.mark.parametrize("wire,stream", WIRES)
def test_a_response_arriving_one_byte_at_a_time_is_read_whole(run, wire, stream):
    async def main():
        async with RawServer(answering([wire[i : i + 1] for i in range(len(wire))], wire)) as server, \
                Session(server.url) as s:
            for i in range(2):
                rec = await s.ask(i, stream=stream)
                assert rec.error is None
                assert rec.output_tokens == (len(TEXTS) if stream else 3)
            assert len(server.conns) == 1

    run(main)


def test_tokens_are_counted_locally_when_the_server_sends_no_usage(run):
    async def main():
        async with RawServer(answering(streamed(sse(usage=False)), sized(completion(usage=False)))) as server, \
                Session(server.url) as s:
            assert_streamed_ok(await s.ask(0), from_server=False)
            rec = await s.ask(1, stream=False)
            assert (rec.error, rec.output_tokens, rec.tokens_from, rec.input_tokens) == (None, 3, "local", 5)

    run(main)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_body_without_length_ends_when_the_server_closes(run, version, stream):
    payload = sse() if stream else completion()

    async def handler(conn):
        await conn.request()
        await conn.send(head(200, version=version), payload[:10], payload[10:])

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            for i in range(2):  # the closed connection is not reused: the second request opens another
                rec = await s.ask(i, stream=stream)
                assert rec.error is None
                assert rec.output_tokens == (len(TEXTS) if stream else 3)
            assert [r["connection"] for r in server.seen] == [1, 2]

    run(main)


@pytest.mark.parametrize("interim", [
    [head(100, reason="Continue") + streamed(sse())],
    [head(100, reason="Continue"), streamed(sse())],
    [head(100, reason="Continue")[:9], head(100, reason="Continue")[9:] + streamed(sse())[:20], streamed(sse())[20:]],
    [head(102, reason="Processing") + head(103, "Link: </a.css>; rel=preload", reason="Early Hints"), streamed(sse())],
], ids=["same write", "separate writes", "split", "102 and 103 with headers"])
def test_interim_1xx_responses_are_skipped(run, interim):
    async def main():
        async with RawServer(answering(interim, interim)) as server, Session(server.url) as s:
            assert_streamed_ok(await s.ask(0))
            assert_streamed_ok(await s.ask(1))
            assert len(server.conns) == 1

    run(main)


# --- errors a server answers ----------------------------------------------------------------
ERROR_BODY = b'{"object":"error","message":"data: {\\"text\\":\\"x\\"}","code":1}'


@pytest.mark.parametrize("status,error", [
    (400, "http_400"), (404, "http_404"), (413, "http_413"), (429, "http_429"), (418, "http_4xx"),
    (500, "http_500"), (503, "http_503"), (507, "http_5xx"), (302, "http_3xx"), (201, "http_2xx"),
])
@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("stream", [True, False])
def test_an_error_status_is_counted_by_class_and_its_body_read_off_the_kept_alive_connection(
        run, status, error, framing, stream):
    error_response = (sized(ERROR_BODY, status) if framing == "length"
                      else head(status, "Transfer-Encoding: chunked") + chunked(ERROR_BODY, 9))
    ok = streamed(sse()) if stream else sized(completion())

    async def main():
        async with RawServer(answering([error_response[:30], error_response[30:]], ok)) as server, \
                Session(server.url) as s:
            rec = await s.ask(0, stream=stream)
            assert (rec.error, rec.status, rec.token_ns) == (error, status, [])
            rec = await s.ask(1, stream=stream)
            assert (rec.error, rec.status) == (None, 200)
            assert len(server.conns) == 1

    run(main)


@pytest.mark.parametrize("status", [200, 503])
@pytest.mark.parametrize("server_closes", [True, False], ids=["server closes", "server keeps it open"])
def test_connection_close_from_the_server_is_never_reused(run, status, server_closes):
    response = sized(completion() if status == 200 else ERROR_BODY, status, "Connection: close")

    async def handler(conn):
        await conn.request()
        await conn.send(response)
        if not server_closes:
            await forever()

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            first = await s.ask(0, stream=False)
            second = await s.ask(1, stream=False)
            assert first.error == second.error == (None if status == 200 else "http_503")
            assert [r["connection"] for r in server.seen] == [1, 2]

    run(main)


# --- kept-alive connections the server closed ----------------------------------------------
@pytest.mark.parametrize("first_use", ["after a request", "pre-opened"])
@pytest.mark.parametrize("noticed", [True, False], ids=["close already seen", "close not yet seen"])
def test_a_connection_the_server_closed_while_idle_costs_no_error_and_no_duplicate(run, first_use, noticed):
    """``noticed=False`` is the race: the FIN is on the client's socket, its loop has not read it yet."""
    async def handler(conn):
        if conn.number == 1:
            if first_use == "after a request":
                await conn.request()
                await conn.send(sized(completion()))
            await forever()  # the test closes it
        await answering(sized(completion()))(conn)

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            if first_use == "pre-opened":
                assert await s.client.warm(1) == 1
                while not server.conns:
                    await asyncio.sleep(0)
            else:
                assert (await s.ask(0, stream=False)).error is None
            server.conns[0].close()
            if noticed:
                await settle()
            done = asyncio.get_running_loop().create_future()
            s.client.start(*s.args(1), stream=False, planned_input=5, on_done=done.set_result)
            rec = await done
            await settle()
            assert rec.error is None
            assert server.ids().count("r1") == 1
            assert server.seen[-1]["connection"] == 2

    run(main)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_request_the_server_may_have_processed_is_never_sent_again(run, how):
    """The server read the request on a reused connection and hung up without a byte of answer:
    it may have generated the whole completion, so sending it again would double the load."""
    async def handler(conn):
        if conn.number > 1:
            return await answering(sized(completion()))(conn)
        await conn.request()
        await conn.send(sized(completion()))
        await conn.request()
        conn.reset() if how == "reset" else conn.close()

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            assert (await s.ask(0, stream=False)).error is None
            rec = await s.ask(1, stream=False)
            for _ in range(10):
                await settle()
            assert rec.error == "disconnected"
            assert server.ids() == ["r0", "r1"]

    run(main)


def test_bytes_left_on_an_idle_connection_are_never_taken_for_the_next_answer(run):
    """A server that answered twice: the stray second answer must not become the next request's."""
    stray = sized(completion(99))

    async def handler(conn):
        if conn.number == 1:
            await conn.request()
            await conn.send(sized(completion(1)))
            await forever()
        await answering(sized(completion(2)), sized(completion(2)))(conn)

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            assert (await s.ask(0, stream=False)).output_tokens == 1
            server.conns[0].sock.send(stray)  # not yet read by the client's loop when the next request starts
            done = asyncio.get_running_loop().create_future()
            s.client.start(*s.args(1), stream=False, planned_input=5, on_done=done.set_result)
            rec = await done
            assert (rec.error, rec.output_tokens) == (None, 2)
            assert (await s.ask(2, stream=False)).output_tokens == 2

    run(main)


# --- stalls, resets, garbage ------------------------------------------------------------------
STALLS = {
    "before the head": b"",
    "mid-head": head(200, "Transfer-Encoding: chunked")[:20],
    "mid-chunk": streamed(sse())[:150],
    "between chunks": streamed(sse(TEXTS[:2], usage=False, done=False))[:-5],  # two whole chunks, no last one
    "mid-Content-Length body": sized(sse())[:120],
    "in a body without length": head(200) + sse()[:100],
}


@pytest.mark.parametrize("partial", STALLS.values(), ids=STALLS.keys())
def test_a_server_that_stalls_times_out_and_leaves_no_partial_tokens(run, partial):
    async def handler(conn):
        if conn.number == 1:
            await conn.request()
            await conn.send(partial)
            await conn.hangs_up()
        else:
            await answering(streamed(sse()))(conn)

    async def main():
        async with RawServer(handler) as server, Session(server.url, timeout_s=0.3) as s:
            rec = await s.ask(0)
            assert (rec.error, rec.token_ns) == ("timeout", [])
            while not server.conns[0].peer_closed:  # the stalled connection is closed, not pooled
                await asyncio.sleep(0.001)
            assert_streamed_ok(await s.ask(1))

    run(main)


GARBAGE = {
    "not HTTP": [b"garbage\r\n\r\n"],
    "an SSH banner, connection kept open": [b"SSH-2.0-OpenSSH_9.6\r\n"],
    "HTML, then close": [b"<html>oops</html>", b""],
    "an HTTP/2 frame": [b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"],
    "HTTP/2 status line": [b"HTTP/2 200\r\n\r\n"],
    "status not a number": [b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}"],
    "Content-Length not a number": [head(200, "Content-Length: ten") + b"{}"],
    "chunk size not hex": [head(200, "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"],
    "negative chunk size": [head(200, "Transfer-Encoding: chunked") + b"-5\r\nhello\r\n0\r\n\r\n"],
    "head over 64 KiB": [b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000],
}


@pytest.mark.parametrize("pieces", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_server_that_does_not_speak_http_is_a_client_error_at_once(run, pieces):
    async def handler(conn):
        if conn.number > 1:
            return await answering(streamed(sse()))(conn)
        await conn.request()
        for piece in pieces:
            if piece:
                await conn.send(piece)
            else:
                conn.close()
                return
        await conn.hangs_up()

    async def main():
        async with RawServer(handler) as server, Session(server.url, timeout_s=5) as s:
            rec = await s.ask(0)
            assert (rec.error, rec.token_ns) == ("client_error", [])
            assert_streamed_ok(await s.ask(1))

    run(main)


RESETS = {
    "chunked SSE": (streamed(sse())[:200], True),
    "Content-Length SSE": (sized(sse())[:200], True),
    "SSE without length": (head(200) + sse()[:150], True),
    "Content-Length JSON": (sized(completion())[:100], False),
    "JSON without length": (head(200) + completion()[:30], False),
    "head": (head(200, "Content-Length: 10")[:20], False),
}


@pytest.mark.parametrize("partial,stream", RESETS.values(), ids=RESETS.keys())
def test_a_connection_reset_mid_response_is_a_disconnect(run, partial, stream):
    async def handler(conn):
        if conn.number == 1:
            await conn.request()
            await conn.send(partial)
            conn.reset()
        else:
            await answering(streamed(sse()))(conn)

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            rec = await s.ask(0, stream=stream)
            assert (rec.error, rec.token_ns) == ("disconnected", [])
            assert_streamed_ok(await s.ask(1))
            assert server.ids() == ["r0", "r1"]

    run(main)


@pytest.mark.parametrize("partial,stream,error", [
    (streamed(sse())[:200], True, "disconnected"),
    (sized(completion())[:100], False, "disconnected"),
    (head(200) + sse()[:150], True, "incomplete_stream"),  # a FIN is how this body ends: it ended early
    (head(200) + completion()[:30], False, "malformed_body"),
], ids=["chunked", "Content-Length", "SSE without length", "JSON without length"])
def test_a_server_closing_mid_response_is_counted_as_a_failure(run, partial, stream, error):
    async def handler(conn):
        await conn.request()
        await conn.send(partial)

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            rec = await s.ask(0, stream=stream)
            assert rec.error == error
            assert len(server.conns) == 1

    run(main)


def test_a_refused_connection_is_a_connect_error(run):
    async def main():
        with socket.create_server(("127.0.0.1", 0)) as placeholder:
            port = placeholder.getsockname()[1]
        async with Session(f"http://127.0.0.1:{port}/v1/completions") as s:
            assert (await s.ask(0)).error == "connect_error"

    run(main)


# --- sizes ----------------------------------------------------------------------------------
def test_large_heads_events_and_bodies_are_read_whole(run):
    big_head = head(200, "Transfer-Encoding: chunked", *(f"X-Pad-{i}: {'a' * 1000}" for i in range(60)))
    long_token = sse((" " + "é" * 500_000,))  # one event of 1 MB
    json_body = completion(500_000)  # 3.5 MB
    responses = [
        [big_head[i : i + 1000] for i in range(0, len(big_head), 1000)] + [chunked(sse())],
        [head(200, "Transfer-Encoding: chunked")] + [chunked(long_token, 16_384)],
        sized(json_body),
        head(200, "Transfer-Encoding: chunked") + chunked(json_body, len(json_body)),
    ]

    async def main():
        async with RawServer(answering(*responses)) as server, Session(server.url) as s:
            assert_streamed_ok(await s.ask(0))
            assert_streamed_ok(await s.ask(1), tokens=1)
            for i in (2, 3):
                rec = await s.ask(i, stream=False)
                assert (rec.error, rec.output_tokens) == (None, 500_000)
            assert len(server.conns) == 1

    run(main)


# --- many requests sharing the pool ---------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False])
def test_concurrent_requests_each_get_their_own_answer(run, stream):
    """Each request asks for its own number of tokens; the server answers in random order,
    with random chunking, and fails every seventh: no record may carry another's answer."""
    rng = random.Random(7)

    async def handler(conn):
        while (req := await conn.request()) is not None:
            n = req["max_tokens"]
            await asyncio.sleep(rng.random() / 500)
            if n % 7 == 0:
                await conn.send(sized(ERROR_BODY, 503))
                continue
            if stream:
                wire = streamed(sse([f" t{k}" for k in range(n)]), rng.choice([None, 3, 50]))
            else:
                wire = sized(completion(n))
            cut = rng.randrange(1, len(wire))
            await conn.send(wire[:cut], wire[cut:])

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            lanes, per_lane, wanted = 12, 15, {}

            async def lane(k):
                records = []
                for j in range(per_lane):
                    i = k * per_lane + j
                    wanted[i] = i + 1
                    records.append(await s.ask(i, stream=stream, max_tokens=wanted[i]))
                return records

            # a burst started by plain calls, as the rate mode does, beside lanes as the concurrency mode does
            done: list[RequestRecord] = []
            finished = asyncio.get_running_loop().create_future()

            def on_done(rec):
                done.append(rec)
                if len(done) == 40:
                    finished.set_result(None)

            for i in range(1000, 1040):
                wanted[i] = 100 + i % 100
                s.client.start(*s.args(i, wanted[i]), stream=stream, planned_input=5, on_done=on_done)
            records = [r for recs in await asyncio.gather(*(lane(k) for k in range(lanes))) for r in recs]
            await finished
            records += done
            for rec in records:
                n = wanted[rec.index]
                if n % 7 == 0:
                    assert (rec.error, rec.status) == ("http_503", 503), rec
                else:
                    assert (rec.error, rec.output_tokens) == (None, n), rec
                    assert len(rec.token_ns) == (n if stream else 1)
            assert len(records) == len(wanted)
            assert sorted(server.ids()) == sorted(rec.request_id for rec in records)
            assert len(server.conns) <= lanes + 40

    run(main)


# --- HTTPS ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("trusted", [True, False])
def test_https_verifies_the_server_against_the_trusted_certificates(run, certificate, monkeypatch, trusted):
    """The client verifies with the default trust store, which SSL_CERT_FILE extends: a
    self-signed server works once trusted, and is refused as a connect error before that."""
    cert, key = certificate
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        try:
            while head_bytes := await reader.readuntil(b"\r\n\r\n"):
                length = int(head_bytes.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(streamed(sse()))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            async with Session(f"https://127.0.0.1:{port}/v1/completions") as s:
                if trusted:
                    assert_streamed_ok(await s.ask(0))
                    assert_streamed_ok(await s.ask(1))
                    assert len(connections) == 1
                else:
                    assert (await s.ask(0)).error == "connect_error"
        finally:
            server.close()
            await server.wait_closed()
            for writer in connections:
                writer.close()
            await settle()

    run(main)
