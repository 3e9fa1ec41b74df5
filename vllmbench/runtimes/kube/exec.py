"""An interactive process in a pod through the API server's exec WebSocket (channel protocol
v4/v5 of the ``kubernetes`` client's ``WSClient``)."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import Any
from urllib.parse import quote

from vllmbench.errors import DependencyUnavailable, UserError

STDOUT, STDERR, ERROR, RESIZE = 1, 2, 3, 4


def exit_code(status: dict[str, Any]) -> int:
    """The exit code in an exec's final Status: a kubelet names it in a cause of reason
    ExitCode; some runtimes (kwok) only say "exit status N" in the message."""
    if not status or status.get("status") == "Success":
        return 0
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message"))
    found = re.search(r"exit (?:status|code) (\d+)", status.get("message") or "")
    return int(found.group(1)) if found else 1


class KubeExec:
    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._lock = threading.Lock()
        self._exit: int | None = None
        self._closed = False

    @classmethod
    def open(cls, api_client: Any, namespace: str, pod: str, *, container: str | None, command: list[str],
             tty: bool) -> "KubeExec":
        from kubernetes.stream import ws_client

        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
        query: list[tuple[str, Any]] = [("command", part) for part in command]
        query += [("stdin", "true"), ("stdout", "true"), ("stderr", "false" if tty else "true"),
                  ("tty", "true" if tty else "false")]
        if container:
            query.append(("container", container))
        _, url, headers, _, _ = api_client.param_serialize("GET", path, query_params=query,
                                                           auth_settings=["BearerToken"])
        # create_websocket only forwards a lower-case "authorization" header
        headers = {key.lower(): value for key, value in headers.items()}
        try:
            ws = ws_client.WSClient(api_client.configuration, ws_client.get_websocket_url(url), headers,
                                    capture_all=False, binary=True)
        except Exception as exc:
            text = str(exc)
            if "404" in text or "403" in text or "400" in text:
                raise UserError(f"cannot open a shell in pod {namespace}/{pod}: {text[:300]}") from exc
            raise DependencyUnavailable("kubernetes", f"exec into pod {namespace}/{pod} failed: {text[:300]}") from exc
        return cls(ws)

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._ws.is_open():
                self._ws.write_channel(0, data)

    def read(self, timeout_s: float) -> bytes | None:
        with self._lock:
            if not self._ws.is_open():
                rest = self._drain()
                if rest:
                    return rest
                self._finish()
                return None
            self._ws.update(timeout=timeout_s)
            return self._drain()

    def _drain(self) -> bytes:
        out = b""
        for channel in (STDOUT, STDERR):
            data = self._ws.read_channel(channel)
            if data:
                out += data if isinstance(data, bytes) else data.encode()
        return out

    def _finish(self) -> None:
        if self._exit is not None:
            return
        raw = self._ws.read_channel(ERROR)
        try:
            status = json.loads(raw) if raw else {}
        except ValueError:
            status = {}
        self._exit = exit_code(status)

    def resize(self, cols: int, rows: int) -> None:
        with self._lock:
            if self._ws.is_open():
                self._ws.write_channel(RESIZE, json.dumps({"Width": int(cols), "Height": int(rows)}))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._ws.close()
        # websocket-client skips the socket once the server closed the stream; shut it anyway
        with contextlib.suppress(Exception):
            self._ws.sock.shutdown()

    @property
    def exit_code(self) -> int | None:
        return self._exit
