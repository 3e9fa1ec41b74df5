"""Terminals into the pods of vllmbench's Jobs: sessions, tickets, and the WebSocket protocol.

1. ``POST /terminal/create`` (or ``/jobs/{job}/terminal``), with the API token: picks the
   pod and container, checks the cap on open sessions, answers a session id and a
   one-time ticket valid for :data:`TICKET_S` seconds.
2. ``WS /terminal/{session_id}``: the first message is ``{"type": "auth", "ticket": ...}``
   (or ``"token"``: the API token). A browser cannot send headers on a WebSocket, and a
   secret in the URL would reach access logs, so it travels in a message.
3. Then the original protocol: client ``{"type": "input", "data"}`` and
   ``{"type": "resize", "cols", "rows"}``; server ``{"type": "output", "data"}`` and
   ``{"type": "error", "message"}``; besides, ``ready`` once the shell runs, ``exit``
   with its code, and ``pong`` for a ``ping``.

The session closes when the shell exits, the client goes, it stays idle for the idle
timeout, or ``DELETE /terminal/{id}`` asks (from any replica). One audit line is
logged when a session opens and one when it closes: who, which pod, when, how long;
never what was typed.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from typing import Any

from vllmbench.errors import Forbidden, NotFound, RetryableError, TooManyRequests, UserError
from vllmbench.jobs import find_job, job_pods
from vllmbench.logs import get_logger, info
from vllmbench.models.deployments import SHELLS
from vllmbench.runtimes.base import MANAGED_BY, MANAGED_BY_VALUE, OWNER, Runtime
from vllmbench.store.terminals import TerminalSessions, ticket_hash

log = get_logger("vllmbench.terminal")
audit = get_logger("vllmbench.audit")
TICKET_S = 60
AUTH_WAIT_S = 10.0
STORE_CHECK_S = 1.0
HOLDER = f"{socket.gethostname()}:{os.getpid()}"


def who(settings: Any, request: Any) -> str:
    """The caller, for the audit log: which credential (a fingerprint, never the token) and from where."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    credential = f"api-token:{hashlib.sha256(token.encode()).hexdigest()[:8]}" if token else "anonymous (no token set)"
    address = request.headers.get("X-Forwarded-For", request.remote_addr or "?").split(",")[0].strip()
    return f"{credential} from {address}"


def create_session(settings: Any, db: Any, runtime: Runtime, *, job_name: str, namespace: str | None,
                   pod_name: str | None, container_name: str | None, shell: str, cols: int, rows: int,
                   caller: str) -> dict[str, Any]:
    if shell not in SHELLS:
        raise UserError(f"shell {shell!r} is not offered; choose one of {', '.join(SHELLS)}")
    job = find_job(runtime, settings.workload_namespaces, job_name, namespace)
    labels = job["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGED_BY_VALUE:
        raise Forbidden(f"job {job_name!r} is not managed by vllmbench (no {MANAGED_BY}={MANAGED_BY_VALUE} label): "
                        "terminals open only into pods of vllmbench's jobs")
    pods = job_pods(runtime, job)
    if pod_name is not None:
        pods = [p for p in pods if p["metadata"]["name"] == pod_name]
        if not pods:
            raise NotFound(f"job {job_name!r} has no pod {pod_name!r}")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        phases = ", ".join(f"{p['metadata']['name']}: {(p.get('status') or {}).get('phase')}" for p in pods) or "none"
        raise UserError(f"job {job_name!r} has no running pod to open a shell in (pods: {phases})")
    pod = running[-1]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = container_name or (containers[0] if containers else None)
    if container not in containers:
        raise NotFound(f"pod {pod['metadata']['name']} has no container {container!r}; it has {', '.join(containers)}")
    sessions = TerminalSessions(db)
    if sessions.count_open() >= settings.terminal_max_sessions:
        raise TooManyRequests(f"{settings.terminal_max_sessions} terminal sessions are open (the cap, "
                              "VLLMBENCH_TERMINAL_MAX_SESSIONS); close one (DELETE /terminal/<id>) and try again")
    import datetime as dt

    session_id, ticket = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    doc = {"_id": session_id, "job": job_name, "namespace": job["metadata"]["namespace"],
           "pod": pod["metadata"]["name"], "container": container, "shell": shell, "cols": cols, "rows": rows,
           "owner": labels.get(OWNER), "created_by": caller, "ticket_hash": ticket_hash(ticket),
           "ticket_expires_at": dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=TICKET_S)}
    sessions.create(doc)
    return {"session_id": session_id, "ticket": ticket, "ticket_expires_in_s": TICKET_S,
            "websocket": f"/terminal/{session_id}", "job": job_name, "namespace": doc["namespace"],
            "pod": doc["pod"], "container": container, "shell": shell,
            "first_message": {"type": "auth", "ticket": "<ticket>"}}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("job", "namespace", "pod", "container", "shell", "state", "created_at", "opened_at", "closed_at",
            "close_reason", "created_by", "holder")
    return {"session_id": doc["_id"], **{k: doc.get(k) for k in keep}}


