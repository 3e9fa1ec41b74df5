"""How far can the load generator be trusted on this machine, next to GuideLLM and aiperf?

Against the simulator (TTFT 20 ms, ITL 5 ms, 128 prompt + 128 output tokens, streaming),
with the simulator at real-time CPU priority for every tool, increasing constant rates
until our client cannot hold its schedule. Per rate: achieved rate, schedule delay
p50/p99, TTFT and ITL error p50/p99 against the simulator's own record, per-chunk gap
p99, client CPU per streamed token, simulator CPU. Then each tool's highest rate with
TTFT p50 within 2 ms of the truth. Prints figures; asserts nothing about time.

Client CPU per streamed token is printed for every tool (ours: the stage's CPU of every
client process; the peers': their process tree's CPU from the simulator's first arrival to
its last response), and ours against the target of 5 µs: one core driving 1,000 req/s of
128-token streams.

Environment: BENCH_SECONDS (per stage, default 6), BENCH_RATES (comma list),
BENCH_PEER_RATES (the peers' rates), BENCH_WORKERS (our --workers), BENCH_PEER_BUDGET_S
(time bound of one peer's sweep), BENCH_PEERS=0 to skip GuideLLM and aiperf,
BENCH_TRUST=1 to calibrate the trust figures instead (tests/bench/loadgen_trust.py: our
client starved in several ways, against the simulator's truth). Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen_peers as peers  # noqa: E402
import loadgen_trust  # noqa: E402
from vllmbench.harness.benchmark import run_benchmark  # noqa: E402
from vllmbench.harness.config import RunConfig  # noqa: E402
from vllmbench.simulator import SimConfig, SimulatorProcess  # noqa: E402
from vllmbench.stats import percentile  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
RATES = [float(r) for r in os.environ.get("BENCH_RATES", "100,200,300,400,500,600,800").split(",")]
PEER_RATES = [float(r) for r in os.environ.get("BENCH_PEER_RATES", "10,25,50,100,150,200,300,400").split(",")]
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
TTFT_TOLERANCE_MS = 2.0
CPU_TARGET_US = 5.0  # per streamed token: one core drives 1,000 req/s x 128 tokens
MISSES_AFTER_HELD = 2  # rates tried past the first one not held, to see where the client tops out
SIM = SimConfig(port=0, ttft_ms=20, itl_ms=5, max_num_seqs=100_000, record_limit=400_000)


def realtime(pid: int) -> str:
    """SCHED_RR for every thread of the simulator: it keeps its own timings whatever the client does,
    and it is the same for every tool because it is the same process for the whole benchmark."""
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    try:
        for tid in threads:
            os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(20))
        return f"SCHED_RR 20 ({len(threads)} thread{'s' if len(threads) > 1 else ''}, as `chrt -r -a -p 20 {pid}`)"
    except (PermissionError, AttributeError, OSError) as exc:
        return f"normal priority ({exc.__class__.__name__}: real-time priority needs root or CAP_SYS_NICE)"


def pin(sim_pid: int) -> str:
    """BENCH_PIN=1: the simulator on CPU 0, every client (ours and the peers, which inherit the
    affinity of this process) on the other CPUs, so that the real-time simulator never preempts
    the client it is measuring. Off by default: the reference figures were taken without it."""
    cpus = sorted(os.sched_getaffinity(0))
    if os.environ.get("BENCH_PIN", "0") != "1" or len(cpus) < 2:
        return "not pinned (BENCH_PIN=1 pins the simulator to one CPU and the clients to the others)"
    try:
        for tid in os.listdir(f"/proc/{sim_pid}/task"):
            os.sched_setaffinity(int(tid), {cpus[0]})
        os.sched_setaffinity(0, set(cpus[1:]))
    except OSError as exc:
        return f"not pinned ({exc.__class__.__name__}: {exc})"
    return f"simulator pinned to CPU {cpus[0]}, clients to CPU {','.join(map(str, cpus[1:]))}"


def pct(values: list[float], q: float) -> float:
    return percentile(sorted(values), q) if values else float("nan")


def ours(sim: SimulatorProcess, proc: psutil.Process) -> peers.Outcome:
    print(f"\nvllmbench run ({WORKERS} worker{'s' if WORKERS > 1 else ''}; TTFT and ITL errors per request against the "
          "simulator's record; arrivals from the simulator's record)")
    print(f"{'rate':>6} {'achieved':>8} {'arrived/s':>9} {'sched p50/p99 ms':>17} {'TTFT err p50/p99 ms':>20} "
          f"{'ITL err p50/p99 ms':>19} {'gap p99':>8} {'cpu us/tok':>10} {'client cpu%':>11} {'sim cpu%':>8} "
          f"{'sim TTFT p50':>12} {'lag p99':>8} {'est ms':>6} {'tog%':>5} verdict; trust")
    outcome = peers.Outcome()
    misses = 0
    for rate in RATES:
        since = time.monotonic_ns()
        sim_cpu = proc.cpu_times()
        wall = time.monotonic()
        report = run_benchmark(RunConfig(url=sim.url, rates=(rate,), duration_s=SECONDS, input_len="128",
                                         output_len="128", run_id=f"bench-{int(rate)}", timeout_s=60, workers=WORKERS))
        sim_cpu_pct = 100 * (sum(proc.cpu_times()[:2]) - sum(sim_cpu[:2])) / (time.monotonic() - wall)
        record, stage = report.records[0], report.stages[0]
        records = sim.truth(since)
        seen = peers.truth(records, rate)
        truth = {t["client_request_id"]: t for t in records if t["client_request_id"]}
        ttft_err, itl_err = [], []
        for rec in stage.records:
            t = truth.get(rec.request_id)
            if not rec.ok or not t or t["outcome"] != "ok" or len(t["token_ns"]) != len(rec.token_ns):
                continue
            ttft_err.append((rec.token_ns[0] - rec.sent_ns) / 1e6 - t["ttft_ms"])
            cg = [(b - a) / 1e6 for a, b in zip(rec.token_ns, rec.token_ns[1:])]
            tg = [(b - a) / 1e6 for a, b in zip(t["token_ns"], t["token_ns"][1:])]
            itl_err += [abs(c - s) for c, s in zip(cg, tg)]
        res = record.results
        trust = res.trust
        tokens = sum(len(r.token_ns) for r in stage.records)
        cpu_us_per_token = 1e6 * sum(stage.cpu_s_by_process) / max(1, tokens)
        # The same verdict as for the peers (TTFT p50 within 2 ms, no failure); our own trust figures are printed too.
        within = abs(pct(ttft_err, 50)) <= TTFT_TOLERANCE_MS and res.requests.failed == 0
        print(f"{rate:6.0f} {trust.achieved_rate_rps or 0:8.1f} {seen.arrival_rate or 0:9.1f} "
              f"{trust.schedule_delay_ms.p50:8.2f}/{trust.schedule_delay_ms.p99:<8.2f} "
              f"{pct(ttft_err, 50):9.2f}/{pct(ttft_err, 99):<10.2f} {pct(itl_err, 50):9.2f}/{pct(itl_err, 99):<9.2f} "
              f"{res.latency.itl.p99 if res.latency.itl else float('nan'):8.2f} {cpu_us_per_token:10.1f} "
              f"{trust.client_cpu_percent or 0:11.0f} {sim_cpu_pct:8.0f} {seen.ttft_p50_ms or float('nan'):12.2f} "
              f"{seen.lag_p99_ms or float('nan'):8.2f} {trust.ttft_p50_inflation_ms or 0:6.2f} "
              f"{trust.coalesced_tokens_percent or 0:5.1f} {'held' if within else 'NOT HELD'}; "
              f"{'trusted' if trust.trustworthy else 'untrustworthy: ' + '; '.join(trust.reasons or [])}",
              flush=True)
        if seen.arrival_rate:
            outcome.top = max(outcome.top or 0.0, seen.arrival_rate)
        outcome.note(rate, within, seen.lag_p99_ms, pct(ttft_err, 50), cpu_us_per_token)
        outcome.cpu_by_rate[rate] = cpu_us_per_token
        misses += not within
        if (seen.arrival_rate or 0) < peers.TOPPED_OUT * rate:
            outcome.topped = True
            break
        if misses > MISSES_AFTER_HELD:
            break
    return outcome


def main() -> int:
    print(f"simulator: TTFT {SIM.ttft_ms} ms, ITL {SIM.itl_ms} ms, 128 in / 128 out, streaming; {SECONDS:g} s per rate; "
          f"{psutil.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, peers.Outcome] = {}
    with SimulatorProcess(SIM) as sim:
        proc = psutil.Process(sim.pid)
        if os.environ.get("BENCH_TRUST", "0") == "1":
            print(f"simulator pid {sim.pid} at {realtime(sim.pid)}")
            loadgen_trust.calibrate(sim, seconds=float(os.environ.get("BENCH_SECONDS", "4")))
            return 0
        print(f"simulator pid {sim.pid} at {realtime(sim.pid)}, the same for every tool below; {pin(sim.pid)}")
        results["vllmbench"] = ours(sim, proc)
        if os.environ.get("BENCH_PEERS", "1") != "0":
            results.update(peers.run_all(sim, rates=PEER_RATES, seconds=SECONDS, tolerance_ms=TTFT_TOLERANCE_MS))
    print(f"\nside by side: highest constant rate with TTFT p50 within {TTFT_TOLERANCE_MS:g} ms of the simulator's record, "
          "the same with the requests reaching the server on time (arrival lag p99 <= 10 ms against an exact "
          "constant schedule, from the simulator's record), and the highest arrival rate the simulator saw from the tool "
          "(>= when it never fell below 90% of the rate asked)")
    print(f"  {'tool':10s} {'held':>17s} {'TTFT err there':>15s} {'held, lag p99 <= 10 ms':>23s} {'tops out near':>15s} "
          f"{'CPU us/token there':>19s}")
    for name, o in results.items():
        err = f"{o.error_at_held:+.2f} ms" if o.error_at_held is not None else "-"
        sched = f"{o.on_schedule:g} req/s" if o.on_schedule else ("-" if o.failure else "none")
        cpu = f"{o.cpu_at_held:.1f}" if o.cpu_at_held is not None else "-"
        print(f"  {name:10s} {o.held_text():>17s} {err:>15s} {sched:>23s} {o.top_text():>15s} {cpu:>19s}")
    best_peer = max((o.held or 0 for n, o in results.items() if n != "vllmbench"), default=0)
    if best_peer and results["vllmbench"].held:
        print(f"  vllmbench holds {results['vllmbench'].held / best_peer:.1f}x the best peer's rate (goal: 2x)")
    us = results["vllmbench"]
    if us.cpu_by_rate:
        print("  vllmbench client CPU per streamed token: "
              + ", ".join(f"{c:.1f} us at {r:g} req/s" for r, c in sorted(us.cpu_by_rate.items())))
    if us.cpu_at_held is not None:
        verdict = "met" if us.cpu_at_held <= CPU_TARGET_US else "NOT met"
        print(f"  target <= {CPU_TARGET_US:g} us per token (one core for 1,000 req/s of 128-token streams): {verdict} at "
              f"the highest rate held, {us.held:g} req/s ({us.cpu_at_held:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
