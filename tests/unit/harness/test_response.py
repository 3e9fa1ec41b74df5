"""The response reader beyond the wire formats of test_h1: a huge chunk read as it arrives,
tokens read together although the server sent them apart, usage in the last token event,
and bytes that do not belong to the answer. Servers on 127.0.0.1 write exact bytes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

from tests.unit.harness.test_h1 import (  # noqa: F401 - run is a fixture
    RawServer, Session, answering, assert_streamed_ok, head, run, sized,
)


def event(text: str) -> bytes:
    return ('data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n'
            % text).encode()


def frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


STREAM_HEAD = head(200, "Content-Type: text/event-stream", "Transfer-Encoding: chunked")
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":9}}\n\n'
END = frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def test_a_32_mb_chunk_is_read_as_it_arrives_not_gathered_whole(run):
    """One chunk of 32 MB holding 8,192 token events, written in two halves 0.3 s apart: the
    events of the first half are timestamped when they arrive, before the second half is sent."""
    events = [event(" " + "x" * 4000) for _ in range(8192)]
    payload = b"".join(events) + USAGE % len(events)
    half = len(payload) // 2

    async def handler(conn):
        await conn.request()
        await conn.send(STREAM_HEAD + b"%x\r\n" % len(payload) + payload[:half])
        await asyncio.sleep(0.3)
        await conn.send(payload[half:] + b"\r\n" + END)
        await conn.hangs_up()

    async def main():
        async with RawServer(handler) as server, Session(server.url) as s:
            rec = await s.ask(0)
            assert (rec.error, rec.output_tokens, len(rec.token_ns)) == (None, 8192, 8192)
            first_half = half // len(events[0])
            assert rec.token_ns[first_half - 1] < rec.token_ns[-1] - 200_000_000
            assert len(server.conns) == 1

    run(main)


def test_tokens_the_server_sent_apart_and_the_client_read_together_are_counted(run):
    """The server (a thread) writes three token chunks 40 ms apart while the client's loop is
    blocked for 300 ms: the client reads them in one go and counts two as read together. Three
    events in one chunk were written together by the server and are not counted."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        for together in (False, True):
            sock, _ = listener.accept()
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += sock.recv(65536)
                sock.sendall(STREAM_HEAD)
                if together:
                    sock.sendall(frame(event(" a") + event(" b") + event(" c")))
                else:
                    for text in (" a", " b", " c"):
                        sock.sendall(frame(event(text)))
                        time.sleep(0.04)
                sock.sendall(frame(USAGE % 3) + END)
                sock.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main():
        loop = asyncio.get_running_loop()
        for together in (False, True):
            async with Session(f"http://127.0.0.1:{port}/v1/completions") as s:
                await s.client.warm(1)
                asking = loop.create_task(s.ask(0))
                await asyncio.sleep(0)  # the request is written to the idle connection at once
                if not together:
                    time.sleep(0.3)  # the loop is held: the head and the three chunks pile up in the socket
                rec = await asking
                assert_streamed_ok(rec, 3)
                assert len(set(rec.token_ns)) == 1  # read in one go
                assert s.client.chunked_tokens == 3
                assert s.client.coalesced_tokens == (0 if together else 2)

    try:
        run(main)
    finally:
        listener.close()
        thread.join(5)


def test_usage_sent_in_the_last_token_event_is_read(run):
    last = event(" end")[:-3] + b',"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n'
    wire = STREAM_HEAD + frame(event(" a")) + frame(event(" b")) + frame(last) + END

    async def main():
        async with RawServer(answering(wire)) as server, Session(server.url) as s:
            rec = await s.ask(0)
            assert (rec.error, rec.output_tokens, rec.tokens_from, len(rec.token_ns)) == (None, 3, "server", 3)

    run(main)


def test_chunk_data_longer_than_its_size_line_is_a_client_error(run):
    wire = STREAM_HEAD + b"5\r\n" + event(" a") + b"\r\n" + END

    async def main():
        async with RawServer(answering(wire)) as server, Session(server.url) as s:
            rec = await s.ask(0)
            assert (rec.error, rec.token_ns) == ("client_error", [])

    run(main)


def test_bytes_after_a_body_keep_the_connection_from_being_used_again(run):
    """Anything after the end of an answer in the same read cannot belong to a request not yet
    sent: the connection is closed and the next request gets a fresh one."""
    body = json.dumps({"choices": [{"text": " a b"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode()

    async def main():
        async with RawServer(answering(sized(body) + b"HTTP/1.1 200 OK\r\n", sized(body))) as server, \
                Session(server.url) as s:
            first = await s.ask(0, stream=False)
            second = await s.ask(1, stream=False)
            assert (first.error, first.output_tokens) == (second.error, second.output_tokens) == (None, 2)
            assert len(server.conns) == 2

    run(main)
