"""The embedded stack of `make run`, whole: real processes, real ports (shifted so that a
developer's own `make run` can stay up), a real benchmark end to end."""

from __future__ import annotations

import io
import random

import pytest
import requests

from vllmbench.embedded.processes import free_port
from vllmbench.embedded.stack import AlreadyRunning, Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stack_args(tmp_path):
    offset = random.randrange(20000, 40000, 10)
    return dict(data_dir=tmp_path / "data", port_offset=offset, broker_port=offset + 8090, mongo_port=free_port(),
                out=io.StringIO())


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
        summary = run_demo(stack.url("results"), api_token=None, out_dir=stack_args["data_dir"] / "demo",
                           duration_s=3.0, project="demo")
        run = requests.get(stack.url("results") + f"/runs/{summary['run_id']}", timeout=10).json()
        assert run["standardized"][0]["results"]["requests"]["succeeded"] > 0
        assert run["standardized"][0]["run"]["project"] == "demo"
    finally:
        stack.stop()
    again = Stack(**{**stack_args, "out": io.StringIO()}).start()
    try:
        run = requests.get(again.url("results") + f"/runs/{summary['run_id']}", timeout=10)
        assert run.status_code == 200, "results did not survive a restart"
    finally:
        again.stop()
