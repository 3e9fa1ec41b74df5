"""Files and processes shared by the runtime, the shims and the forwarders: atomic JSON
files, Kubernetes timestamps, detached processes and telling whether a pid is still ours.

A pid alone is not proof: after a reboot or a long uptime another program may hold it.
A process counts as ours only when ``/proc/<pid>/cmdline`` names our module and the folder
it serves, and, for containers, when its start time is the one recorded at spawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


# -- time ------------------------------------------------------------------------------
def rfc3339(ts: float | None = None) -> str:
    """A timestamp as the API writes metadata and conditions: seconds, UTC, 'Z'."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts_ns: int | None = None) -> str:
    """A log line's timestamp as the kubelet writes it (nanoseconds)."""
    ns = time.time_ns() if ts_ns is None else ts_ns
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds allowed), or None."""
    if not value:
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


# -- files -----------------------------------------------------------------------------
def write_json(path: Path, value: Any) -> None:
    """Write ``value`` so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(value, out, separators=(",", ":"), sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except json.JSONDecodeError:  # only a file written by hand can be half-written
        return None


def append_line(path: Path, line: str) -> None:
    """One O_APPEND write: lines of several writers never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)


# -- processes -------------------------------------------------------------------------
def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        if fields[0] == "Z":  # a zombie is gone for every purpose here
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_ours(pid: int | None, module: str, folder: Path) -> bool:
    """Whether ``pid`` is alive and is ``python -m <module> <folder>``."""
    if not pid:
        return False
    argv = cmdline(pid)
    return module in argv and str(folder) in argv and start_time(pid) is not None


def same_process(pid: int | None, started: int | None) -> bool:
    """Whether ``pid`` is alive and is the process that started at ``started`` ticks."""
    return bool(pid) and started is not None and start_time(pid) == started


def spawn_detached(module: str, folder: Path, *, log: Path) -> int:
    """Start ``python -m <module> <folder>`` outside this process's session and children.

    The child forks once more and its first half exits at once (see the module's ``main``),
    so the caller reaps it here and the long-lived process is nobody's zombie. Returns the pid
    of the long-lived half, which the child writes to ``<folder>/<module's last part>.pid``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file = folder / f"{module.rpartition('.')[2]}.pid"
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    # Only what Python needs: the starting process's environment holds database URLs and tokens.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH") if k in os.environ}
    with open(log, "ab") as out:
        first = subprocess.Popen([sys.executable, "-m", module, str(folder)], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=env,
                                 cwd=folder)
    code = first.wait(30)
    if code != 0:
        raise OSError(f"python -m {module} {folder} exited with status {code} while detaching; see {log}")
    return int(pid_file.read_text())


def detach(folder: Path, name: str) -> None:
    """Called first by a detached module: fork, write the child's pid, let the parent exit."""
    pid = os.fork()
    if pid:
        write_pid(folder / f"{name}.pid", pid)
        os._exit(0)


def detached_main(argv: list[str], module: str) -> Path | None:
    """The folder of ``python -m <module> <folder>``, once detached (see spawn_detached); None on bad usage."""
    if len(argv) != 1:
        print(f"usage: python -m {module} <folder>", file=sys.stderr)
        return None
    folder = Path(argv[0]).resolve()
    detach(folder, module.rpartition(".")[2])
    return folder


def write_pid(path: Path, pid: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(str(pid))
    os.replace(tmp, path)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (every container runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_pid(pid: int, module: str, folder: Path, *, timeout_s: float) -> bool:
    """SIGTERM a detached process of ours, SIGKILL it after ``timeout_s``; True once it is gone."""
    if not is_ours(pid, module, folder):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_gone(pid, 5.0)


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while start_time(pid) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