def serve(settings: Any, db: Any, runtime: Runtime, ws: Any, session_id: str, *, caller: str) -> None:
    """Run one terminal session over ``ws`` until it ends (see the module docstring)."""
    from simple_websocket import ConnectionClosed

    sessions = TerminalSessions(db)
    try:
        session = _authenticate(settings, sessions, ws, session_id)
    except ConnectionClosed:
        return
    if session is None:
        return
    started = time.monotonic()
    reason = "client closed"
    audit.info("terminal opened", extra={"fields": {"session": session_id, "who": caller, "job": session["job"],
                                                    "namespace": session["namespace"], "pod": session["pod"],
                                                    "container": session["container"], "shell": session["shell"]}})
    channel = None
    try:
        channel = runtime.exec(session["namespace"], session["pod"], container=session["container"],
                               command=[session["shell"]], tty=True)
        channel.resize(session.get("cols") or 80, session.get("rows") or 24)
        _send(ws, {"type": "ready", "pod": session["pod"], "container": session["container"]})
        reason = _pump(settings, sessions, ws, channel, session_id)
    except ConnectionClosed:
        reason = "client closed"
    except (UserError, RetryableError) as exc:
        reason = f"error: {exc.message}"
        _try_send(ws, {"type": "error", "message": exc.message})
    finally:
        if channel is not None:
            channel.close()
        sessions.closed(session_id, reason)
        audit.info("terminal closed", extra={"fields": {"session": session_id, "who": caller, "pod": session["pod"],
                                                        "reason": reason,
                                                        "seconds": round(time.monotonic() - started, 1)}})
        _try_close(ws)


def _authenticate(settings: Any, sessions: TerminalSessions, ws: Any, session_id: str) -> dict[str, Any] | None:
    message = _receive(ws, AUTH_WAIT_S)
    if message is None or message.get("type") != "auth":
        _try_send(ws, {"type": "error", "message": "the first message must be {\"type\": \"auth\", \"ticket\": ...} "
                                                   f"within {AUTH_WAIT_S:.0f} s"})
        _try_close(ws)
        return None
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    given_token = message.get("token")
    if isinstance(given_token, str) and token and hmac.compare_digest(given_token.encode(), token.encode()):
        session = sessions.claim(session_id, None, holder=HOLDER)
    elif isinstance(message.get("ticket"), str):
        session = sessions.claim(session_id, message["ticket"], holder=HOLDER)
    else:
        session = None
    if session is None:
        _try_send(ws, {"type": "error", "message": "unknown session, or a wrong, used or expired ticket: "
                                                   "create a new session"})
        _try_close(ws)
        log.warning("terminal session %s refused: bad or used ticket", session_id)
    return session


def _pump(settings: Any, sessions: TerminalSessions, ws: Any, channel: Any, session_id: str) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    last_input = time.monotonic()
    next_check = time.monotonic() + STORE_CHECK_S
    while True:
        output = channel.read(0.02)
        if output is None:
            tail = decoder.decode(b"", final=True)
            if tail:
                _send(ws, {"type": "output", "data": tail})
            _send(ws, {"type": "exit", "code": channel.exit_code})
            return f"shell exited ({channel.exit_code})"
        if output:
            _send(ws, {"type": "output", "data": decoder.decode(output)})
        message = _receive(ws, 0.02)
        if message is not None:
            kind = message.get("type")
            if kind == "input" and isinstance(message.get("data"), str):
                channel.write(message["data"].encode())
                last_input = time.monotonic()
            elif kind == "resize":
                try:
                    channel.resize(int(message.get("cols")), int(message.get("rows")))
                except (TypeError, ValueError):
                    _send(ws, {"type": "error", "message": "resize needs integer cols and rows"})
            elif kind == "ping":
                _send(ws, {"type": "pong"})
            else:
                _send(ws, {"type": "error", "message": f"unknown message type {kind!r}: expected input, resize or ping"})
        now = time.monotonic()
        if now - last_input > settings.terminal_idle_s:
            _send(ws, {"type": "error", "message": f"closed after {settings.terminal_idle_s} s without input"})
            return "idle timeout"
        if now >= next_check:
            next_check = now + STORE_CHECK_S
            current = sessions.get(session_id) or {}
            if current.get("close_requested"):
                _send(ws, {"type": "error", "message": f"closed: {current['close_requested']}"})
                return str(current["close_requested"])


def _receive(ws: Any, timeout: float) -> dict[str, Any] | None:
    raw = ws.receive(timeout=timeout)
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return {"type": "(not JSON)"}
    return message if isinstance(message, dict) else {"type": "(not an object)"}


def _send(ws: Any, message: dict[str, Any]) -> None:
    ws.send(json.dumps(message))


def _try_send(ws: Any, message: dict[str, Any]) -> None:
    try:
        _send(ws, message)
    except Exception:  # noqa: BLE001 - the client may be gone already
        pass


def _try_close(ws: Any) -> None:
    try:
        ws.close()
    except Exception:  # noqa: BLE001
        pass
