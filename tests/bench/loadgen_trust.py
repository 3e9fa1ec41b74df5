"""Calibration of the trust figures: starve our client in several ways and compare what it
says of itself with the simulator's truth (``BENCH_TRUST=1 tests/bench/bench_loadgen.py``).

The simulator runs at real-time priority on CPU 0; the client (this process, and its
``--workers``) on CPU 1, where a starver runs during the stage:

- ``none``: nothing but the machine's other jobs; ``none-rt``: the client at real-time
  priority below the simulator's, so that the other jobs cannot delay it either;
- ``rtB/P``: a busy loop at real-time priority that runs B ms of every P ms (B at random
  within +-25%, so never in step with the server's 5 ms);
- ``niceN``: a busy loop at nice N (below 0: it outranks the client);
- ``cgQ/P``: the client limited by a CPU cgroup to Q µs of every P µs (cgroup v1 ``cpu``
  or v2 ``cpu.max``; skipped with the reason when neither is writable).

A stage is **off** when its TTFT p50 or ITL p50 is more than 1 ms from the simulator's
(as measured per request, matched by X-Request-Id). The summary counts off stages that
were still trusted (must be 0) and stages without a starver that the new figures marked
although they were accurate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig
from vllmbench.stats import percentile

NEW = ("read responses late", "read together")
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
STARVERS = tuple(os.environ["TRUST_STARVERS"].split(",")) if os.environ.get("TRUST_STARVERS") else ("none", "none-rt", "rt1/10", "rt3/10", "rt10/50", "rt30/100", "nice-3", "nice-5",
            "cg50000/100000", "cg20000/100000", "cg2000/10000")
LOADS = tuple((m, float(l), int(w)) for m, l, w in (x.split(":") for x in os.environ["TRUST_LOADS"].split(","))) \
    if os.environ.get("TRUST_LOADS") else (("rate", 100.0, 1), ("rate", 300.0, 1), ("rate", 300.0, 2), ("concurrency", 8, 1), ("concurrency", 64, 1))

HOG = """
import os, random, sys, time
kind, a, b = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
if kind == "rt":
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    while True:
        end = time.monotonic() + random.uniform(0.75, 1.25) * a / 1e3
        while time.monotonic() < end:
            pass
        time.sleep(max(0.0, (b - a) / 1e3))
os.setpriority(os.PRIO_PROCESS, 0, int(a))
while True:
    pass
"""


class Cgroup:
    """A CPU cgroup for the client's threads (v1 ``cpu`` controller, else v2), or the reason it cannot be made."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.why = ""
        for base, v in ((CGROUP_V1, 1), (CGROUP_V2, 2)):
            if v == 2 and not (base / "cgroup.controllers").exists():
                continue
            try:
                path = base / "vllmbench-bench"
                path.mkdir(exist_ok=True)
                (path / ("cpu.cfs_quota_us" if v == 1 else "cpu.max")).stat()
                self.path, self.version = path, v
                return
            except OSError as exc:
                self.why = f"{base}: {exc.__class__.__name__}: {exc}"
        self.why = self.why or "no cpu cgroup controller mounted"

    def limit(self, quota_us: int, period_us: int) -> None:
        assert self.path
        if self.version == 1:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (self.path / "cpu.max").write_text(f"{quota_us} {period_us}")
        for tid in os.listdir("/proc/self/task"):
            (self.path / ("tasks" if self.version == 1 else "cgroup.threads")).write_text(tid)

    def release(self) -> None:
        root = CGROUP_V1 if self.version == 1 else CGROUP_V2
        for tid in os.listdir("/proc/self/task"):
            try:
                (root / ("tasks" if self.version == 1 else "cgroup.threads")).write_text(tid)
            except OSError:
                pass


@dataclass
class Row:
    mode: str
    load: float
    workers: int
    starver: str
    loadavg: float
    ttft_error: float
    itl_error: float
    figures: Any
    reasons: list[str]

    @property
    def off(self) -> bool:
        return abs(self.ttft_error) > 1.0 or abs(self.itl_error) > 1.0

    @property
    def marked_new(self) -> bool:
        return any(k in r for r in self.reasons for k in NEW)


def _p50(values: list[float]) -> float:
    return percentile(sorted(values), 50) if values else float("nan")


def _errors(sim: Any, since: int, stage: Any) -> tuple[float, float]:
    truth = {t["client_request_id"]: t for t in sim.truth(since) if t["client_request_id"]}
    c_ttft, s_ttft, c_itl, s_itl = [], [], [], []
    for r in stage.records:
        t = truth.get(r.request_id)
        if not r.ok or not t or t["outcome"] != "ok" or len(t["token_ns"]) != len(r.token_ns):
            continue
        c_ttft.append((r.token_ns[0] - r.sent_ns) / 1e6)
        s_ttft.append(t["ttft_ms"])
        c_itl += [(b - a) / 1e6 for a, b in zip(r.token_ns, r.token_ns[1:])]
        s_itl += [(b - a) / 1e6 for a, b in zip(t["token_ns"], t["token_ns"][1:])]
    return _p50(c_ttft) - _p50(s_ttft), _p50(c_itl) - _p50(s_itl)


