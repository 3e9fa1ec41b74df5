"""`vllmbench post-raw`, the last step of the other harnesses' jobs, against the real Results service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
VLLMBENCH = str(Path(sys.executable).parent / "vllmbench")


def post_raw(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([VLLMBENCH, "post-raw", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def results(serve_function):
    return serve_function("results", api_token="s3cret-token")


def test_posts_a_guidellm_report_with_the_run_id_and_it_is_standardized(results):
    args = ["--harness=guidellm", "--harness-version=0.8.1", "--run-id=ev-1-r0", f"--results-url={results.url}",
            "--project=demo", "--model=facebook/opt-125m", "--tag=nightly", str(DATA / "guidellm_benchmarks.json")]
    first = post_raw(*args, env={"VLLMBENCH_API_TOKEN": "s3cret-token"})
    assert first.returncode == 0, first.stderr
    assert "for run ev-1-r0: stored as raw" in first.stdout and "3 standardized record(s)" in first.stdout
    run = results.get("/runs/ev-1-r0").json()
    assert [r["scenario"]["harness"] for r in run["standardized"]] == [{"name": "guidellm", "version": "0.8.1"}] * 3
    assert run["raw"][0]["tags"] == ["nightly"] and run["raw"][0]["project"] == "demo"
    again = post_raw(*args, env={"VLLMBENCH_API_TOKEN": "s3cret-token"})
    assert again.returncode == 0 and "already stored" in again.stdout
    assert "s3cret-token" not in first.stdout + first.stderr + again.stdout + again.stderr


def test_the_newest_match_of_a_glob_is_posted(results, tmp_path):
    older, newer = tmp_path / "results_2026-01-01.json", tmp_path / "results_2026-12-01.json"
    data = json.loads((DATA / "lm_eval_results.json").read_text())
    older.write_text(json.dumps({"results": {"old": {"acc,none": 0.1}}}))
    newer.write_text(json.dumps(data))
    os.utime(older, (time.time() - 60, time.time() - 60))
    proc = post_raw("--harness=lm-eval", "--run-id=acc-1", f"--results-url={results.url}",
                    "--api-token=s3cret-token", str(tmp_path / "results_*.json"))
    assert proc.returncode == 0, proc.stderr
    [stored] = results.get("/runs/acc-1").json()["standardized"]
    assert set(stored["results"]["accuracy"]) == {"vb_hi", "vb_bye"}
    # an accuracy record (no throughput) is listed, exported and compared like any other
    assert results.get("/standardized_output?harness=lm-eval").json()["count"] == 1
    assert results.get("/runs/acc-1/llmd").status_code == 200
    assert results.get("/compare?runs=acc-1,acc-1").status_code == 200
    page = results.get("/runs/acc-1/report")
    assert page.status_code == 200 and "exact_match,first-word" in page.text


def test_a_refusal_fails_at_once_with_the_services_message(results, tmp_path):
    bad = tmp_path / "benchmarks.json"
    bad.write_text(json.dumps({"results": []}))
    started = time.monotonic()
    proc = post_raw("--harness=guidellm", "--run-id=ev-2", f"--results-url={results.url}",
                    "--api-token=s3cret-token", str(bad))
    assert proc.returncode == 1 and time.monotonic() - started < 30
    assert "refused" in proc.stderr and "HTTP 422" in proc.stderr and "non-empty 'benchmarks' list" in proc.stderr
    wrong_token = post_raw("--harness=guidellm", "--run-id=ev-2", f"--results-url={results.url}",
                           "--api-token=nope", str(DATA / "guidellm_benchmarks.json"))
    assert wrong_token.returncode == 1 and "HTTP 401" in wrong_token.stderr
    assert results.get("/raw_input").json()["count"] == 0


@pytest.mark.parametrize("content,message", [(None, "wrote no output"), ("not json", "not a JSON file"),
                                             ("[1, 2]", "JSON list")])
def test_no_or_bad_output_file_is_a_bad_input_exit(tmp_path, content, message):
    path = tmp_path / "out.json"
    if content is not None:
        path.write_text(content)
    proc = post_raw("--harness=guidellm", "--run-id=r", "--results-url=http://127.0.0.1:9", str(path))
    assert proc.returncode == 2 and message in proc.stderr


def test_a_results_service_that_never_answers_is_given_up_after_the_wait(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    proc = post_raw("--harness=guidellm", "--run-id=r", f"--results-url=http://127.0.0.1:{port}", "--wait=2",
                    str(DATA / "guidellm_benchmarks.json"))
    assert proc.returncode == 1 and "gave up after" in proc.stderr and "no answer" in proc.stderr
    assert time.monotonic() - started < 20


def test_while_the_database_is_down_it_retries_and_lands_when_it_is_back(serve_function, ferretdb):
    if ferretdb is None:
        pytest.skip("MONGO_URL points at a server this test cannot stop")
    results = serve_function("results")
    assert results.get("/ready").status_code == 200
    ferretdb.stop()
    proc = subprocess.Popen([VLLMBENCH, "post-raw", "--harness=vllm-bench-serve", "--run-id=ev-3",
                             f"--results-url={results.url}", "--wait=60", str(DATA / "vllm_bench_serve_detailed.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    refused: list[str] = []
    try:
        for line in proc.stderr:  # the database comes back once the client has been refused (not on a timer:
            refused.append(line)  # on a loaded machine the client may take seconds to send its first request)
            if "HTTP 503" in line:
                break
    finally:
        ferretdb.start()
    out, err = proc.communicate(timeout=90)
    stderr = "".join(refused) + err
    assert proc.returncode == 0, stderr
    assert "HTTP 503" in stderr and "retrying in" in stderr  # it was refused for a while
    assert "1 standardized record(s)" in out
    assert len(results.get("/runs/ev-3").json()["standardized"]) == 1
