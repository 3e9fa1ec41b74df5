"""The client's view of its own lateness: a timerfd that wakes the loop like a socket, and the
probe that samples it. A loop held by a blocking call stands in for a starved client (the
integration tests starve a real one); only lower bounds on time are asserted."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import uvloop

from vllmbench.harness import lateness, timerfd
from vllmbench.harness.lateness import PERIOD_NS, LatenessProbe
from vllmbench.harness.trust import bin_ms

MS = 1_000_000


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request):
    loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.skipif(not timerfd.available(), reason="timerfd is Linux only")
def test_a_timer_never_fires_before_its_deadline_and_counts_what_it_missed(loop):
    async def main():
        fired: list[tuple[int, int]] = []
        timer = timerfd.Timer(asyncio.get_running_loop(), lambda n: fired.append((time.monotonic_ns(), n)))
        try:
            deadline = time.monotonic_ns() + 20 * MS
            timer.at(deadline)
            while not fired:
                await asyncio.sleep(0.001)
            assert fired[0][0] >= deadline and fired[0][1] == 1
            fired.clear()
            timer.at(time.monotonic_ns() + MS, MS)  # every millisecond from now
            time.sleep(0.05)  # the loop is held for 50 ms: the expirations add up
            while not fired:
                await asyncio.sleep(0.001)
            assert fired[0][1] >= 45
        finally:
            timer.close()

    loop.run_until_complete(main())


def held(loop, probe: LatenessProbe, hold_s: float, *, before_s: float = 0.05, after_s: float = 0.05):
    async def main():
        probe.start()
        await asyncio.sleep(before_s)
        time.sleep(hold_s)
        await asyncio.sleep(after_s)
        return probe.stop(chunked_tokens=10, coalesced_tokens=3)

    return loop.run_until_complete(main())


@pytest.mark.parametrize("has_timerfd", [True, False])
def test_a_held_loop_is_sampled_through_the_whole_stall(loop, monkeypatch, has_timerfd):
    if has_timerfd and not timerfd.available():
        pytest.skip("timerfd is Linux only")
    if not has_timerfd:
        monkeypatch.setattr(timerfd, "available", lambda: False)
    started = time.monotonic_ns()
    facts = held(loop, LatenessProbe(loop), 0.2)
    wall = time.monotonic_ns() - started
    samples = sum(facts.lateness.values())
    assert wall // PERIOD_NS - 3 <= samples <= wall // PERIOD_NS + 1  # every deadline, stalled ones included
    assert facts.lateness_max_ns >= 190 * MS
    # Deadlines that fell in the stall were late by 0 to 200 ms, evenly: about half of them by more than 100 ms.
    over_100 = sum(n for b, n in facts.lateness.items() if bin_ms(b) > 100)
    assert 35 <= over_100 <= 60
    assert (facts.chunked_tokens, facts.coalesced_tokens) == (10, 3)


def test_a_probe_armed_before_the_stage_counts_a_late_start(loop):
    async def main():
        probe = LatenessProbe(asyncio.get_running_loop())
        probe.start(time.monotonic_ns() - 100 * MS)  # the stage should have started 100 ms ago
        await asyncio.sleep(0.01)
        return probe.stop()

    facts = loop.run_until_complete(main())
    assert facts.lateness_max_ns >= 95 * MS and sum(facts.lateness.values()) >= 50  # the first deadline: 2 ms in


def test_the_cpu_wait_is_read_from_the_kernel_where_it_is_kept():
    wait = lateness.cpu_wait_ns()
    assert wait is None or wait >= 0
    assert (wait is not None) == os.path.exists("/proc/thread-self/schedstat")


def test_cpu_limits_are_read_from_cgroup_v1_and_v2_and_added_up_the_tree(tmp_path):
    v1, v2 = tmp_path / "v1.stat", tmp_path / "v2.stat"
    v1.write_text("nr_periods 40\nnr_throttled 7\nthrottled_time 3500000\nnr_bursts 0\nburst_time 0\n")
    v2.write_text("usage_usec 100\nuser_usec 90\nsystem_usec 10\nnr_periods 40\nnr_throttled 2\nthrottled_usec 1500\n")
    assert lateness.cpu_throttled_ns([str(v1)]) == 3_500_000
    assert lateness.cpu_throttled_ns([str(v1), str(v2), str(tmp_path / "gone.stat")]) == 5_000_000
    (tmp_path / "plain.stat").write_text("usage_usec 100\nuser_usec 90\nsystem_usec 10\n")  # v2 without the cpu controller
    assert lateness.cpu_throttled_ns([str(tmp_path / "plain.stat")]) is None
