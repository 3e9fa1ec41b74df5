"""The client measuring itself through a stage: how late its event loop runs, how long it
waited for a CPU, and how long a CPU limit (cgroup quota) stopped it.

Every 2 ms a kernel timer (:mod:`vllmbench.harness.timerfd`) becomes ready; the loop
serves it like a socket with bytes waiting, so the time from its deadline to its
callback is what a token arriving at that moment would wait before it is read and
timestamped. Deadlines are fixed in advance and every one missed during a stall is
counted with its own lateness, so the samples are spread evenly over time, stalls
included: a 100 ms stall adds 50 samples from 100 ms down to 0, as it would to the
tokens that arrived during it. The cost is one wake-up per 2 ms when the loop is
otherwise idle (2.3% of a core on an idle loop here); under load it was within the
run-to-run noise of the CPU per token.

Where there is no timerfd the loop's own timers are used; they fire up to a millisecond
late by design, so that millisecond is taken off each sample (coarser, never inflated).
"""

from __future__ import annotations

import asyncio
import os
import time

from vllmbench.harness import timerfd
from vllmbench.harness.trust import ClientFacts, bin_of

PERIOD_NS = 2_000_000
_now = time.monotonic_ns


def cpu_wait_ns() -> int | None:
    """Time this thread has spent ready to run but waiting for a CPU (Linux schedstat), or None."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


CGROUP_ROOT = "/sys/fs/cgroup"


def _cgroup_stat_files() -> list[str]:
    """cpu.stat of this thread's CPU cgroup and of each ancestor (a limit anywhere up the tree
    stops it): the v1 ``cpu`` controller, or cgroup v2 where it has the cpu controller."""
    try:
        with open("/proc/thread-self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            bases = [CGROUP_ROOT, f"{CGROUP_ROOT}/unified"]
        elif "cpu" in controllers.split(","):
            bases = [f"{CGROUP_ROOT}/{controllers}", f"{CGROUP_ROOT}/cpu"]
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base in bases:
            files = [os.path.join(base, *parts[:k], "cpu.stat") for k in range(len(parts), -1, -1)]
            if os.path.exists(files[0]) and (controllers or "throttled_usec" in _read(files[0])):
                return files
    return []


def _read(name: str) -> str:
    try:
        with open(name) as f:
            return f.read()
    except OSError:
        return ""


def cpu_throttled_ns(files: list[str]) -> int | None:
    """Time the CPU limits in ``files`` stopped their cgroups, added up (ns), or None."""
    total, seen = 0, False
    for name in files:
        stat = dict(line.split(" ", 1) for line in _read(name).splitlines() if line.count(" ") == 1)
        if "throttled_usec" in stat:
            total, seen = total + int(stat["throttled_usec"]) * 1000, True
        elif "throttled_time" in stat:
            total, seen = total + int(stat["throttled_time"]), True
    return total if seen else None


class LatenessProbe:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, worker: int = 0, period_ns: int = PERIOD_NS) -> None:
        self.loop, self.worker, self.period = loop, worker, period_ns
        self.bins: dict[int, int] = {}
        self.max_ns = 0
        self.first = self.next = self.started = 0
        self.wait0: int | None = None
        self.cgroups = _cgroup_stat_files()
        self.throttled0: int | None = None
        self.timer: timerfd.Timer | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.slack = 0  # the loop timers' own rounding, taken off their samples

    def start(self, at_ns: int | None = None) -> None:
        """Sample from ``at_ns`` on (default: now): armed before a stage's start, a client that
        is not running when the stage should start counts as late from that moment."""
        self.started = at_ns if at_ns is not None else _now()
        self.wait0 = cpu_wait_ns()
        self.throttled0 = cpu_throttled_ns(self.cgroups)
        self.first = self.next = self.started + self.period
        if timerfd.available():
            try:
                self.timer = timerfd.Timer(self.loop, self._expired)
                self.timer.at(self.first, self.period)
                return
            except OSError:
                self.timer = None
        self.slack = 1_000_000
        self.handle = self.loop.call_at(self.next / 1e9, self._tick)

    def _expired(self, count: int) -> None:
        self._sample(_now(), count)

    def _tick(self) -> None:
        now = _now()
        self._sample(now, max(1, (now - self.next) // self.period + 1))
        self.handle = self.loop.call_at(self.next / 1e9, self._tick)

    def _sample(self, now: int, count: int) -> None:
        """``count`` deadlines have passed since the last sample: each one's lateness."""
        due, period, bins, slack = self.next, self.period, self.bins, self.slack
        for _ in range(count):
            late = now - due - slack
            if late > 0:
                b = bin_of(late)
                bins[b] = bins.get(b, 0) + 1
                if late > self.max_ns:
                    self.max_ns = late
            else:
                bins[0] = bins.get(0, 0) + 1
            due += period
        self.next = due

    def stop(self, *, chunked_tokens: int = 0, coalesced_tokens: int = 0) -> ClientFacts:
        now = _now()
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.started:
            # Deadlines that passed while the loop was busy with its last callbacks.
            missed = (now - self.next) // self.period + 1 if now >= self.next else 0
            if missed:
                self._sample(now, missed)
        wait1 = cpu_wait_ns()
        waited = wait1 - self.wait0 if wait1 is not None and self.wait0 is not None else None
        throttled1 = cpu_throttled_ns(self.cgroups)
        throttled = throttled1 - self.throttled0 if throttled1 is not None and self.throttled0 is not None else None
        return ClientFacts(worker=self.worker, lateness=dict(self.bins), lateness_max_ns=self.max_ns,
                           cpu_wait_ns=waited, cpu_throttled_ns=throttled,
                           wall_ns=now - self.started if self.started else 0,
                           chunked_tokens=chunked_tokens, coalesced_tokens=coalesced_tokens)
