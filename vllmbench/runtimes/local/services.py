"""Services as local ports.

Each port of a Service gets a host port from 30000-32767 (below Linux's ephemeral range,
so that no outgoing connection holds it while the stack is down), chosen from a hash of
namespace/name/port and kept in ``<root>/services/ports.json``: the same Service keeps its
port across re-applies and restarts. The cluster's own port numbers cannot be used: the
stack's functions already hold 8000-8005. One detached forwarder process per Service
(:mod:`.forwarder`) listens on its ports and forwards each connection to a ready pod
matching the selector, round robin.
"""

from __future__ import annotations

import socket
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmbench.errors import NotFound
from vllmbench.runtimes.local import events
from vllmbench.runtimes.local.forwarder import MODULE as FORWARDER
from vllmbench.runtimes.local.procs import is_ours, read_json, read_pid, spawn_detached, stop_pid, write_json

if TYPE_CHECKING:
    from vllmbench.runtimes.local.runtime import LocalRuntime

PORT_RANGE = (30000, 32767)


def folder(rt: "LocalRuntime", namespace: str, name: str) -> Path:
    return rt.root / "services" / namespace / name


def _registry(rt: "LocalRuntime") -> Path:
    return rt.root / "services" / "ports.json"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def forwarder_alive(rt: "LocalRuntime", namespace: str, name: str) -> bool:
    svc_dir = folder(rt, namespace, name)
    return is_ours(read_pid(svc_dir / "forwarder.pid"), FORWARDER, svc_dir)


def allocate(rt: "LocalRuntime", svc: dict[str, Any]) -> list[dict[str, Any]]:
    """Host ports for every port of ``svc`` (under the lock); kept when the Service had them."""
    meta = svc["metadata"]
    registry: dict[str, int] = read_json(_registry(rt)) or {}
    prefix = f"{meta['namespace']}/{meta['name']}/"
    ours_alive = forwarder_alive(rt, meta["namespace"], meta["name"])
    wanted = {f"{prefix}{p['port']}": p for p in (svc.get("spec") or {}).get("ports") or []}
    for key in [k for k in registry if k.startswith(prefix) and k not in wanted]:
        del registry[key]
    taken = set(registry.values())
    out = []
    for key, port in wanted.items():
        host = registry.get(key)
        if host is None or not (ours_alive or _free(host)):
            taken.discard(host)
            span = PORT_RANGE[1] - PORT_RANGE[0] + 1
            start = zlib.crc32(key.encode()) % span
            host = next((PORT_RANGE[0] + (start + i) % span for i in range(span)
                         if PORT_RANGE[0] + (start + i) % span not in taken and _free(PORT_RANGE[0] + (start + i) % span)),
                        None)
            if host is None:
                raise OSError(f"no free port left in {PORT_RANGE[0]}-{PORT_RANGE[1]} for Service {key}")
            registry[key] = host
            taken.add(host)
        out.append({"name": port.get("name", ""), "port": port["port"], "hostPort": host,
                    "targetPort": port.get("targetPort", port["port"])})
    write_json(_registry(rt), registry)
    return out


PORT_ATTEMPTS = 5


