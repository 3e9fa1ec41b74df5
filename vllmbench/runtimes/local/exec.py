"""exec into a local pod: a process on a pseudo-terminal, in the pod's folder, with the container's env.

This is a shell on the host, not in a container: the runtime opens one only with
``VLLMBENCH_LOCAL_EXEC=true``. ``/bin/sh``, ``/bin/bash`` and the like are mapped to the
host's shells; the process leads its own session with the pty as its controlling
terminal, so that Ctrl-C and job control work and closing the channel hangs it up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path

# Run in the child between setsid and exec: make the pty (fd 0) the controlling terminal.
_CTTY = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
         "os.execvp(sys.argv[1], sys.argv[1:])")


def host_command(command: Sequence[str]) -> list[str]:
    """``command`` with a container's shell path mapped to this host's (``/bin/bash`` -> bash or sh)."""
    if not command:
        raise ValueError("exec needs a command")
    first = command[0]
    name = first.rsplit("/", 1)[-1]
    if Path(first).is_file() and os.access(first, os.X_OK):
        return list(command)
    for candidate in ([name, "bash", "sh"] if name in ("sh", "bash", "ash", "dash", "zsh") else [name]):
        found = shutil.which(candidate)
        if found:
            return [found, *command[1:]]
    raise FileNotFoundError(f"{first!r} is not found on this machine")


class PtyChannel:
    """An :class:`~vllmbench.runtimes.base.ExecChannel` over a local pty."""

    def __init__(self, command: Sequence[str], *, env: dict[str, str], cwd: Path, tty: bool = True) -> None:
        argv = host_command(command)
        env = {**env, "TERM": env.get("TERM", "xterm-256color")}
        self._tty = tty
        if tty:
            self._master, slave = os.openpty()
            try:
                self.proc = subprocess.Popen([sys.executable, "-S", "-c", _CTTY, *argv], stdin=slave, stdout=slave,
                                             stderr=slave, env=env, cwd=cwd, start_new_session=True, close_fds=True)
            finally:
                os.close(slave)
        else:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=env, cwd=cwd, start_new_session=True, close_fds=True)
            assert self.proc.stdout is not None
            self._master = self.proc.stdout.fileno()
        self._eof = False
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise OSError(errno.EPIPE, "the exec channel is closed")
        if self._tty:
            view = memoryview(data)
            while view:
                _, ready, _ = select.select([], [self._master], [], 5.0)
                if not ready:
                    raise OSError(errno.ETIMEDOUT, "the process reads no input")
                view = view[os.write(self._master, view):]
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def read(self, timeout_s: float) -> bytes | None:
        if self._eof or self._closed:
            return None
        ready, _, _ = select.select([self._master], [], [], max(0.0, timeout_s))
        if not ready:
            return b""
        try:
            data = os.read(self._master, 65536)
        except OSError as exc:  # EIO: every holder of the pty's other end has gone
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._eof = True
            self.proc.wait()
            return None
        return data

    def resize(self, cols: int, rows: int) -> None:
        if self._tty and not self._closed:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 2.0
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._tty:
            with contextlib.suppress(OSError):
                os.close(self._master)
        else:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    with contextlib.suppress(OSError):
                        stream.close()

    @property
    def exit_code(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            return None
        return 128 - code if code < 0 else code
