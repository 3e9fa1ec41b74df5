"""Reading a local container's log: ``<pod dir>/logs/<container>.log``.

Each line is ``<RFC 3339 nano timestamp> <text>``, as the shim read it from the process.
``tail_lines``, ``since_seconds`` and ``timestamps`` mean what they mean to the API;
``follow`` keeps reading while the container's current run goes on and ends once that run
has stopped and the file is drained (a restart is a new run, with a new log, as for
``kubectl logs -f``). ``close()`` from another thread ends a followed stream at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local.procs import parse_time

BLOCK = 64 * 1024
POLL_MIN_S, POLL_MAX_S = 0.005, 0.1


def _tail_offset(f, lines: int) -> int:  # type: ignore[no-untyped-def]
    """Where the last ``lines`` lines of an open binary file start."""
    end = f.seek(0, os.SEEK_END)
    pos, found = end, 0
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        if pos + step == end and chunk.endswith(b"\n"):
            chunk = chunk[:-1]  # the final line end does not start a line
        for i in range(len(chunk) - 1, -1, -1):
            if chunk[i] == 0x0A:
                found += 1
                if found == lines:
                    return pos + i + 1
    return 0


class FileLogStream:
    """A :class:`~vllmbench.runtimes.base.LogStream` over one container log file.

    ``running`` says whether the run being followed still goes on; ``started`` whether a
    run has started at all (a follow that opens before the container starts waits for it)."""

    def __init__(self, path: Path, *, tail_lines: int | None = None, since_seconds: int | None = None,
                 follow: bool = False, timestamps: bool = False, running: Callable[[], bool] = lambda: False,
                 started: Callable[[], bool] = lambda: True) -> None:
        self.path = path
        self.tail_lines = tail_lines
        self.since = time.time() - since_seconds if since_seconds is not None else None
        self.follow = follow
        self.timestamps = timestamps
        self.running = running
        self.started = started
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def _line(self, raw: bytes) -> str | None:
        text = raw.decode(errors="replace")
        stamp, _, rest = text.partition(" ")
        if self.since is not None:
            when = parse_time(stamp) if stamp.endswith("Z") else None
            if when is not None and when < self.since:
                return None
        return text if self.timestamps else rest

    def __iter__(self) -> Iterator[str]:
        if self.follow:
            while not self.started() and not self._closed.is_set():
                self._closed.wait(POLL_MAX_S)
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            if self.tail_lines is not None:
                if self.tail_lines <= 0:
                    f.seek(0, os.SEEK_END)
                else:
                    f.seek(_tail_offset(f, self.tail_lines))
            buffered = b""
            pause = POLL_MIN_S
            while not self._closed.is_set():
                chunk = f.read(BLOCK)
                if chunk:
                    pause = POLL_MIN_S
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for raw in lines:
                        line = self._line(raw)
                        if line is not None:
                            yield line
                        if self._closed.is_set():
                            return
                    continue
                if not self.follow:
                    break
                if not self.running():
                    rest = f.read()  # what was written between the last read and the stop
                    if not rest:
                        break
                    buffered += rest
                    continue
                self._closed.wait(pause)
                pause = min(POLL_MAX_S, pause * 2)
            if buffered and not self._closed.is_set():
                line = self._line(buffered)
                if line is not None:
                    yield line


class EmptyLogStream:
    def __iter__(self) -> Iterator[str]:
        return iter(())

    def close(self) -> None:
        pass


def container_log(pod_dir: Path, container: str, *, tail_lines: int | None, since_seconds: int | None,
                  follow: bool, timestamps: bool) -> FileLogStream | EmptyLogStream:
    """The log of ``container`` in a pod's folder; a follow keeps to the run that is on (or starts next)."""
    from vllmbench.runtimes.local.pods import raw_status

    def current() -> tuple[dict[str, Any], dict[str, Any]]:
        status = raw_status(pod_dir) or {}
        found = [c for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
                 if c["name"] == container]
        return status, (found[0].get("state") or {}) if found else {}

    followed: dict[str, str | None] = {"startedAt": None}

    def started() -> bool:
        status, state = current()
        if "running" in state:
            followed["startedAt"] = state["running"]["startedAt"]
            return True
        waiting = (state.get("waiting") or {}).get("reason")
        ended = status.get("_exited") or status.get("_blocked") or not pod_dir.exists()
        return bool(ended or "terminated" in state or waiting not in (None, "ContainerCreating", "PodInitializing"))

    def running() -> bool:
        state = current()[1]
        return "running" in state and state["running"]["startedAt"] == followed["startedAt"]

    path = pod_dir / "logs" / f"{container}.log"
    if not follow and not path.exists():
        return EmptyLogStream()
    return FileLogStream(path, tail_lines=tail_lines, since_seconds=since_seconds, follow=follow,
                         timestamps=timestamps, running=running, started=started)