def ensure(rt: "LocalRuntime", svc: dict[str, Any]) -> list[dict[str, Any]]:
    """Ports allocated and a forwarder serving them (under the lock).

    A port found free can be taken by another program before the forwarder binds it (another
    runtime on this machine allocates from the same range, where the same Service hashes to the
    same port): a forwarder that dies before it listens, one of its ports now busy, gets ports
    allocated again, up to PORT_ATTEMPTS times."""
    meta = svc["metadata"]
    spec = svc.get("spec") or {}
    svc_dir = folder(rt, meta["namespace"], meta["name"])
    if spec.get("type") == "ExternalName":
        stop(rt, meta["namespace"], meta["name"])
        return []
    previous = read_json(svc_dir / "config.json") or {}
    had = {p["port"]: p["hostPort"] for p in previous.get("ports") or []}
    for _ in range(PORT_ATTEMPTS):
        ports = allocate(rt, svc)
        config = {"namespace": meta["namespace"], "name": meta["name"], "selector": spec.get("selector") or {},
                  "ports": ports}
        write_json(svc_dir / "config.json", config)
        if forwarder_alive(rt, meta["namespace"], meta["name"]) and sorted(had.values()) == sorted(
                p["hostPort"] for p in ports):
            return ports  # the forwarder reads the new selector and target ports by itself
        if rt.stopped:
            return _moved(rt, svc, had, ports)
        stop(rt, meta["namespace"], meta["name"], keep_ports=True)
        pid = spawn_detached(FORWARDER, svc_dir, log=svc_dir / "forwarder.log")
        if _listening(svc_dir, pid, ports):
            return _moved(rt, svc, had, ports)
        if all(_free(p["hostPort"]) for p in ports):  # it did not die of a port taken meanwhile
            break
    raise OSError(f"the forwarder of Service {meta['namespace']}/{meta['name']} did not listen within 10 s; "
                  f"see {svc_dir / 'forwarder.log'}")


def _moved(rt: "LocalRuntime", svc: dict[str, Any], had: dict[int, int],
           ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for port in ports:
        if port["port"] in had and had[port["port"]] != port["hostPort"]:
            events.record(rt.root, svc, "PortChanged", f"port {port['port']} moved from 127.0.0.1:{had[port['port']]} "
                          f"to 127.0.0.1:{port['hostPort']}: another program held the old one", type_="Warning")
    return ports


def _listening(svc_dir: Path, pid: int, ports: list[dict[str, Any]]) -> bool:
    """Whether the forwarder ``pid`` listens on ``ports`` within 10 s; False as soon as it is gone."""
    deadline = time.monotonic() + 10.0
    wanted = sorted(p["hostPort"] for p in ports)
    while time.monotonic() < deadline:
        if (read_json(svc_dir / "listening.json") or {}).get("ports") == wanted:
            return True
        if not is_ours(pid, FORWARDER, svc_dir):
            return (read_json(svc_dir / "listening.json") or {}).get("ports") == wanted
        time.sleep(0.02)
    return False


def stop(rt: "LocalRuntime", namespace: str, name: str, *, keep_ports: bool = True) -> None:
    svc_dir = folder(rt, namespace, name)
    pid = read_pid(svc_dir / "forwarder.pid")
    if pid:
        stop_pid(pid, FORWARDER, svc_dir, timeout_s=5.0)
    (svc_dir / "listening.json").unlink(missing_ok=True)
    if not keep_ports:
        registry = read_json(_registry(rt)) or {}
        prefix = f"{namespace}/{name}/"
        write_json(_registry(rt), {k: v for k, v in registry.items() if not k.startswith(prefix)})
        rt.store.wipe(svc_dir)


def host_port(rt: "LocalRuntime", namespace: str, name: str, port: int) -> int:
    registry = read_json(_registry(rt)) or {}
    found = registry.get(f"{namespace}/{name}/{port}")
    if found is None:
        have = sorted(int(k.rsplit("/", 1)[1]) for k in registry if k.startswith(f"{namespace}/{name}/"))
        raise NotFound(f"Service {namespace}/{name} has no port {port}" + (f" (it has {have})" if have else
                                                                          " (no such Service here)"))
    return found


def namespace_ports(rt: "LocalRuntime", namespace: str) -> list[tuple[str, list[tuple[str, int]]]]:
    """Each Service of the namespace with its (port name, host port) pairs, for the service env vars."""
    registry = read_json(_registry(rt)) or {}
    out = []
    for svc in rt.store.list(rt.kind_of("v1", "Service"), namespace):
        name = svc["metadata"]["name"]
        ports = [(p.get("name", ""), registry[f"{namespace}/{name}/{p['port']}"])
                 for p in (svc.get("spec") or {}).get("ports") or [] if f"{namespace}/{name}/{p['port']}" in registry]
        out.append((name, ports))
    return out
