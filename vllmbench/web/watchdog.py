"""A deadline on reading a request body, whatever server runs the app.

A client that sends its headers and then stalls (or trickles a byte now and then)
holds a worker thread for as long as it likes: gunicorn's threaded worker, which
functions-framework runs, and werkzeug's server both read bodies without a deadline.
One thread per process watches the bodies being read; when one is late it shuts the
read side of that connection, the blocked read returns, and the request is answered
408 with the connection closed. Per-read socket timeouts would not do: a client that
sends one byte before each timeout would never be cut.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any


class Watch:
    __slots__ = ("deadline", "sock", "fired", "done")

    def __init__(self, deadline: float, sock: Any) -> None:
        self.deadline = deadline
        self.sock = sock
        self.fired = False
        self.done = False


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: Any, timeout_s: float) -> Watch:
        entry = Watch(time.monotonic() + timeout_s, sock)
        with self._cond:
            heapq.heappush(self._heap, (entry.deadline, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="body-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return entry

    def finish(self, entry: Watch) -> bool:
        """Stop watching; True when the deadline had passed and the read side was cut."""
        with self._cond:
            entry.done = True
            return entry.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._heap)
                entry.fired = True
                try:
                    entry.sock.shutdown(socket.SHUT_RD)  # the blocked recv returns b""
                except OSError:
                    pass


_watchdog = Watchdog()


def connection_socket(environ: dict[str, Any]) -> Any:
    """The client's socket, as gunicorn and werkzeug's server put it in the WSGI environ."""
    return environ.get("gunicorn.socket") or environ.get("werkzeug.socket")


def watch(environ: dict[str, Any], timeout_s: float) -> Watch | None:
    sock = connection_socket(environ)
    return _watchdog.watch(sock, timeout_s) if sock is not None else None


def finish(entry: Watch | None) -> bool:
    return entry is not None and _watchdog.finish(entry)
