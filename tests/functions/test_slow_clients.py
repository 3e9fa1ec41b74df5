"""Clients that send their headers and then stall cannot freeze a function.

Production serves with functions-framework's gunicorn: one worker with a fixed number
of threads (THREADS, 4 per CPU by default). Each stalled upload holds a thread until
its body deadline (VLLMBENCH_BODY_TIMEOUT_S) cuts it with 408; then /health answers.
"""

from __future__ import annotations

import socket
import time

import requests

THREADS = 2
TIMEOUT_S = 1.5


def _stall(port: int, path: str, *, declared: int = 1000, sent: bytes = b"{") -> socket.socket:
    """Headers promising ``declared`` bytes, then ``sent`` and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + sent)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_stalled_uploads_on_every_thread_are_cut_with_408_and_health_answers(serve_production):
    served = serve_production("results", THREADS=str(THREADS), VLLMBENCH_BODY_TIMEOUT_S=str(TIMEOUT_S))
    stalled = [_stall(served.port, "/raw_input") for _ in range(THREADS + 2)]
    time.sleep(0.3)  # every thread is now reading a body that will not come
    started = time.monotonic()
    health = requests.get(served.url + "/health", timeout=TIMEOUT_S * 4 + 5)
    assert health.status_code == 200
    assert time.monotonic() - started < TIMEOUT_S * 3 + 2
    for sock in stalled:
        answer = _answer(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error":"request_timeout"' in answer
    assert requests.get(served.url + "/health", timeout=5).status_code == 200


def test_a_trickling_upload_is_cut_at_the_deadline_too(serve_production):
    served = serve_production("results", THREADS=str(THREADS), VLLMBENCH_BODY_TIMEOUT_S=str(TIMEOUT_S))
    sock = _stall(served.port, "/raw_input", sent=b"")
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.3)
    while time.monotonic() - started < TIMEOUT_S * 4:  # one byte every 0.3 s: each read makes progress
        try:
            sock.sendall(b" ")
            answer = sock.recv(65536)
            if answer:
                break
        except TimeoutError:
            continue
        except OSError:
            break
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < TIMEOUT_S * 3


def test_the_test_server_cuts_stalled_uploads_the_same_way(serve_function):
    served = serve_function("results", body_timeout_s=TIMEOUT_S)
    port = int(served.url.rsplit(":", 1)[1])
    stalled = [_stall(port, "/standardized_output") for _ in range(3)]
    for sock in stalled:
        answer = _answer(sock)
        sock.close()
        assert answer.split(b"\r\n")[0].endswith(b"408 REQUEST TIMEOUT"), answer[:200]
        assert b"connection: close" in answer.lower()


def test_a_body_shorter_than_its_content_length_is_400(serve_function):
    served = serve_function("results")
    port = int(served.url.rsplit(":", 1)[1])
    sock = _stall(port, "/raw_input", declared=1000, sent=b'{"run_id": "x"}')
    sock.shutdown(socket.SHUT_WR)  # the client is gone
    answer = _answer(sock)
    sock.close()
    assert b" 400 " in answer.split(b"\r\n")[0], answer[:200]
