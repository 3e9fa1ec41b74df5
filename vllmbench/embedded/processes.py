"""Starting, watching and stopping local processes; finding free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def cached_tool(name: str, *, env: str, script: Path, executable: str, hint: str, verb: str = "install",
                timeout_s: float | None = None) -> Path:
    """A tool's executable: ``env`` if set, else what ``script`` builds or installs into the cache
    (its last line of output is the path; a second run does nothing), else ``executable`` on PATH."""
    import shutil

    configured = os.environ.get(env)
    if configured:
        return Path(configured)
    if script.exists():
        result = subprocess.run([str(script)], capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"could not {verb} {name}: {result.stderr.strip()[-2000:]}")
        return Path(result.stdout.strip().splitlines()[-1])
    found = shutil.which(executable)
    if found:
        return Path(found)
    raise RuntimeError(f"{name} not found: set {env} or {hint}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str,
               process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting{_tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout_s:.0f}s{_tail(log)}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "; last lines of " + str(log) + ":\n" + "\n".join(text)


class Process:
    """A child process with its log file, stopped gently (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Process":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                          cwd=self.cwd, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
