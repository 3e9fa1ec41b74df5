"""A real headless Chromium (Debian's package) driven over the DevTools protocol, for
tests that look at a page as a person would: console errors, every request the page
made, what it drew.

The browser runs in a network namespace of its own when the machine allows one
(``unshare -n``: no interface but a downed loopback), and is told it is offline too;
it talks to the test over a pipe (``--remote-debugging-pipe``), so it needs no port.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "chromium-headless-shell")


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10).returncode == 0


@dataclass
class PageVisit:
    url: str
    console: list[dict[str, Any]] = field(default_factory=list)  # console calls, exceptions, log entries
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    screenshot: bytes = b""
    facts: Any = None  # what the page's DOM answered to the probe expression
    isolated: bool = False  # ran in a network namespace of its own

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [c for c in self.console if c.get("level") in ("error", "exception") or c.get("type") in ("error", "assert")]


class Chromium:
    def __init__(self, binary: str, *, isolate: bool) -> None:
        self.profile = tempfile.mkdtemp(prefix="vllmbench-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--hide-scrollbars", "--mute-audio",
                 "--force-color-profile=srgb", f"--user-data-dir={self.profile}", "about:blank"]
        script = f'exec 3<&{to_browser_r} 4>&{from_browser_w}; exec "$0" "$@"'
        argv = ["bash", "-c", script, binary, *flags]
        self.isolated = isolate
        if isolate:
            argv = ["unshare", "-n", *argv]
        self.process = subprocess.Popen(argv, pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message and message["id"] in self._replies:
                        self._replies[message["id"]].put(message)
                    else:
                        self.events.put(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            key = self._next_id
            self._replies[key] = queue.Queue()
        message: dict[str, Any] = {"id": key, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._replies[key].get(timeout=timeout)
        del self._replies[key]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def visit(self, url: str, *, dark: bool = False, width: int = 1280, probe: str = "null",
              timeout: float = 30.0) -> PageVisit:
        """Open ``url`` offline, wait for its load event, screenshot the whole page."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            self.send(method, session=session)
        self.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, session=session)
        self.send("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]}, session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        visit = PageVisit(url, isolated=self.isolated)
        self.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + timeout
        loaded = False
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                if loaded:
                    break  # quiet for 200 ms after the load event: late errors had their chance
                continue
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Page.loadEventFired":
                loaded = True
            elif method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                visit.console.append({"type": params.get("type"), "text": text})
            elif method == "Runtime.exceptionThrown":
                visit.console.append({"level": "exception", "text": params["exceptionDetails"].get("text", "")})
            elif method == "Log.entryAdded":
                entry = params["entry"]
                visit.console.append({"level": entry.get("level"), "text": entry.get("text"), "source": entry.get("source")})
        if not loaded:
            raise TimeoutError(f"{url} did not finish loading within {timeout} s")
        visit.facts = self.send("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                                session=session)["result"].get("value")
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        visit.screenshot = base64.b64decode(shot["data"])
        self.send("Target.closeTarget", {"targetId": target})
        return visit

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, queue.Empty, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._to_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


def save(visit: PageVisit, path: Path) -> Path:
    path.write_bytes(visit.screenshot)
    return path
