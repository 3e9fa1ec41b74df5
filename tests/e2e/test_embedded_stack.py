"""The embedded stack of `make run`, whole: real processes, real ports (shifted so that a
developer's own `make run` can stay up), a real benchmark end to end."""

from __future__ import annotations

import io

import pytest
import requests

from tests.e2e.ports import free_offset
from vllmbench.embedded.processes import free_port
from vllmbench.embedded.stack import AlreadyRunning, Stack

pytestmark = pytest.mark.slow  # one stack at a time under pytest-xdist: tests/e2e is one unit (tests/fixtures/parallel.py)


@pytest.fixture
def stack_args(tmp_path):
    offset = free_offset()
    return dict(data_dir=tmp_path / "data", port_offset=offset, broker_port=offset + 8090, mongo_port=free_port(),
                out=io.StringIO())


QUICK = """name: quick
model: opt-125m
server: default/opt-125m
load: {mode: rate, arrival: constant, rate_rps: 4, duration_s: 3, dataset: synthetic,
       input_tokens: {kind: fixed, mean: 32}, output_tokens: {kind: fixed, mean: 16}}
verdict: {threshold_percent: 10, metrics: [ttft_p50, e2e_p50]}
"""


def test_make_run_benchmarks_end_to_end_and_keeps_data_across_restarts(stack_args):
    from vllmbench.embedded.demo import run_demo

    stack = Stack(**stack_args).start()
    try:
        printed = stack_args["out"].getvalue()
        for folder in ("results", "sync", "deploy", "mlflow_poll", "eval", "vllm_deploy"):
            assert stack.url(folder) in printed
            assert requests.get(stack.url(folder) + "/health", timeout=5).json()["status"] == "ok"
            assert requests.get(stack.url(folder) + "/ready", timeout=10).status_code == 200
            assert requests.get(stack.url(folder) + "/docs", timeout=5).status_code == 200
        seed = requests.get(stack.url("vllm_deploy") + "/deployments/default.opt-125m/status", timeout=30).json()
        assert seed["status"] == "ready", seed  # the seed's ModelServer, placed and answering at start
        assert "vllm server  default/opt-125m: ready at http://127.0.0.1:" in printed
        models = requests.get(seed["url"] + "/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["opt-125m"]
        files = requests.get(stack.url("sync") + "/projects/demo/files", timeout=10)
        assert files.status_code == 200, files.text
        with pytest.raises(AlreadyRunning):
            Stack(**{**stack_args, "out": io.StringIO()}).start()
        # a person edits the configuration through the Manager (a commit), then the demo evaluates it:
        # the eval function asks the vLLM service for the server, the job runs as a local process
        edited = requests.put(stack.url("sync") + "/projects/demo/files/benchmarks/quick.yaml", data=QUICK,
                              timeout=60)
        assert edited.status_code == 200, edited.text
        urls = {folder: stack.url(folder) for folder in ("results", "deploy", "eval", "vllm_deploy")}
        lines: list[str] = []
        first = run_demo(urls, api_token=None, benchmark="quick", say=lines.append)
        assert first["state"] == "done", lines
        assert first["verdict"]["verdict"] in ("no_baseline", "untrustworthy"), first["verdict"]
        run_id = first["repeats"][0]["run_id"]
        run = requests.get(stack.url("results") + f"/runs/{run_id}", timeout=10).json()
        assert run["standardized"][0]["results"]["requests"]["succeeded"] > 0
        assert run["standardized"][0]["run"]["project"] == "demo"
        assert any("server ready at http://127.0.0.1:" in line for line in lines), lines
        assert any(f"/runs/{run_id}/report" in line for line in lines), lines
    finally:
        stack.stop()
    again = Stack(**{**stack_args, "out": io.StringIO()}).start()
    try:
        run = requests.get(again.url("results") + f"/runs/{run_id}", timeout=10)
        assert run.status_code == 200, "results did not survive a restart"
        urls = {folder: again.url(folder) for folder in ("results", "deploy", "eval", "vllm_deploy")}
        second = run_demo(urls, api_token=None, benchmark="quick", say=lambda line: None)
        assert second["state"] == "done"
        if first["verdict"]["verdict"] == "no_baseline" and second["verdict"]["verdict"] != "untrustworthy":
            assert second["verdict"]["baseline"] == first["id"]  # judged against the first, after the restart
    finally:
        again.stop()
