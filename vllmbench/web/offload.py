"""CPU-bound work of a request in helper processes, beside the process that serves it.

A function process runs its Python under one GIL: a big request's validation takes a
core while its commit waits on the database, and a second request's validation waits
for the first. Work handed to a helper (``Offload.run``) runs on another core.

- Helpers start on first use, in the background (forkserver: a clean interpreter, never a
  fork of a threaded server); until one has imported what it needs, ``run`` answers
  ``NOT_READY`` and the caller does the work itself. Nothing here is on the import path
  of a function: a scale-to-zero start pays for it only when a big request arrives.
- A helper that dies (killed, out of memory) breaks the pool: ``run`` answers
  ``NOT_READY``, the pool is started again on a later call, and the request at hand is
  done in the process, so no request fails for it.
- A helper runs each task with Python's cyclic garbage collector off: a task is one
  request's work, whose objects (a batch of 500 records: hundreds of thousands) mostly
  live until it returns, so every collection it triggered walked them for nothing (a
  fifth of the helpers' CPU in the results ingest bench: docs/results.md, "Ingest"). A
  helper runs one task at a time; what a task leaves in cycles is collected after it.
- ``processes=-1`` picks one helper per CPU the process may use (its affinity and its
  cgroup's CPU quota), at most 4, and none on one CPU: there a helper only adds the cost
  of sending the work over.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("vllmbench.web.offload")

NOT_READY = object()  # the work was not done: do it in this process
RESTART_AFTER_S = 30.0


def usable_cpus() -> float:
    """CPUs this process may use: its affinity, bounded by its cgroup's quota (cgroup v2 cpu.max)."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = float(os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cpus


def helpers_for(processes: int) -> int:
    """``processes``, or for -1 one helper per CPU the process may use (at most 4), none on one:
    two requests then validate at once while this process commits (measured in docs/results.md)."""
    if processes >= 0:
        return processes
    cpus = int(usable_cpus())
    return min(4, cpus) if cpus >= 2 else 0


class Offload:
    """A pool of ``processes`` helpers that import ``preload`` (module names) before they are used."""

    def __init__(self, processes: int, preload: tuple[str, ...] = ()) -> None:
        self.processes = helpers_for(processes)
        self.preload = preload
        self._lock = threading.Lock()
        self._pool: Any = None
        self._warm: list[Any] = []
        self._broken_at = 0.0
        self._exit_hook = False

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a helper (``fn`` importable by name), or ``NOT_READY``."""
        pool = self._ready_pool()
        if pool is None:
            return NOT_READY
        from concurrent.futures.process import BrokenProcessPool

        try:
            return pool.submit(_without_collector, fn, *args).result()
        except BrokenProcessPool:
            self._broke(pool)
            return NOT_READY
        except Exception as exc:  # noqa: BLE001 - the caller does the work and meets the error itself
            log.warning("%s failed in a helper process (%s: %s); doing it in the process",
                        getattr(fn, "__name__", fn), type(exc).__name__, exc)
            return NOT_READY

    def _ready_pool(self) -> Any:
        if self.processes <= 0:
            return None
        with self._lock:
            if self._pool is None:
                if time.monotonic() - self._broken_at < RESTART_AFTER_S:
                    return None
                self._start()
                return None
            if not all(f.done() for f in self._warm):
                return None
            failed = [f.exception() for f in self._warm if f.exception() is not None]
            if failed:
                log.warning("the helper processes failed to start (%s); doing the work in the process", failed[0])
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool, self._broken_at = None, time.monotonic()
                return None
            return self._pool

    def _start(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import gc

        context = multiprocessing.get_context("forkserver")
        # Between tasks the helpers collect garbage as seldom as this process was told to (the
        # results function raises the threshold); during one, not at all (_without_collector).
        self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_preload,
                                         initargs=(self.preload, gc.get_threshold()))
        # One task per helper, submitted at once: the pool starts a process for each task no idle
        # one can take, so every helper has imported its modules before the first real work.
        self._warm = [self._pool.submit(_preload, self.preload) for _ in range(self.processes)]
        if not self._exit_hook:
            import atexit

            atexit.register(self.close)  # before the interpreter tears its modules down
            self._exit_hook = True

    def _broke(self, pool: Any) -> None:
        with self._lock:
            if self._pool is pool:
                log.warning("a helper process died; the pool starts again in %.0f s, work is done in the process "
                            "until then", RESTART_AFTER_S)
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool, self._broken_at = None, time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _without_collector(fn: Callable[..., Any], *args: Any) -> Any:
    import gc

    gc.disable()
    try:
        return fn(*args)
    finally:
        gc.enable()


def _preload(modules: tuple[str, ...], gc_threshold: tuple[int, ...] | None = None) -> None:
    import gc
    import importlib

    if gc_threshold:
        gc.set_threshold(*gc_threshold)
    for name in modules:
        importlib.import_module(name)
