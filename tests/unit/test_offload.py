"""vllmbench.web.offload: work in a helper process, the caller's own fallback until it is ready."""

from __future__ import annotations

import os
import signal
import time

from vllmbench.web import offload
from vllmbench.web.offload import NOT_READY, Offload


def _wait_ready(pool: Offload, timeout_s: float = 60) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pool.run(os.getpid)
        if got is not NOT_READY:
            return got
        time.sleep(0.05)
    raise AssertionError("the helper never became ready")


def test_work_runs_in_another_process_once_the_helper_is_ready():
    pool = Offload(1, ("json",))
    try:
        assert pool.run(os.getpid) is NOT_READY  # the first call starts it; the caller works meanwhile
        pid = _wait_ready(pool)
        assert pid != os.getpid()
        assert pool.run(divmod, 17, 5) == (3, 2)
        assert pool.run(divmod, 1, 0) is NOT_READY  # an error there: the caller meets it itself
    finally:
        pool.close()


def test_a_dead_helper_makes_the_caller_do_the_work_then_the_pool_starts_again(monkeypatch):
    monkeypatch.setattr(offload, "RESTART_AFTER_S", 0.5)
    pool = Offload(1)
    try:
        pool.run(os.getpid)
        pid = _wait_ready(pool)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert pool.run(os.getpid) is NOT_READY  # broken: not an exception, the caller does it
        assert pool.run(os.getpid) is NOT_READY  # not restarted before RESTART_AFTER_S
        time.sleep(0.6)
        assert _wait_ready(pool) not in (pid, os.getpid())
    finally:
        pool.close()


def test_no_helper_without_a_second_cpu(monkeypatch):
    monkeypatch.setattr(offload, "usable_cpus", lambda: 1.0)
    assert Offload(-1).run(os.getpid) is NOT_READY and Offload(-1).processes == 0
    monkeypatch.setattr(offload, "usable_cpus", lambda: 2.5)
    assert Offload(-1).processes == 2
    monkeypatch.setattr(offload, "usable_cpus", lambda: 16.0)
    assert Offload(-1).processes == 4
    assert Offload(0).processes == 0 and Offload(3).processes == 3
