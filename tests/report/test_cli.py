"""``vllmbench results ...`` and ``vllmbench report`` through the real command line, against
the real Results service (functions-framework app, FerretDB) serving a real run."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.records import record
from tests.report.conftest import SWEEP_RUN, sweep_raw, sweep_records

TOKEN = "cli-t0ken-4242"


def vllmbench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = "import sys; sys.argv[0] = 'vllmbench'; from vllmbench.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if k not in ("VLLMBENCH_API_TOKEN", "VLLMBENCH_RESULTS_URL")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def service(serve_function, sweep_dir):
    results = serve_function("results", api_token=TOKEN)
    assert results.post("/raw_input", json=sweep_raw(sweep_dir)).status_code == 201
    other = record("other-run", project="elsewhere", model="other/model", tags=["weekly"])
    assert results.post("/standardized_output", json=other).status_code == 201
    return results


def cli(service, *args: str) -> subprocess.CompletedProcess[str]:
    return vllmbench(*args, "--results-url", service.url, "--api-token", TOKEN)


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_ls_lists_with_the_apis_filters(service):
    everything = cli(service, "results", "ls")
    assert everything.returncode == 0, everything.stderr
    assert SWEEP_RUN in everything.stdout and "other-run" in everything.stdout
    assert "UNTRUSTWORTHY" in everything.stdout
    mine = cli(service, "results", "ls", "--project", "reports", "--tag", "report-test")
    assert SWEEP_RUN in mine.stdout and "other-run" not in mine.stdout
    page = json.loads(cli(service, "results", "ls", "--model", "other/model", "--json").stdout)
    assert [item["run"]["run_id"] for item in page["items"]] == ["other-run"]
    first = cli(service, "results", "ls", "--limit", "1")
    assert "more: --cursor " in first.stdout
    cursor = first.stdout.split("more: --cursor ")[1].split()[0]
    second = cli(service, "results", "ls", "--limit", "1", "--cursor", cursor)
    assert second.returncode == 0 and second.stdout != first.stdout


def test_show_prints_the_scenario_the_stages_and_the_trust(service, sweep_dir):
    shown = cli(service, "results", "show", SWEEP_RUN)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "sim-model" in out and "64 tokens, fixed" in out and "UNTRUSTWORTHY" in out
    assert "stage 1 untrustworthy:" in out and "in-flight cap" in out
    assert "raw results" in out and "vllmbench" in out
    assert json.loads(cli(service, "results", "show", SWEEP_RUN, "--json").stdout)["run_id"] == SWEEP_RUN


def test_compare_prints_each_metric_with_its_difference(service):
    compared = cli(service, "results", "compare", f"{SWEEP_RUN}@0", "other-run")
    assert compared.returncode == 0, compared.stderr
    assert "ttft_p50" in compared.stdout and f"{SWEEP_RUN}@0 (baseline)" in compared.stdout
    assert "%)" in compared.stdout
    sweep = cli(service, "results", "compare", SWEEP_RUN, "other-run")
    assert sweep.returncode == 2 and "name one as" in one_error(sweep)


def test_export_llmd_json_and_csv(service, sweep_dir, tmp_path):
    stored = sweep_records(sweep_dir)
    llmd = json.loads(cli(service, "results", "export", SWEEP_RUN, "--format", "llmd").stdout)
    assert len(llmd) == 2 and all(doc["version"] == "0.2" for doc in llmd)
    records = json.loads(cli(service, "results", "export", SWEEP_RUN, "--format", "json").stdout)
    assert [r["run"]["stage"] for r in records] == [0, 1]
    target = tmp_path / "run.csv"
    assert cli(service, "results", "export", SWEEP_RUN, "--format", "csv", "-o", str(target)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["stage"] for row in rows] == ["0", "1"]
    assert float(rows[0]["ttft_p50_ms"]) == pytest.approx(stored[0]["results"]["latency"]["ttft"]["p50"])
    assert rows[1]["trustworthy"] == "False" and "in-flight cap" in rows[1]["untrustworthy_reasons"]
    bad = cli(service, "results", "export", SWEEP_RUN, "--format", "xml")
    assert bad.returncode == 2 and "llmd, json or csv" in one_error(bad)


def test_report_writes_one_html_file_from_the_service_and_from_a_folder(service, sweep_dir, tmp_path):
    single = tmp_path / "run.html"
    made = cli(service, "report", SWEEP_RUN, "-o", str(single))
    assert made.returncode == 0, made.stderr
    html = single.read_text()
    assert html.startswith("<!doctype html>") and f"vllmbench run {SWEEP_RUN}" in html and "UNTRUSTWORTHY" in html
    assert "from every request" in html
    both = tmp_path / "both.html"
    mixed = cli(service, "report", "other-run", "--from", str(sweep_dir), "-o", str(both))
    assert mixed.returncode == 0, mixed.stderr
    html = both.read_text()
    assert "vllmbench comparison: other-run, report-sweep" in html and "Pareto front" in html
    local = tmp_path / "local.html"
    offline = vllmbench("report", "--from", str(sweep_dir), "-o", str(local), "--results-url", "http://127.0.0.1:9")
    assert offline.returncode == 0 and "throughput over time" in local.read_text()


def test_report_of_a_run_whose_requests_were_sent_apart_pages_through_the_stored_samples(serve_function, sweep_dir,
                                                                                        tmp_path):
    results = serve_function("results", api_token=TOKEN)
    posted = results.post("/raw_input", data=(sweep_dir / "apart" / "raw.json").read_bytes(),
                          headers={"Content-Type": "application/json"})
    assert posted.status_code == 201, posted.text
    for chunk in sorted((sweep_dir / "apart").glob("samples-*.vbs1")):
        assert results.post(f"/raw_input/{posted.json()['id']}/requests", data=chunk.read_bytes(),
                            headers={"Content-Type": "application/octet-stream"}).status_code == 201
    out = tmp_path / "apart.html"
    made = cli(results, "report", SWEEP_RUN, "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert "from every request" in out.read_text() and "stored percentiles" not in out.read_text()


def test_errors_are_one_line_with_the_exit_status_of_their_kind(service, tmp_path):
    missing = cli(service, "report", "no-such-run", "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 2 and "no-such-run" in one_error(missing)
    assert not (tmp_path / "x.html").exists()
    no_token = vllmbench("results", "ls", "--results-url", service.url)
    assert no_token.returncode == 2 and "--api-token" in one_error(no_token)
    down = vllmbench("results", "show", "x", "--results-url", "http://127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach" in one_error(down)
    empty = cli(service, "report")
    assert empty.returncode == 2 and "--from" in one_error(empty)
    not_a_run = vllmbench("report", "--from", str(tmp_path))
    assert not_a_run.returncode == 2 and "records.json" in one_error(not_a_run)
