"""Two client processes sending one schedule together (`vllmbench run --shard I/2 --start-at T`), for real:
against the simulator (no GPU here: it plays vLLM with known latencies), posting to the real Results
service, where shard 0 merges the parts. The merged run must equal a single client's run of the same
schedule at a rate one client holds: the same counts, TTFT and ITL p50 within 1 ms. Loopback only,
a few seconds of load each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

VLLMBENCH = str(Path(sys.executable).parent / "vllmbench")
LOAD = ["--rate=40", "--duration=3", "--arrival=poisson", "--seed=3", "--input-len=32", "--output-len=16",
        "--model=sim-model", "--quiet", "--slo-ttft-ms=200"]
ATTEMPTS = 3


def vllmbench(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLMBENCH_")}
    return subprocess.Popen([VLLMBENCH, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def record(results: Any, run_id: str) -> dict[str, Any]:
    [rec] = results.get(f"/runs/{run_id}").json()["standardized"]
    return rec


def test_two_shards_make_the_run_one_client_makes(serve_function: Any, sim: Any) -> None:
    results = serve_function("results")
    for attempt in range(ATTEMPTS):
        single_id, merged_id = f"single-{attempt}", f"merged-{attempt}"
        finish(vllmbench(f"--url={sim.url}", f"--results-url={results.url}", f"--run-id={single_id}", *LOAD))
        start = time.time() + 6  # both processes started, imported and checked the server by then
        shards = [vllmbench(f"--url={sim.url}", f"--results-url={results.url}", f"--run-id={merged_id}",
                            f"--shard={k}/2", f"--start-at={start:.3f}", *LOAD) for k in range(2)]
        outputs = [finish(p) for p in shards]
        single, merged = record(results, single_id), record(results, merged_id)
        if single["results"]["trust"]["trustworthy"] and merged["results"]["trust"]["trustworthy"]:
            break  # a client starved by this shared machine is marked so; such a pair compares nothing
    assert "merged from 2 client pods" in outputs[0] and "merged from" not in outputs[1]
    s, m = single["results"], merged["results"]
    print(f"attempt {attempt}: requests single {s['requests']['total']} merged {m['requests']['total']}, "
          f"ITLs single {s['latency']['itl']['count']} merged {m['latency']['itl']['count']}; "
          f"TTFT p50 single {s['latency']['ttft']['p50']:.3f} merged {m['latency']['ttft']['p50']:.3f} ms; "
          f"ITL p50 single {s['latency']['itl']['p50']:.3f} merged {m['latency']['itl']['p50']:.3f} ms; "
          f"achieved single {s['trust']['achieved_rate_rps']:.2f} merged {m['trust']['achieved_rate_rps']:.2f} req/s")
    assert m["requests"] == s["requests"] and s["requests"]["total"] == 120 and s["requests"]["failed"] == 0
    assert m["latency"]["ttft"]["count"] == s["latency"]["ttft"]["count"]
    assert m["latency"]["itl"]["count"] == s["latency"]["itl"]["count"] == 120 * 15
    assert abs(m["latency"]["ttft"]["p50"] - s["latency"]["ttft"]["p50"]) < 1.0, (m["latency"]["ttft"], s["latency"]["ttft"])
    assert abs(m["latency"]["itl"]["p50"] - s["latency"]["itl"]["p50"]) < 1.0, (m["latency"]["itl"], s["latency"]["itl"])
    assert m["trust"]["achieved_rate_rps"] == pytest.approx(s["trust"]["achieved_rate_rps"], rel=0.1)
    assert merged["labels"] == {"client_pods": "2"} and merged["scenario"]["load"]["rate_rps"] == 40
    # each pod's part is a run of its own, with its own trust figures, and the merged run has every request
    parts = [record(results, f"{merged_id}-p{k}") for k in range(2)]
    assert [p["results"]["requests"]["total"] for p in parts] == [60, 60]
    assert [p["labels"]["shard"] for p in parts] == ["0/2", "1/2"]
    assert all(p["results"]["trust"]["requested_rate_rps"] == pytest.approx(20.0) for p in parts)
    page = results.get(f"/runs/{merged_id}/requests", params={"limit": 200}).json()
    assert page["total"] == 120 and sorted(r["index"] for r in page["items"]) == list(range(120))
    raw = results.get(f"/runs/{merged_id}").json()["raw"][-1]["data"]
    assert [p["run_id"] for p in raw["stages"][0]["pods"]] == [f"{merged_id}-p0", f"{merged_id}-p1"]
    assert raw["config"]["shards"] == 2 and raw["config"]["shard_index"] is None


def test_a_shard_that_starts_after_the_start_time_fails_at_once_saying_why(sim: Any, serve_function: Any) -> None:
    results = serve_function("results")
    late = vllmbench(f"--url={sim.url}", f"--results-url={results.url}", "--run-id=late-1", "--shard=1/2",
                     f"--start-at={time.time() - 5:.3f}", *LOAD)
    out, _ = late.communicate(timeout=60)
    assert late.returncode == 2, out
    assert "error: shard 1/2 was ready" in out and "the client pods did not start together" in out
    assert results.get("/runs/late-1-p1").status_code == 404  # nothing sent, nothing posted
