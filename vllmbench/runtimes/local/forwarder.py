"""A Service's forwarder: ``python -m vllmbench.runtimes.local.forwarder <service dir>``.

A detached asyncio process (uvloop where installed) that listens on the Service's host
ports and splices each connection to one ready pod behind it, round robin per
connection. It carries benchmark traffic, so it stays at the transport level: protocol
callbacks, no stream objects, writes straight through with flow control both ways
(reading pauses while the other side's buffer is over 4 MiB), TCP_NODELAY as asyncio sets it.

Endpoints (pods matching the selector, Ready, not being deleted, with the host port of the
target port) are re-read every half second and at once when no endpoint is known; the
Service's config is re-read when its file changes. A connection that finds no endpoint is
closed, as a Service without endpoints refuses.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local.procs import detached_main, read_json, write_json

MODULE = "vllmbench.runtimes.local.forwarder"
REFRESH_S = 0.5
HIGH_WATER = 4 * 2**20


_files: dict[Path, tuple[tuple[int, int], Any]] = {}


def _read(path: Path) -> Any:
    """A JSON file, parsed again only when it was replaced (the refresh runs twice a second)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        _files.pop(path, None)
        return None
    key = (st.st_ino, st.st_mtime_ns)
    hit = _files.get(path)
    if hit is None or hit[0] != key:
        hit = (key, read_json(path))
        _files[path] = hit
    return hit[1]


def endpoints(root: Path, config: dict[str, Any]) -> dict[int, list[int]]:
    """Service port -> host ports of the ready pods behind it."""
    namespace, selector = config["namespace"], config.get("selector") or {}
    out: dict[int, list[int]] = {p["port"]: [] for p in config["ports"]}
    if not selector:
        return out
    objects = root / "objects" / "pods" / namespace
    try:
        names = sorted(n for n in os.listdir(objects) if n.endswith(".json"))
    except FileNotFoundError:
        return out
    for file_name in names:
        pod = _read(objects / file_name)
        if not pod or pod["metadata"].get("deletionTimestamp"):
            continue
        labels = pod["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        pod_dir = root / "pods" / namespace / pod["metadata"]["name"]
        status = _read(pod_dir / "status.json") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        plan = _read(pod_dir / "plan.json") if ready else None
        if not plan:
            continue
        host_ports = {}
        for c in plan["containers"]:
            host_ports.update({int(k): v for k, v in c["ports"].items()})
        names_ = {p["name"]: p["containerPort"] for c in (pod.get("spec") or {}).get("containers") or []
                  for p in c.get("ports") or [] if p.get("name")}
        for port in config["ports"]:
            target = port["targetPort"]
            target = names_.get(target) if isinstance(target, str) and not target.isdigit() else int(target)
            if target in host_ports:
                out[port["port"]].append(host_ports[target])
    return out


class _Side(asyncio.Protocol):
    """One end of a spliced connection; ``peer`` is the other end."""

    def __init__(self, on_made: Callable[["_Side"], None] | None = None) -> None:
        self.on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # client bytes that arrived before the pod's end was connected
        self.eof = False  # the client half-closed before the pod's end was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=HIGH_WATER)
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer is not None and self.peer.transport is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True  # keep the other direction open (half close)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        self.peer = None


class Forwarder:
    def __init__(self, service_dir: Path) -> None:
        self.dir = service_dir
        self.root = service_dir.parents[2]
        self.config: dict[str, Any] = read_json(service_dir / "config.json") or {}
        self.config_mtime = 0
        self.backends: dict[int, list[int]] = {}
        self.turn = itertools.count()
        self.servers: list[asyncio.AbstractServer] = []

    def refresh(self) -> None:
        try:
            mtime = os.stat(self.dir / "config.json").st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self.config_mtime:
            self.config = read_json(self.dir / "config.json") or self.config
            self.config_mtime = mtime
        self.backends = endpoints(self.root, self.config)

    async def _connect(self, client: _Side, service_port: int) -> None:
        loop = asyncio.get_running_loop()
        choices = self.backends.get(service_port) or []
        if not choices:
            self.refresh()
            choices = self.backends.get(service_port) or []
        start = next(self.turn)
        for attempt in range(len(choices)):
            host_port = choices[(start + attempt) % len(choices)]
            try:
                _, pod_side = await loop.create_connection(_Side, "127.0.0.1", host_port)
            except OSError:
                continue
            if client.transport is None or client.transport.is_closing():
                pod_side.transport.close()
                return
            pod_side.peer, client.peer = client, pod_side
            for chunk in client.pending:
                pod_side.transport.write(chunk)
            client.pending.clear()
            if client.eof:
                pod_side.transport.write_eof()
            client.transport.resume_reading()
            return
        if client.transport is not None:
            client.transport.abort()

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.refresh()
        for port in self.config["ports"]:
            def accept(service_port: int = port["port"]) -> _Side:
                return _Side(on_made=lambda side, p=service_port: self._accepted(side, p))

            self.servers.append(await loop.create_server(accept, "127.0.0.1", port["hostPort"], reuse_address=True,
                                                         backlog=2048))
        write_json(self.dir / "listening.json", {"ports": sorted(p["hostPort"] for p in self.config["ports"]),
                                                 "pid": os.getpid()})
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), REFRESH_S)
            except asyncio.TimeoutError:
                self.refresh()
        for server in self.servers:
            server.close()

    def _accepted(self, side: _Side, service_port: int) -> None:
        if side.transport is None:
            return
        side.transport.pause_reading()
        asyncio.ensure_future(self._connect(side, service_port))


def main(argv: list[str]) -> int:
    service_dir = detached_main(argv, MODULE)
    if service_dir is None:
        return 2
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(Forwarder(service_dir).main())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
