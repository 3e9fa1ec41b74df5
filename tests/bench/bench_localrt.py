"""The local workload runtime, measured: the Service forwarder under benchmark traffic, reads
of the local 'API server', pod start and log follow.

1. A vLLM-image Deployment (the simulator: TTFT 20 ms, ITL 5 ms) behind a Service. Our load
   generator sends a constant 200 req/s (BENCH_RATE), streaming, 128 prompt + 64 output tokens
   (BENCH_OUTPUT), for BENCH_SECONDS per stage, alternately straight to the pod's port and
   through the Service's forwarder, BENCH_REPEATS times. Printed per stage: achieved rate,
   TTFT / ITL / e2e p50 and p99, failures, the forwarder's CPU; then the forwarder's added
   latency (forwarded minus direct, median over the pairs). Figures are noisy on a shared
   2-core machine: compare the pairs of one run, and repeat.
2. list() of 200 ConfigMaps, 200 Jobs (suspended: the controller runs, no pods) and of 20 pods.
3. Pod start: apply of a Job to its container running, and to the Job Complete.
4. Log follow: lines per second through logs(follow=True) and the delay from a line's write
   in the container to the reader.

Traffic goes to 127.0.0.1 only. Asserts nothing about time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vllmbench.harness.benchmark import run_benchmark  # noqa: E402
from vllmbench.harness.config import RunConfig  # noqa: E402
from vllmbench.runtimes.base import ObjectRef, kind_of  # noqa: E402
from vllmbench.runtimes.local import LocalRuntime  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
OUTPUT = os.environ.get("BENCH_OUTPUT", "64")
VLLMBENCH = "ghcr.io/vllmbench/vllmbench:0.1.0"


def wait(check, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError("timed out")


def simulator(rt: LocalRuntime) -> tuple[str, str, int]:
    rt.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sim", "namespace": "bench"},
              "spec": {"selector": {"app": "sim"}, "ports": [{"port": 80, "targetPort": 8000}]}}, field_manager="b")
    rt.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sim", "namespace": "bench"},
              "spec": {"selector": {"matchLabels": {"app": "sim"}}, "template": {
                  "metadata": {"labels": {"app": "sim"}},
                  "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest",
                                           "args": ["--model", "sim-model", "--port", "8000", "--max-num-seqs",
                                                    "100000"],
                                           "ports": [{"containerPort": 8000}],
                                           "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1}}]}}}},
             field_manager="b")
    wait(lambda: rt.get(ObjectRef("apps/v1", "Deployment", "bench", "sim"))["status"].get("availableReplicas"))
    [pod] = rt.pods("bench", {"app": "sim"})
    import json

    direct = json.loads(pod["metadata"]["annotations"]["vllmbench.dev/local-ports"])["vllm"]["8000"]
    forwarder = int((rt.root / "services" / "bench" / "sim" / "forwarder.pid").read_text())
    time.sleep(1.0)  # the forwarder's endpoints refresh
    return f"http://127.0.0.1:{direct}", rt.service_url("bench", "sim", 80), forwarder


def stage(url: str, label: str, forwarder: psutil.Process) -> dict[str, float]:
    cpu = forwarder.cpu_times()
    started = time.monotonic()
    report = run_benchmark(RunConfig(url=url, rates=(RATE,), duration_s=SECONDS, input_len="128", output_len=OUTPUT,
                                     run_id=f"localrt-{label}", timeout_s=60))
    wall = time.monotonic() - started
    after = forwarder.cpu_times()
    res = report.records[0].results
    lat = res.latency
    out = {"achieved": res.trust.achieved_rate_rps or 0.0, "ttft50": lat.ttft.p50, "ttft99": lat.ttft.p99,
           "itl50": lat.itl.p50, "itl99": lat.itl.p99, "e2e50": lat.e2e.p50, "e2e99": lat.e2e.p99,
           "failed": res.requests.failed, "fwd_cpu": 100 * (after.user + after.system - cpu.user - cpu.system) / wall}
    print(f"{label:>9} {out['achieved']:8.1f} {out['ttft50']:8.2f}/{out['ttft99']:<8.2f} "
          f"{out['itl50']:6.2f}/{out['itl99']:<7.2f} {out['e2e50']:8.1f}/{out['e2e99']:<8.1f} {out['failed']:6d} "
          f"{out['fwd_cpu']:8.1f}%", flush=True)
    return out


def forwarder_overhead(rt: LocalRuntime) -> None:
    direct, forwarded, pid = simulator(rt)
    proc = psutil.Process(pid)
    print(f"\n1. Service forwarder at {RATE:.0f} req/s, 128 prompt + {OUTPUT} output tokens, streaming, "
          f"{SECONDS:.0f} s per stage, {REPEATS} pairs (direct: {direct}, forwarded: {forwarded})")
    print(f"{'path':>9} {'achieved':>8} {'TTFT p50/p99 ms':>17} {'ITL p50/p99':>14} {'e2e p50/p99 ms':>17} "
          f"{'failed':>6} {'fwd cpu':>9}")
    pairs = []
    for _ in range(REPEATS):
        pairs.append((stage(direct, "direct", proc), stage(forwarded, "forwarded", proc)))
    for key, name in (("ttft50", "TTFT p50"), ("ttft99", "TTFT p99"), ("itl50", "ITL p50"), ("e2e50", "e2e p50"),
                      ("e2e99", "e2e p99")):
        deltas = [f[key] - d[key] for d, f in pairs]
        print(f"   forwarder adds to {name}: median {statistics.median(deltas):+.2f} ms "
              f"(pairs: {', '.join(f'{x:+.2f}' for x in deltas)})")
    print(f"   forwarder CPU while forwarding: {statistics.median(f['fwd_cpu'] for _, f in pairs):.1f}% of one core "
          f"(direct stages, idle forwarder: {statistics.median(d['fwd_cpu'] for d, _ in pairs):.1f}%)")


def reads(rt: LocalRuntime) -> None:
    print("\n2. Reads of the local API server (median of 5, after a first read)")
    cm, jobs = kind_of("v1", "ConfigMap"), kind_of("batch/v1", "Job")
    started = time.perf_counter()
    for i in range(200):
        rt.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:03d}", "namespace": "reads"},
                  "data": {"model": "opt", "blob": "x" * 500}}, field_manager="b")
    print(f"   apply of 200 new ConfigMaps: {(time.perf_counter() - started) * 1000:.0f} ms")
    started = time.perf_counter()
    for i in range(200):
        rt.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:03d}", "namespace": "reads"},
                  "data": {"model": "opt", "blob": "x" * 500}}, field_manager="b")
    print(f"   re-apply of the same 200 (no writes): {(time.perf_counter() - started) * 1000:.0f} ms")
    for i in range(200):
        rt.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"job-{i:03d}", "namespace": "reads"},
                  "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                      {"name": "c", "image": VLLMBENCH, "args": ["simulate", "--help"]}]}}}}, field_manager="b")
    for label, kind, ns in (("200 ConfigMaps", cm, "reads"), ("200 Jobs (controller pass each)", jobs, "reads"),
                            ("pods of the simulator namespace", kind_of("v1", "Pod"), "bench")):
        rt.list(kind, namespace=ns)
        took = []
        for _ in range(5):
            t = time.perf_counter()
            n = len(rt.list(kind, namespace=ns))
            took.append(time.perf_counter() - t)
        print(f"   list {label}: {statistics.median(took) * 1000:.1f} ms ({n} objects)")


def pod_start(rt: LocalRuntime) -> None:
    print("\n3. Pod start (apply to running, to Complete), median of 3")
    running, complete = [], []
    for i in range(3):
        manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"start-{i}", "namespace": "start"},
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "c", "image": VLLMBENCH, "command": ["python", "-c", "print('hi')"]}]}}}}
        t = time.monotonic()
        rt.apply(manifest, field_manager="b")
        applied = time.monotonic() - t
        wait(lambda: any("running" in c["state"] or "terminated" in c["state"]
                         for p in rt.pods("start", {"job-name": f"start-{i}"})
                         for c in p["status"]["containerStatuses"]))
        running.append(time.monotonic() - t)
        wait(lambda: any(c["type"] == "Complete" for c in rt.get(ObjectRef.of(manifest))["status"].get(
            "conditions", [])))
        complete.append(time.monotonic() - t)
        print(f"   job {i}: apply returned after {applied * 1000:.0f} ms")
    print(f"   container started: {statistics.median(running) * 1000:.0f} ms; Job Complete: "
          f"{statistics.median(complete) * 1000:.0f} ms (a python process that prints one line)")


def _follow(rt: LocalRuntime, name: str, code: str) -> tuple[int, float, list[float]]:
    rt.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "logs"},
              "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                  {"name": "c", "image": VLLMBENCH, "command": ["python", "-c", code]}]}}}}, field_manager="b")
    pod = wait(lambda: rt.pods("logs", {"job-name": name}))[0]["metadata"]["name"]
    delays, first, count = [], None, 0
    for line in rt.logs("logs", pod, follow=True):
        now = time.time()
        first = first or now
        count += 1
        delays.append((now - float(line.split()[1])) * 1000)
    return count, time.time() - (first or time.time()), sorted(delays)


def log_follow(rt: LocalRuntime) -> None:
    print("\n4. Log follow through logs(follow=True)")
    fast = "import time\nfor i in range(50000):\n    print(i, time.time())"
    count, took, _ = _follow(rt, "fast", fast)
    print(f"   a container writing as fast as it can: {count} lines in {took:.2f} s = {count / max(took, 1e-9):,.0f} "
          "lines/s to the reader")
    slow = "import time\nfor i in range(200):\n    print(i, time.time(), flush=True)\n    time.sleep(0.02)"
    count, took, delays = _follow(rt, "slow", slow)
    print(f"   one line every 20 ms ({count} lines): delay from the container's write to the reader p50 "
          f"{delays[len(delays) // 2]:.1f} ms, p99 {delays[int(len(delays) * 0.99)]:.1f} ms, max {delays[-1]:.1f} ms")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-localrt-") as tmp:
        rt = LocalRuntime(Path(tmp) / "workloads")
        try:
            forwarder_overhead(rt)
            reads(rt)
            pod_start(rt)
            log_follow(rt)
        finally:
            print("\nshutdown:", rt.shutdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
