"""The lm-eval template for real: lm-evaluation-harness 0.4.13 runs the args the template renders
against the simulator (its /v1/completions), then `vllmbench post-raw` runs the template's post step
against the real Results service, and the accuracy record is read back.

lm-eval is installed by tools/install-lm-eval.sh into its own venv in the cache (once: a few
minutes; the run itself takes about 20-30 s here). The two tasks in tests/data/lm_eval_tasks are
offline (a local JSONL, HF_DATASETS_OFFLINE=1); the simulator answers " hi" to every prompt, so
their exact_match is known: 3 of 5 and 1 of 4. VLLMBENCH_UPDATE_FIXTURES=1 rewrites
tests/data/lm_eval_results.json from this run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.templates import builtin, containers, profile, values
from vllmbench.evals.templates import render
from vllmbench.simulator import SimConfig, SimulatorProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TASKS = REPO / "tests" / "data" / "lm_eval_tasks"
FIXTURE = REPO / "tests" / "data" / "lm_eval_results.json"
RUN_BUDGET_S = 60


def _lm_eval() -> str:
    proc = subprocess.run([str(REPO / "tools" / "install-lm-eval.sh")], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"tools/install-lm-eval.sh failed: {proc.stderr.strip()[-800:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


def _here(args: list[str], output: Path) -> list[str]:
    """The container's paths in this test's folder (the emptyDir is /output in the pod)."""
    return [a.replace("/output", str(output)) for a in args]


@pytest.mark.timeout(2400)  # the first run installs lm-eval
def test_lm_eval_template_runs_for_real_and_its_accuracy_is_stored(serve_function, tmp_path):
    lm_eval = _lm_eval()
    results = serve_function("results")
    output = tmp_path / "output"
    output.mkdir()
    with SimulatorProcess(SimConfig(port=0, ttft_ms=1, itl_ms=1, models=("sim-model",))) as sim:
        bench = profile(load={"mode": "concurrency", "concurrency": 2},
                        accuracy={"tasks": ["vb_hi", "vb_bye"], "include_path": str(TASKS)})
        job = render(builtin("lm-eval"), values(server_url=sim.url, model="sim-model", results_url=results.url,
                                                 run_id="acc-live-r0", token_secret="", benchmark=bench))
        parts = containers(job)
        harness, post = parts["harness"], parts["post-results"]
        assert harness["command"][2].endswith('exec lm_eval "$@"')  # what the pod runs after installing lm-eval
        env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
               "TQDM_DISABLE": "1"}
        started = time.monotonic()
        run = subprocess.run([lm_eval, *_here(harness["args"], output)], cwd=TASKS, env=env, capture_output=True,
                             text=True, timeout=RUN_BUDGET_S * 2)
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-2000:]
        assert took < RUN_BUDGET_S, f"lm-eval took {took:.0f} s"
        served = sim.truth()
    assert len(served) == 9 and {r["model"] for r in served} == {"sim-model"}  # one generation per sample
    (written,) = output.glob("results_*.json")
    assert post["command"] == ["vllmbench"]
    posted = subprocess.run([str(Path(sys.executable).parent / "vllmbench"), *_here(post["args"], output)],
                            capture_output=True, text=True, timeout=60)
    assert posted.returncode == 0, posted.stderr
    assert str(written) in posted.stdout and "1 standardized record(s)" in posted.stdout

    [record] = results.get("/runs/acc-live-r0").json()["standardized"]
    accuracy = record["results"]["accuracy"]
    assert accuracy["vb_hi"]["exact_match,first-word"]["value"] == 0.6
    assert accuracy["vb_bye"]["exact_match"]["value"] == 0.25
    assert accuracy["vb_hi"]["exact_match,first-word"]["samples"] == 5
    assert record["scenario"]["harness"] == {"name": "lm-eval", "version": "0.4.13"}
    assert record["scenario"]["load"]["concurrency"] == 2 and record["results"]["throughput"] is None
    if os.environ.get("VLLMBENCH_UPDATE_FIXTURES"):  # this checkout's paths left out
        FIXTURE.write_text(written.read_text().replace(str(REPO), "$REPO"))
    fixture = json.loads(FIXTURE.read_text())
    fresh = json.loads(written.read_text())
    assert fixture["results"] == fresh["results"] and fixture["n-samples"] == fresh["n-samples"]
    assert fixture["config"]["model_args"].keys() == fresh["config"]["model_args"].keys()
