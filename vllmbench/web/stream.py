"""Long streamed answers (followed logs): noticing that the client went away.

A streamed body only learns of a closed connection when it next writes, and a log may
be silent for minutes. The WSGI servers we run under (werkzeug's, gunicorn's threaded
worker) hand the socket over in the environ; a readable socket that returns no bytes
on a peek has been closed by the peer.
"""

from __future__ import annotations

import select
import socket
from typing import Any


def client_gone(environ: dict[str, Any]) -> bool:
    """True when the client has closed its end of the connection."""
    sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (OSError, ValueError):
        return True
