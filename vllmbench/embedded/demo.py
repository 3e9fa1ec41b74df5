"""The embedded stack's end-to-end benchmark: the simulator, a short run of the load
generator against it, and the results posted to the Results service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig, SloSpec
from vllmbench.harness.output import post_results, write_files
from vllmbench.simulator import SimConfig, SimulatorProcess


def run_demo(results_url: str, *, api_token: str | None, out_dir: Path, rate: float = 5.0,
             duration_s: float = 10.0, project: str | None = None) -> dict[str, Any]:
    """Start the simulator on a free port, benchmark it for ``duration_s`` at ``rate``,
    post raw and standardized output to ``results_url``, stop the simulator, and return
    a summary (run id, figures, files)."""
    with SimulatorProcess(SimConfig(port=0, ttft_ms=20, itl_ms=5, models=("sim-model",))) as sim:
        cfg = RunConfig(url=sim.url, rates=(rate,), duration_s=duration_s, input_len="128", output_len="64",
                        slo=SloSpec(ttft_ms=50, tpot_ms=10), project=project, tags=("demo", "simulator"))
        report = run_benchmark(cfg)
    files = write_files(report, out_dir)
    posted = post_results(report, results_url, api_token=api_token)
    res = report.records[0].results
    return {
        "run_id": report.config.run_id,
        "model": report.model,
        "requests": res.requests.model_dump(),
        "requests_per_s": res.throughput.requests_per_s,
        "ttft_p50_ms": res.latency.ttft.p50 if res.latency.ttft else None,
        "itl_p50_ms": res.latency.itl.p50 if res.latency.itl else None,
        "trustworthy": report.trustworthy,
        "files": [str(p) for p in files],
        "posted": posted,
    }
