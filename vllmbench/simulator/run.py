"""Running the simulator: in this process (a thread with its own loop), as a child
process, or in the foreground (``vllmbench simulate``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from vllmbench.simulator.config import SimConfig
from vllmbench.simulator.server import bound_port, start

READY_PREFIX = "vllmbench-simulator listening on "


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: fewer microseconds per timer and per write."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_forever(config: SimConfig, *, on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()

    async def main() -> None:
        server, _ = await start(config)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready:
            on_ready(bound_port(server))
        await stop.wait()
        server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


class SimulatorThread:
    """The simulator on a private event loop in a daemon thread of this process."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.port = 0
        self._loop = new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vllmbench-simulator", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server, _ = self._loop.run_until_complete(start(self.config))
        self.port = bound_port(self._server)
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def start(self, timeout: float = 10.0) -> "SimulatorThread":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the simulator did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "SimulatorThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorProcess:
    """The simulator as a child process (``python -m vllmbench.simulator``)."""

    def __init__(self, config: SimConfig, *, python: str = sys.executable) -> None:
        self.config = config
        self.python = python
        self.proc: subprocess.Popen[str] | None = None
        self.port = config.port

    def start(self, timeout: float = 20.0) -> "SimulatorProcess":
        self.proc = subprocess.Popen(
            [self.python, "-m", "vllmbench.simulator", "--config-json", json.dumps(self.config.to_dict())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                self.port = int(line.rsplit(":", 1)[1])
                return self
        err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        self.stop()
        raise RuntimeError(f"the simulator did not start: {err.strip()[-500:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def truth(self, since_ns: int = 0) -> list[dict[str, Any]]:
        """The simulator's own record of each request."""
        with urllib.request.urlopen(f"{self.url}/_sim/requests?since_ns={since_ns}", timeout=30) as resp:
            return json.loads(resp.read())["requests"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            if stream:
                stream.close()

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """``python -m vllmbench.simulator --config-json '{...}'``: prints a ready line with the port."""
    if len(argv) != 2 or argv[0] != "--config-json":
        print("usage: python -m vllmbench.simulator --config-json JSON", file=sys.stderr)
        return 2
    config = SimConfig.from_dict(json.loads(argv[1]))

    def ready(port: int) -> None:
        print(f"{READY_PREFIX}{config.host}:{port}", flush=True)

    serve_forever(config, on_ready=ready)
    return 0


if __name__ == "__main__":  # pragma: no cover
    os._exit(main(sys.argv[1:]))
