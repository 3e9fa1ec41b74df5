"""A kernel timer the event loop waits on like a socket (Linux ``timerfd``, through ctypes).

uvloop's timers have millisecond granularity: a send due in 0.4 ms either leaves up to
a millisecond late or spins the loop with zero-length sleeps until it is due, and a
probe of the loop's lateness built on them sees 0-1 ms of lateness that is only the
timer's rounding. A timerfd expires at its nanosecond deadline (no timer slack) and
wakes the loop exactly like bytes arriving on a socket, so what it measures is what a
token's read would see. Where there is no timerfd (not Linux), :func:`available` is
False and the callers use the loop's own timers.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
from collections.abc import Callable

CLOCK_MONOTONIC = 1  # the clock of time.monotonic_ns
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create, libc.timerfd_settime  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class Timer:
    """``on_expire(expirations)`` runs in the loop when the timer expires (once, or every period)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expire: Callable[[int], None]) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available here")
        fd = _LIBC.timerfd_create(CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd, self.loop, self.on_expire = fd, loop, on_expire
        self._spec = _Itimerspec()
        self._ref = ctypes.byref(self._spec)
        loop.add_reader(fd, self._ready)

    def at(self, deadline_ns: int, period_ns: int = 0) -> None:
        """Expire at the monotonic time ``deadline_ns`` (at once if it has passed), then every
        ``period_ns`` if given."""
        spec = self._spec
        deadline_ns = max(1, deadline_ns)  # an all-zero value would disarm it
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        spec.it_interval.tv_sec, spec.it_interval.tv_nsec = divmod(period_ns, 1_000_000_000)
        if _LIBC.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, self._ref, None) != 0:  # type: ignore[union-attr]
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _ready(self) -> None:
        try:
            count = int.from_bytes(os.read(self.fd, 8), sys.byteorder)
        except BlockingIOError:  # re-armed after it became readable: nothing to report
            return
        self.on_expire(count)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
