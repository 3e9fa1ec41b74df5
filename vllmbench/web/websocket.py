"""WebSocket routes of a function (the deployer's terminal), under functions-framework.

functions-framework routes every request through one catch-all Flask rule, which
werkzeug refuses to match for a WebSocket upgrade (its rules are HTTP-only). The
factory therefore registers a ``before_request`` hook on the functions-framework app
while the function module is imported (functions-framework imports it inside the
app's context): upgrade requests to a declared WebSocket route are answered there,
before routing. The connection itself is simple-websocket's ``Server``, which works
under werkzeug's server (tests) and gunicorn's threaded worker (production), as
flask-sock does.
"""

from __future__ import annotations

import contextlib
from typing import Any


def is_upgrade(environ: dict[str, Any]) -> bool:
    connection = environ.get("HTTP_CONNECTION", "").lower()
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket" and "upgrade" in connection


def accept(environ: dict[str, Any], *, max_message_size: int = 1024 * 1024, ping_interval: float | None = 25) -> Any:
    """The WebSocket of this request (handshake done)."""
    from simple_websocket import Server

    for key in ("werkzeug.socket", "gunicorn.socket"):
        sock = environ.get(key)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(None)  # a terminal may stay quiet for minutes: no read timeout here
    return Server(environ, max_message_size=max_message_size, ping_interval=ping_interval)


def finished_response(ws: Any) -> Any:
    """What the WSGI app returns once the handler is done with the socket (as flask-sock does)."""
    import flask

    with contextlib.suppress(Exception):
        ws.close()
    mode = ws.mode

    class WebSocketResponse(flask.Response):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if mode == "gunicorn":
                raise StopIteration()
            if mode == "werkzeug":
                return super().__call__(*args, **kwargs)
            return []

    return WebSocketResponse()


def install_hook(dispatch: Any) -> bool:
    """Route WebSocket upgrades of the functions-framework app being built to ``dispatch``.

    Returns False when no Flask app is being built (the module was imported elsewhere).
    """
    import flask

    if not flask.has_app_context():
        return False
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    if getattr(app, "_vllmbench_ws_hook", False):
        return True

    def hook() -> Any:
        if is_upgrade(flask.request.environ):
            return dispatch(flask.request)
        return None

    app.before_request(hook)
    app._vllmbench_ws_hook = True  # type: ignore[attr-defined]
    return True