def one(sim: Any, mode: str, load: float, workers: int, starver: str, cpu: int, cgroup: Cgroup,
        seconds: float) -> Row | str:
    kw: dict[str, Any] = {"rates": (load,)} if mode == "rate" else {"mode": "concurrency", "concurrencies": (int(load),)}
    cfg = RunConfig(url=sim.url, duration_s=seconds, input_len="128", output_len="128", timeout_s=60, workers=workers,
                    run_id=f"trust-{mode}-{load:g}-{starver.replace('/', '_')}", **kw)
    hog = None
    if starver.startswith(("rt", "nice")):
        a, b = (starver[2:].split("/") if starver.startswith("rt") else (starver[4:], "0"))
        hog = subprocess.Popen([sys.executable, "-c", HOG, starver[:2] if starver.startswith("rt") else "nice", a, b])
        os.sched_setaffinity(hog.pid, {cpu})
    elif starver.startswith("cg"):
        if cgroup.path is None:
            return f"{starver}: skipped, {cgroup.why}"
        quota, period = (int(x) for x in starver[2:].split("/"))
        cgroup.limit(quota, period)
    elif starver == "none-rt":
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    since = time.monotonic_ns()
    loadavg = os.getloadavg()[0]
    try:
        report = run_benchmark(cfg)
    finally:
        if hog:
            hog.kill()
            hog.wait()
        if starver.startswith("cg") and cgroup.path:
            cgroup.release()
        if starver == "none-rt":  # every thread: those started meanwhile took the policy too
            for tid in os.listdir("/proc/self/task"):
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
    stage, trust = report.stages[0], report.records[0].results.trust
    ttft_error, itl_error = _errors(sim, since, stage)
    return Row(mode, load, workers, starver, loadavg, ttft_error, itl_error, trust, list(trust.reasons))


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def calibrate(sim: Any, *, seconds: float) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("calibration needs two CPUs (the simulator on one, the client and its starver on the other)")
        return
    for tid in os.listdir(f"/proc/{sim.pid}/task"):
        os.sched_setaffinity(int(tid), {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    cgroup = Cgroup()
    print(f"\ntrust calibration: simulator on CPU {cpus[0]}, client and starver on CPU {cpus[1]}, {seconds:g} s a stage; "
          f"cgroup: {cgroup.path or cgroup.why}")
    print(f"{'load':>14} {'starver':>15} {'loadavg':>7} {'TTFT err':>8} {'ITL err':>8} {'estimate':>8} {'tok.tog%':>8} "
          f"{'late p50/p99/max ms':>21} {'cpu wait%':>9} {'thrtl%':>6} {'cpu%':>5}  verdict")
    rows: list[Row] = []
    for mode, load, workers in LOADS:
        for starver in STARVERS:
            row = one(sim, mode, load, workers, starver, cpus[1], cgroup, seconds)
            label = f"{mode[:4]} {load:g}" + (f" w{workers}" if workers > 1 else "")
            if isinstance(row, str):
                print(f"{label:>14} {row}")
                continue
            rows.append(row)
            t, late = row.figures, row.figures.loop_lateness_ms
            verdict = ("OFF " if row.off else "ok  ") + ("marked (new)" if row.marked_new else
                                                        "marked (other)" if row.reasons else "trusted")
            if row.off and not row.reasons:
                verdict += "  <-- MISSED"
            print(f"{label:>14} {starver:>15} {row.loadavg:7.1f} {row.ttft_error:8.2f} {row.itl_error:8.2f} "
                  f"{_f(t.ttft_p50_inflation_ms):>8} {_f(t.coalesced_tokens_percent, 1):>8} "
                  f"{(_f(late.p50) + '/' + _f(late.p99, 1) + '/' + _f(late.max, 0)) if late else '-':>21} "
                  f"{_f(t.cpu_wait_percent, 0):>9} {_f(t.cpu_throttled_percent, 1):>6} {_f(t.client_cpu_percent, 0):>5}  {verdict}",
                  flush=True)
    missed = [r for r in rows if r.off and not r.reasons]
    healthy = [r for r in rows if r.starver.startswith("none") and not r.off]
    print(f"  off stages still trusted: {len(missed)} of {sum(r.off for r in rows)}; accurate stages without a starver "
          f"marked by the new figures: {sum(r.marked_new for r in healthy)} of {len(healthy)}")
