"""The embedded stack's end-to-end benchmark, through the whole system: an evaluation of the demo
project is posted to the eval function, the vLLM service places the demo ModelServer (the
simulator plays vLLM where vLLM is not installed), the job runs as a local process, its
results are stored and judged, and the verdict is printed with where to look."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig, SloSpec
from vllmbench.harness.output import post_results, write_files
from vllmbench.simulator import SimConfig, SimulatorProcess

TERMINAL = ("done", "failed", "timed_out", "cancelled")


def benchmark_simulator(results_url: str, *, api_token: str | None, out_dir: Path, rate: float = 5.0,
             duration_s: float = 10.0, project: str | None = None) -> dict[str, Any]:
    """The short benchmark without the rest of the system (what the demo did before evaluations):
    start the simulator on a free port, benchmark it for ``duration_s`` at ``rate``,
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



def _call(method: str, url: str, *, token: str | None, body: Any = None, timeout: float = 60.0) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()[:500].decode(errors="replace")
        raise RuntimeError(f"{method} {url} answered {exc.code}: {text}") from None


def run_demo(urls: dict[str, str], *, api_token: str | None, project: str = "demo", benchmark: str = "chat-short",
             server: str = "default/opt-125m", repeat: int = 1, timeout_s: float = 300.0,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate ``benchmark`` of ``project`` on ``server`` and follow it to its end; the evaluation as
    the eval function answers it. ``urls``: folder -> base URL of each function."""
    name = f"demo-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    body = {"project": project, "benchmark": benchmark, "server": server, "repeat": repeat, "name": name}
    say(f"evaluating: POST {urls['eval']}/evaluate {json.dumps(body)}")
    started = _call("POST", f"{urls['eval']}/evaluate", token=api_token, body=body)
    shown = 0
    deadline = time.monotonic() + timeout_s
    evaluation = started
    while True:
        evaluation = _call("GET", f"{urls['eval']}/evaluations/{started['id']}", token=api_token)
        for entry in evaluation["timeline"][shown:]:
            say(f"  {entry['at'][11:19]}  {entry['state']:<11} {entry['reason']}")
        shown = len(evaluation["timeline"])
        if evaluation["state"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            say(f"  still {evaluation['state']} after {timeout_s:.0f} s; it goes on: "
                f"{urls['eval']}/evaluations/{started['id']}")
            break
        time.sleep(1.0)
    _summary(evaluation, urls, say)
    return evaluation


def _summary(evaluation: dict[str, Any], urls: dict[str, str], say: Callable[[str], None]) -> None:
    say(f"evaluation {evaluation['id']}: {evaluation['state']}  {urls['eval']}/evaluations/{evaluation['id']}")
    verdict = evaluation.get("verdict") or {}
    if verdict:
        baseline = f" against {verdict['baseline']}" if verdict.get("baseline") else ""
        say(f"  verdict: {verdict.get('verdict')}{baseline}: {verdict.get('summary')}")
        metrics = verdict.get("metrics") or {}
        stages = sorted({key.split(":", 1)[0] for key in metrics})
        for stage in stages:
            figures = []
            for name, label, unit in (("ttft_p50", "TTFT p50", "ms"), ("itl_p50", "ITL p50", "ms"),
                                      ("e2e_p50", "e2e p50", "ms"), ("requests_per_s", "", "req/s"),
                                      ("output_tokens_per_s", "", "tokens/s"), ("goodput_rps", "goodput", "req/s")):
                value = metrics.get(f"{stage}:{name}")
                if value:
                    figures.append(f"{label} {value['mean']:.1f} {unit}".strip())
            say(f"  stage {stage[1:]}: " + ", ".join(figures))
    for repeat in evaluation.get("repeats") or []:
        say(f"  run {repeat['run_id']}: {urls['results']}/runs/{repeat['run_id']} "
            f"(report: {urls['results']}/runs/{repeat['run_id']}/report)")
        if repeat.get("job"):
            say(f"  job logs: {urls['deploy']}/jobs/{repeat['job']}/logs")
